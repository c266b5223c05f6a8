"""Testers given as an ``image`` on Kubernetes: a pod in the environment's namespace reaching the
nodes by their Service names, its output read from the pod log and parsed per case, killed and
removed at the deadline, never left behind."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from pytest_bannou._support.masking import MASK
from pytest_bannou.backends import base
from pytest_bannou.backends.base import LABEL_RUN_ID
from pytest_bannou.backends.kubernetes import KubernetesBackend
from pytest_bannou.health import wait as health
from pytest_bannou.testers.endpoints import endpoint_variables
from tests.support.bannou_pytester import BannouPytester
from tests.support.k8s import NODE_IMAGE, RUN_IDS, deadline, node, options, topo
from tests.support.testers import preset_yaml

from .test_kubernetes import core_api

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]
SECRET = "k8s-s3cr3t-tester-value"
IMAGE_PYTHON = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"  # mounted
PROBE = (
    "import json, os, socket, sys; keys = ['BANNOU_HTTP_ENDPOINT', 'ADMIN_PASSWORD', 'DAEMON_MODE']; "
    "seen = {k: os.environ.get(k) for k in keys}; seen['POD'] = socket.gethostname(); "
    "print('SEEN ' + json.dumps(seen)); sys.exit(3)"
)


@pytest.fixture
def deployed(kubeconfig: str, k8s_images, tmp_path: Path):
    b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=60))
    t = topo(node("web"), preset="testers")
    d = deadline(90)
    try:
        b.deploy(t, d)
        health.wait_ready(b, t, d)
        yield b
    finally:
        b.teardown()


def make_tester(b: KubernetesBackend, tmp_path: Path, name: str, command: list[str], timeout: float = 60):
    assert b.topology is not None
    topology = b.topology
    return base.TesterContainer(
        name=name,
        run_id=b.run_id,
        backend="kubernetes",
        env_key="testers",
        image=NODE_IMAGE,
        command=tuple(command),
        target="web",
        environment=lambda address: {**endpoint_variables(topology, "web", address), "DAEMON_MODE": "true"},
        workdir=tmp_path,
        log_path=tmp_path / f"tester-{name}.log",
        timeout=timeout,
    )


def pod_exists(kubeconfig: str, namespace: str, name: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        core_api(kubeconfig).read_namespaced_pod(name, namespace)
    except ApiException as exc:
        assert exc.status == 404
        return False
    return True


def test_tester_pod_reaches_the_service_and_is_removed(
    deployed: KubernetesBackend, kubeconfig: str, tmp_path: Path
) -> None:
    assert deployed.tester_images()
    t = make_tester(
        deployed,
        tmp_path,
        "http",
        ["python", "-m", "pytest_bannou.reference.tester", "--format", "http-tester"],
    )
    out = deployed.run_tester_container(t)
    log = t.log_path.read_text()
    assert out.error is None and out.exit_code == 0 and not out.timed_out, log
    assert out.network == deployed.namespace and out.container.startswith("tester-http-")
    assert re.search(r"^\d{4}-\d\d-\d\dT\S+Z .*Health", log, re.M), log  # timestamped pod log
    assert not pod_exists(kubeconfig, deployed.namespace, out.container)


ONE_SHOT = (
    "import os, sys, urllib.request; url = os.environ['BANNOU_HTTP_ENDPOINT'] + '/health'; "
    "print('GET', url, urllib.request.urlopen(url, timeout=10).status, flush=True)"
)


def test_tester_pod_starts_once_the_services_route(kubeconfig: str, k8s_images, tmp_path: Path) -> None:
    # a tester pod goes through the Services: right after a deploy, before any readiness wait,
    # its single request must still reach a ready replica (no endpoints: refused; a cluster IP
    # kube-proxy has not programmed yet answers from elsewhere, 404 here)
    b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=120))
    t = topo(node("web", replicas=2, environment={"BANNOU_REFERENCE_STARTUP_DELAY": "20"}), preset="testers")
    try:
        b.deploy(t, deadline(120))
        out = b.run_tester_container(make_tester(b, tmp_path, "once", ["python", "-c", ONE_SHOT]))
        log = (tmp_path / "tester-once.log").read_text()
        assert out.error is None and out.exit_code == 0, log
        assert re.search(r"GET http://web:\d+/health 200", log), log
        assert b._ready_endpoints("web", 15.0) == (2, None)
    finally:
        b.teardown()


def test_readiness_includes_the_services_routing(kubeconfig: str, k8s_images, tmp_path: Path) -> None:
    # the probes go through port-forwards straight to the pods; the environment is ready only
    # once each Service also lists every replica and answers through its cluster IP (this
    # process runs on the cluster's node), so a node calling another by name at once gets through
    b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=120))
    slow = {"BANNOU_REFERENCE_STARTUP_DELAY": "5"}
    t = topo(node("web", replicas=3, environment=slow), node("api", environment=slow), preset="testers")
    try:
        b.deploy(t, deadline(120))
        health.wait_ready(b, t, deadline(120))
        assert b._ready_endpoints("web", 15.0) == (3, None) and b._ready_endpoints("api", 15.0) == (1, None)
        port = t.node("api").http_port
        once = f"import urllib.request as u; print(u.urlopen('http://api:{port}/health', timeout=10).status)"
        result = b.exec(
            "web",
            [IMAGE_PYTHON, "-c", once],
            timeout=60,
        )
        assert result.exit_code == 0 and result.output.strip() == "200", result.output
        assert b._on_a_node is True  # so the cluster IPs were asked too
    finally:
        b.teardown()


def test_a_service_that_never_routes_is_a_setup_error_naming_it(
    kubeconfig: str, k8s_images, tmp_path: Path
) -> None:
    b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=8))
    t = topo(node("web", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "600"}), preset="testers")
    try:
        b.deploy(t, deadline(120))
        out = b.run_tester_container(make_tester(b, tmp_path, "never", ["python", "-c", ONE_SHOT]))
        assert out.exit_code is None and out.error is not None, out
        assert "Service web: 0 of 1 pods ready behind it" in out.error and "get pods,endpoints" in out.error
        assert out.error.startswith("tester 'never': kubernetes ")
    finally:
        b.teardown()


def test_tester_pod_killed_and_removed_at_the_deadline(
    deployed: KubernetesBackend, kubeconfig: str, tmp_path: Path
) -> None:
    t = make_tester(
        deployed,
        tmp_path,
        "sleeper",
        ["python", "-c", "print('going to sleep', flush=True); import time; time.sleep(300)"],
        timeout=8,
    )
    out = deployed.run_tester_container(t)
    assert out.timed_out and out.exit_code is None and 8 <= out.duration < 60
    assert not pod_exists(kubeconfig, deployed.namespace, out.container)


def test_missing_tester_image_is_a_setup_error(deployed: KubernetesBackend, tmp_path: Path) -> None:
    from dataclasses import replace

    t = replace(make_tester(deployed, tmp_path, "ghost", []), image="pytest-bannou-no-such-tester:never")
    out = deployed.run_tester_container(t)
    assert out.error is not None and "pytest-bannou-no-such-tester:never" in out.error
    assert "ErrImageNeverPull" in out.error


def test_image_testers_on_kubernetes_are_tester_items(
    bannou_pytester: BannouPytester, kubeconfig: str, k8s_images, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    bannou_pytester.preset(
        "k8simg",
        preset_yaml(
            "k8simg",
            f"""
            testers:
              - name: http
                image: {NODE_IMAGE}
                command: [python, -m, pytest_bannou.reference.tester, --format, http-tester]
                format: http-tester
              - name: probe
                image: {NODE_IMAGE}
                command: [python, -c, "{PROBE}"]
                format: exit-code
                environment:
                  ADMIN_PASSWORD: {SECRET}
            """,
        ),
    )
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run_subprocess(
        "--bannou-backend=kubernetes",
        "--bannou-preset=k8simg",
        f"--bannou-report={report}",
        "-rA",
        timeout=280,
    )
    out = result.stdout.str()
    match = re.search(r"run id (bannou-[0-9a-f]+)", out)
    assert match, out
    rid = match.group(1)
    RUN_IDS.add(rid)  # the session's leak check looks for it too
    data = json.loads((report / "results.json").read_text())
    http = [t for t in data["tests"] if t["nodeid"].startswith("tester::http::")]
    assert len(http) > 5 and all(t["outcome"] == "passed" for t in http), out
    result.assert_outcomes(passed=1 + len(http), failed=2)
    line = next(ln for ln in result.outlines if "SEEN {" in ln)
    seen = json.loads(line[line.index("SEEN ") + 5 :])
    assert seen["BANNOU_HTTP_ENDPOINT"] == "http://main:80"  # the Service name, container port
    assert seen["POD"].startswith("tester-probe-") and seen["DAEMON_MODE"] == "true"
    assert SECRET not in out and seen["ADMIN_PASSWORD"] == MASK
    live = core_api(kubeconfig).list_pod_for_all_namespaces(label_selector=f"{LABEL_RUN_ID}={rid}").items
    assert [p.metadata.name for p in live if p.metadata.deletion_timestamp is None] == []
