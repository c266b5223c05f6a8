"""Nodes find each other by Service name on a cluster without cluster DNS (this one: pods use the
host's resolv.conf): Services are created before Deployments and every pod's ``/etc/hosts`` maps
each Service name to its cluster IP (``hostAliases``); a recreated Service keeps its IP; a node
added later is known to the pods created after it (the documented limit); and bannou's own
set-ups (``BANNOU_INFRA=true`` test-edge, test-http, test-infrastructure) pass on kubernetes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from pytest_bannou.backends.base import LABEL_RUN_ID
from pytest_bannou.backends.kubernetes import KubernetesBackend
from pytest_bannou.health import wait as health
from pytest_bannou.topology.diff import diff
from tests.support.bannou_pytester import BannouPytester
from tests.support.k8s import deadline, node, options, topo

from .test_kubernetes import core_api

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]
PY = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"
# resolve NAME and GET http://NAME/health until it answers (a Service routes once its pod is
# ready and kube-proxy caught up), print "IP APP_ID"
REACH = (
    "import json, socket, sys, time, urllib.request\n"
    "name = sys.argv[1]; ip = socket.gethostbyname(name); end = time.monotonic() + 90\n"
    "while True:\n"
    "    try:\n"
    "        body = urllib.request.urlopen(f'http://{name}/health', timeout=5).read()\n"
    "        print(ip, json.loads(body)['appId']); break\n"
    "    except OSError as exc:\n"
    "        if time.monotonic() > end: print(ip, 'unreachable', exc); break\n"
    "        time.sleep(0.3)\n"
)


@pytest.fixture
def backend(kubeconfig: str, k8s_images, tmp_path: Path):
    b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=90))
    yield b
    b.teardown()


def reach(b: KubernetesBackend, source: str, name: str) -> str:
    result = b.exec(source, [PY, "-c", REACH, name], timeout=120)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def resolves(b: KubernetesBackend, source: str, name: str) -> str | None:
    code = "import socket, sys\ntry: print(socket.gethostbyname(sys.argv[1]))\nexcept OSError: print('-')"
    out = b.exec(source, [PY, "-c", code, name], timeout=30).output.strip()
    return None if out == "-" else out


def service_ips(kubeconfig: str, namespace: str) -> dict[str, tuple[str, str]]:
    """Service name -> (cluster IP, uid)."""
    items = core_api(kubeconfig).list_namespaced_service(namespace).items
    return {s.metadata.name: (s.spec.cluster_ip, s.metadata.uid) for s in items}


def test_nodes_reach_each_other_by_service_name_across_changes(backend, kubeconfig: str) -> None:
    b = backend
    a = topo(node("web"), node("api"), node("quiet", ports=(), healthcheck=None), preset="dns")
    d = deadline(120)
    b.deploy(a, d)
    health.wait_ready(b, a, d)
    ns = b.namespace
    assert ns is not None
    ips = service_ips(kubeconfig, ns)
    assert set(ips) == {"web", "api"}  # a node without ports has no Service
    # every pod, also one without a Service, resolves and reaches every Service by its names
    assert reach(b, "web", "api") == f"{ips['api'][0]} api"
    assert reach(b, "quiet", "web") == f"{ips['web'][0]} web"
    assert resolves(b, "api", f"web.{ns}") == ips["web"][0]
    assert resolves(b, "api", f"web.{ns}.svc.cluster.local") == ips["web"][0]

    # a changed node gets a new Service object with the same cluster IP: the others still reach it
    web_pod = {s.node: s.id for s in b.status()}["web"]
    c = a.with_nodes(
        [node("web"), node("api", environment={"CHANGED": "1"}), node("quiet", ports=(), healthcheck=None)]
    )
    b.apply(diff(a, c), deadline(120))
    health.wait_ready(b, c, deadline(90))
    after = service_ips(kubeconfig, ns)
    assert after["api"][1] != ips["api"][1] and after["api"][0] == ips["api"][0]
    assert {s.node: s.id for s in b.status()}["web"] == web_pod  # web untouched
    assert reach(b, "web", "api") == f"{ips['api'][0]} api"

    # a node added later knows every Service; the pods already running do not know it (their
    # /etc/hosts is fixed at pod start: the documented limit) until they are recreated
    e = c.with_nodes([*c.nodes, node("late")])
    b.apply(diff(c, e), deadline(120))
    health.wait_ready(b, e, deadline(90))
    late_ip = service_ips(kubeconfig, ns)["late"][0]
    assert reach(b, "late", "api") == f"{ips['api'][0]} api"
    assert reach(b, "late", "web") == f"{ips['web'][0]} web"
    assert resolves(b, "web", "late") is None
    b.restart("web")
    health.wait_ready(b, e, deadline(90))
    assert reach(b, "web", "late") == f"{late_ip} late"


# --- bannou's own set-ups ------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["test-edge", "test-http", "test-infrastructure"])
def test_builtin_presets_with_full_infrastructure_pass_on_kubernetes(
    bannou_pytester: BannouPytester, kubeconfig: str, k8s_images, monkeypatch, preset: str
) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    monkeypatch.setenv("BANNOU_INFRA", "true")
    report = bannou_pytester.pytester.path / "report"
    result = bannou_pytester.run_subprocess(
        "--bannou-backend=kubernetes", f"--bannou-preset={preset}", f"--bannou-report={report}", timeout=360
    )
    match = re.search(r"run id (bannou-[0-9a-f]+)", result.stdout.str())
    assert match, result.stdout.str()
    left = [
        ns.metadata.name
        for ns in core_api(kubeconfig).list_namespace(label_selector=f"{LABEL_RUN_ID}={match.group(1)}").items
        if ns.status.phase != "Terminating"
    ]
    if left:
        KubernetesBackend.clean(run_id=match.group(1), options=options(Path("."), kubeconfig))
    assert left == []
    assert result.ret == 0, result.stdout.str()
    data = json.loads((report / "results.json").read_text())
    topology = data["presets"][0]
    assert topology["backend"] == "kubernetes"
    cases = [t for t in data["tests"] if t["kind"] == "tester"]
    assert cases and all(t["outcome"] == "passed" for t in cases), cases
    infrastructure = {"mysql", "redis", "rabbitmq"} | ({"ingress"} if preset == "test-edge" else set())
    assert infrastructure <= set(topology["nodes"])
    if preset == "test-edge":
        echo = f"tester::edge-tester::WebSocket Connect - Echo[{preset}]"
        assert echo in {t["nodeid"] for t in cases}
