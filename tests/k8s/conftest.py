"""Kubernetes tests: use the cluster KUBECONFIG points at (CI runs `../shared/k8s/cluster up`
before pytest; this fixture never starts or stops it) and skip, saying how to start one, when it
is not reachable. After the session, fail if a run id these tests created left a namespace or a
pod that is not terminating (and delete it, by run id)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_bannou.backends import kubernetes as k8s
from pytest_bannou.backends.base import LABEL_RUN_ID, BackendOptions
from tests.support import k8s as k8s_support


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory) -> Iterator[str]:
    path = k8s_support.kubeconfig_path()
    if path is None:
        pytest.skip(k8s_support.START_HINT)
    opts = BackendOptions(run_id="probe", workdir=tmp_path_factory.mktemp("k8s"), extra={"kubeconfig": path})
    available = k8s.availability(opts)
    if not available:
        pytest.skip(f"{available.reason} ({k8s_support.START_HINT})")
    yield path
    leaked = _leftovers(opts)
    for rid in sorted({rid for rid, _ in leaked}):
        k8s.KubernetesBackend.clean(run_id=rid, options=opts)
    assert not leaked, f"kubernetes tests leaked resources: {leaked}"


def _leftovers(opts: BackendOptions) -> list[tuple[str, str]]:
    from kubernetes import client

    conn = k8s.connect(opts)
    api = client.ApiClient(conn.configuration)
    core = client.CoreV1Api(api)
    found: list[tuple[str, str]] = []
    try:
        for ns in core.list_namespace(label_selector=LABEL_RUN_ID, _request_timeout=15).items:
            rid = (ns.metadata.labels or {}).get(LABEL_RUN_ID, "")
            if rid in k8s_support.RUN_IDS and ns.status.phase != "Terminating":
                found.append((rid, f"namespace {ns.metadata.name}"))
        for pod in core.list_pod_for_all_namespaces(label_selector=LABEL_RUN_ID, _request_timeout=15).items:
            rid = (pod.metadata.labels or {}).get(LABEL_RUN_ID, "")
            if rid in k8s_support.RUN_IDS and pod.metadata.deletion_timestamp is None:
                found.append((rid, f"pod {pod.metadata.namespace}/{pod.metadata.name}"))
    finally:
        api.close()
    return found


@pytest.fixture(scope="session")
def k8s_images(kubeconfig) -> list[str]:
    """The locally built images (the single-node cluster runs pods on this Docker Engine)."""
    from pytest_bannou.backends.docker import engine as _docker
    from pytest_bannou.backends.docker.images import ensure_images
    from pytest_bannou.errors import BackendUnavailable

    try:
        cli = _docker.client()
    except BackendUnavailable as exc:
        pytest.skip(f"the local images need the cluster node's Docker Engine: {exc.message}")
    try:
        tags = ensure_images(cli, include_optional=False)
    finally:
        cli.close()
    return tags
