"""The Kubernetes backend on a real cluster: the shared conformance cases, rendering, endpoints,
exec, clean-up of dead sessions and the failure paths (cluster unreachable, bad token, image
missing, rollout never ready, crash loop, namespace stuck terminating)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml

from pytest_bannou.backends import kubernetes as k8s
from pytest_bannou.backends.base import (
    LABEL_NODE,
    LABEL_OWNER_PID,
    LABEL_PRESET,
    LABEL_PRESET_HASH,
    LABEL_RUN_ID,
    Backend,
    BackendOptions,
)
from pytest_bannou.backends.kubernetes import ImageMeta, KubernetesBackend
from pytest_bannou.errors import BackendUnavailable, DeployError, NodeNotReady
from pytest_bannou.health import wait as health
from pytest_bannou.topology.diff import diff
from pytest_bannou.topology.model import HealthCheck, Node, Resources
from tests.support.conformance import BackendConformance
from tests.support.k8s import NODE_IMAGE, deadline, node, options, topo

pytestmark = [
    pytest.mark.timeout(240),
    # the client's own port-forward proxy thread raises SSLEOFError when a pod dies mid-connection
    # (the relay then closes the local connection, which is what the test process sees)
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]


def core_api(kubeconfig: str):
    from kubernetes import client

    conn = k8s.connect(BackendOptions(run_id="x", workdir=Path("."), extra={"kubeconfig": kubeconfig}))
    return client.CoreV1Api(client.ApiClient(conn.configuration))


@pytest.mark.usefixtures("k8s_images")
class TestKubernetesConformance(BackendConformance):
    ready_timeout = 120.0  # pods on a loaded single-node cluster
    faults = frozenset({"kill"})  # no pod freezer; no NetworkPolicy-enforcing CNI assumed
    shared_endpoints = False  # port-forward listeners belong to the backend instance

    @pytest.fixture(autouse=True)
    def _cluster(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def create_backend(self, options: BackendOptions) -> Backend:
        return KubernetesBackend(options)

    def make_node(self, name: str, **kw) -> Node:
        return replace(super().make_node(name, **kw), image=NODE_IMAGE)

    def make_options(self, workdir: Path, run_id: str) -> BackendOptions:
        return options(workdir, self.kubeconfig, ready_timeout=self.ready_timeout)

    def assert_gone(self, backend: Backend, ids: list[str]) -> None:
        core = core_api(self.kubeconfig)
        live = core.list_pod_for_all_namespaces(label_selector=f"{LABEL_RUN_ID}={backend.run_id}").items
        assert not {p.metadata.name for p in live} & set(ids)
        spaces = core.list_namespace(label_selector=f"{LABEL_RUN_ID}={backend.run_id}").items
        assert all(ns.status.phase == "Terminating" for ns in spaces)


# --- rendering (no cluster needed) ------------------------------------------------------------------
def test_render_manifests_namespace_deployment_service(tmp_path: Path) -> None:
    n = Node(
        name="Auth_Node",
        app_id="bannou-auth",
        replicas=2,
        environment={"X": "1"},
        ports=(80, 9090),
        resources=Resources(
            cpu_limit="500m", memory_limit="256Mi", cpu_request="100m", memory_request="64Mi"
        ),
        healthcheck=HealthCheck(
            kind="http", target="health", interval=0.2, timeout=2, retries=5, start_period=3
        ),
        command=("serve", "--fast"),
    )
    infra = Node(
        name="redis",
        app_id="redis",
        kind="infrastructure",
        infra_type="redis",
        ports=(6379,),
        healthcheck=HealthCheck(kind="tcp", target=6379),
    )
    opts = BackendOptions(run_id="r1", workdir=tmp_path, worker="gw1")
    t = topo(n, infra, preset="Split Auth")
    meta = {"bannou:latest": ImageMeta(host_mounts=("/usr", "/does/not/exist"), tmpfs=("/tmp",))}
    docs = k8s.render_manifests(t, opts, images=meta)
    assert [d["kind"] for d in docs] == ["Namespace", "Deployment", "Service", "Deployment", "Service"]
    ns = docs[0]["metadata"]
    assert ns["name"].startswith("bannou-r1-split-auth-gw1")
    assert ns["labels"][LABEL_RUN_ID] == "r1" and ns["labels"][LABEL_PRESET] == "Split-Auth"
    assert ns["labels"][LABEL_PRESET_HASH] == "h123" and ns["labels"][LABEL_OWNER_PID] == str(os.getpid())
    dep = docs[1]
    assert dep["metadata"]["namespace"] == ns["name"] and dep["spec"]["replicas"] == 2
    name = dep["metadata"]["name"]
    assert name.startswith("auth-node-") and dep["metadata"]["labels"][LABEL_NODE] == name
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert (
        c["image"] == "bannou:latest" and c["imagePullPolicy"] == "Never" and c["args"] == ["serve", "--fast"]
    )
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["X"] == "1" and env["BANNOU_APP_ID"] == "bannou-auth" and env["HTTP_WEB_HOST_PORT"] == "80"
    assert c["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": 80}
    assert c["readinessProbe"]["periodSeconds"] == 1 and c["readinessProbe"]["failureThreshold"] == 5
    # the start period is no delay: checked from the start, the first success counts
    assert "initialDelaySeconds" not in c["readinessProbe"] and "startupProbe" not in c
    assert {"name": "host-0", "mountPath": "/usr", "readOnly": True} in c["volumeMounts"]
    assert not any(m["mountPath"] == "/does/not/exist" for m in c["volumeMounts"])
    vols = dep["spec"]["template"]["spec"]["volumes"]
    assert {"name": "host-0", "hostPath": {"path": "/usr", "type": "Directory"}} in vols
    assert {"name": "tmpfs-0", "emptyDir": {"medium": "Memory"}} in vols
    assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
    assert LABEL_PRESET not in dep["spec"]["template"]["metadata"]["labels"]  # transitions keep pods
    svc = docs[2]
    assert svc["spec"]["type"] == "ClusterIP" and [p["port"] for p in svc["spec"]["ports"]] == [80, 9090]
    redis = docs[3]["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"] == "redis:7" and redis["readinessProbe"]["tcpSocket"] == {"port": 6379}
    assert "volumeMounts" not in redis  # no image metadata for redis:7 given
    text = k8s.render_yaml(t, opts, images=meta)
    assert list(yaml.safe_load_all(text)) == docs


def test_render_node_port_and_bad_service_type(tmp_path: Path) -> None:
    opts = BackendOptions(run_id="r1", workdir=tmp_path, extra={"kubernetes_service_type": "nodeport"})
    docs = k8s.render_manifests(topo(node("web")), opts, images={})
    assert docs[2]["spec"]["type"] == "NodePort"
    bad = BackendOptions(run_id="r1", workdir=tmp_path, extra={"kubernetes_service_type": "LoadBalancer"})
    with pytest.raises(DeployError, match=r"kubernetes_service_type='LoadBalancer'.*ClusterIP.*NodePort"):
        k8s.render_manifests(topo(node("web")), bad, images={})


def test_names_are_valid_and_distinct() -> None:
    assert k8s.object_name("auth") == "auth"
    assert k8s.object_name("1st") != k8s.object_name("n-1st") and k8s.object_name("1st")[0].isalpha()
    assert k8s.object_name("a_b") != k8s.object_name("a-b")
    long = k8s.object_name("x" * 100)
    assert len(long) <= 63 and long != k8s.object_name("x" * 99)
    assert k8s.label_value("-weird value!-") == "weird-value"


# --- availability (no cluster needed for the closed port) -----------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cluster_unreachable_names_the_address(tmp_path: Path) -> None:
    port = _closed_port()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    opts = options(tmp_path, str(path))
    started = time.monotonic()
    available = k8s.availability(opts)
    assert not available
    assert f"127.0.0.1:{port}" in available.reason and "unreachable" in available.reason
    assert "cluster up" in available.reason
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        KubernetesBackend(opts).deploy(topo(node("web")), deadline(30))
    assert time.monotonic() - started < 60  # no endless retries (generous: this is not a speed test)


def test_no_kubeconfig_says_how_to_get_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    available = KubernetesBackend.available()
    assert not available and "KUBECONFIG" in available.reason and "cluster up" in available.reason
    missing = options(tmp_path, str(tmp_path / "nope"))
    assert "does not exist" in k8s.availability(missing).reason


def test_bad_token_is_rejected_with_a_clear_reason(kubeconfig: str, tmp_path: Path) -> None:
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    users = cfg["users"]
    for u in users:
        u["user"] = {k: v for k, v in u["user"].items() if not k.startswith("client-")}
        u["user"]["token"] = "not-a-valid-token"
    path = tmp_path / "bad-kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    available = k8s.availability(options(tmp_path, str(path)))
    assert not available
    assert "rejected the credentials" in available.reason and "401" in available.reason
    assert str(path) in available.reason


def test_available_with_the_cluster(kubeconfig: str, tmp_path: Path) -> None:
    available = k8s.availability(options(tmp_path, kubeconfig))
    assert available and "Kubernetes v1." in available.reason


# --- on the cluster -----------------------------------------------------------------------------------
@pytest.fixture
def make_k8s(kubeconfig: str, k8s_images, tmp_path: Path):
    created: list[KubernetesBackend] = []

    def factory(**extra) -> KubernetesBackend:
        ready_timeout = extra.pop("ready_timeout", 60)
        b = KubernetesBackend(options(tmp_path, kubeconfig, ready_timeout=ready_timeout, **extra))
        created.append(b)
        return b

    yield factory
    for b in created:
        b.teardown()


def deploy_ready(b: KubernetesBackend, t, timeout: float = 60) -> None:
    d = deadline(timeout)
    b.deploy(t, d)
    health.wait_ready(b, t, d)


def test_namespace_and_resources_carry_the_labels(make_k8s, kubeconfig: str) -> None:
    b = make_k8s()
    t = topo(node("web", ports=(80, 81)), preset="labels-test")
    deploy_ready(b, t)
    core = core_api(kubeconfig)
    ns = core.read_namespace(b.namespace)
    labels = ns.metadata.labels
    assert labels[LABEL_RUN_ID] == b.run_id and labels[LABEL_PRESET] == "labels-test"
    assert labels[LABEL_PRESET_HASH] == "h123" and labels[LABEL_OWNER_PID] == str(os.getpid())
    assert b.run_id in b.namespace and "labels-test" in b.namespace
    svc = core.read_namespaced_service("web", b.namespace)
    assert sorted(p.port for p in svc.spec.ports) == [80, 81] and svc.spec.type == "ClusterIP"
    (pod,) = core.list_namespaced_pod(b.namespace).items
    c = pod.spec.containers[0]
    assert c.image_pull_policy == "Never" and c.readiness_probe.http_get.path == "/health"
    assert any(m.mount_path == "/usr" and m.read_only for m in c.volume_mounts)
    # the endpoint is a local port-forward: several connections in a row and in parallel
    url = b.endpoint("web").url()
    assert b.endpoint("web").host == "127.0.0.1"
    with httpx.Client() as client:
        assert all(client.get(url + "/health").json()["appId"] == "web" for _ in range(3))
    assert b.describe().startswith(f"backend kubernetes, namespace {b.namespace}")


def test_deploy_can_wait_for_the_rollout(make_k8s, kubeconfig: str) -> None:
    b = make_k8s(kubernetes_wait_rollout="true")
    b.deploy(topo(node("web", replicas=2), node("plain", healthcheck=None)), deadline(60))
    from kubernetes import client

    conn = k8s.connect(b.options)
    apps = client.AppsV1Api(client.ApiClient(conn.configuration))
    for name in ("web", "plain"):
        dep = apps.read_namespaced_deployment(name, b.namespace)
        assert dep.status.available_replicas == dep.spec.replicas == dep.status.updated_replicas
    assert sorted((s.node, s.state) for s in b.status()) == [
        ("plain", "running"),
        ("web", "running"),
        ("web", "running"),
    ]
    b.wait_rollout(deadline=deadline(5))  # already rolled out: returns at once


def test_exec_exit_code_output_and_timeout(make_k8s) -> None:
    b = make_k8s()
    deploy_ready(b, topo(node("web")))
    py = "/usr/bin/python3"
    ok = b.exec("web", [py, "-c", "import os; print('hello', os.environ['BANNOU_APP_ID'])"])
    assert ok.exit_code == 0 and "hello web" in ok.output
    bad = b.exec("web", [py, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(4)"])
    assert bad.exit_code == 4 and "boom" in bad.output
    slow = b.exec("web", [py, "-c", "import time; time.sleep(30)"], timeout=1.5)
    assert slow.exit_code == 124 and "timed out" in slow.output
    missing = b.exec("web", ["/no/such/program"])
    assert missing.exit_code != 0


def test_command_healthcheck_runs_through_exec(make_k8s) -> None:
    hc = HealthCheck(
        kind="command",
        target=(
            "/usr/bin/python3",
            "-c",
            "import urllib.request as u; u.urlopen('http://127.0.0.1:80/health')",
        ),
        interval=0.5,
        retries=0,
    )
    b = make_k8s()
    t = topo(node("web", healthcheck=hc))
    deploy_ready(b, t)
    assert b.exec("web", list(hc.target)).exit_code == 0


def test_image_missing_names_the_image_and_how_to_build_it(make_k8s) -> None:
    b = make_k8s()
    t = topo(node("web"), node("ghost", image="bannou-missing-image:never"))
    started = time.monotonic()
    with pytest.raises(NodeNotReady) as info:
        b.deploy(t, deadline(60))
    err = info.value
    assert err.node == "ghost" and "ErrImageNeverPull" in err.reason
    assert "bannou-missing-image:never" in str(err)
    assert "python -m pytest_bannou.backends.docker.images" in str(err) and "docker build" in str(err)
    assert time.monotonic() - started < 50  # failed fast, well before the deadline
    b.teardown()
    assert b.status() == []


def test_layerless_image_is_explained(make_k8s) -> None:
    import io

    import docker

    cli = docker.from_env()
    tag = f"pytest-bannou-layerless:{uuid.uuid4().hex[:8]}"
    image, _ = cli.images.build(fileobj=io.BytesIO(b'FROM scratch\nCMD ["/nothing"]\n'), tag=tag, rm=True)
    try:
        b = make_k8s()
        with pytest.raises(NodeNotReady) as info:
            b.deploy(topo(node("web", image=tag)), deadline(60))
        assert "ImageInspectError" in info.value.reason and f"'{tag}'" in info.value.reason
        assert "size 0" in info.value.reason and "COPY" in info.value.reason
        b.teardown()
    finally:
        cli.images.remove(image.id, force=True)
        cli.close()


def test_rollout_never_ready_fails_at_the_deadline_with_pod_state_and_logs(make_k8s) -> None:
    b = make_k8s(kubernetes_wait_rollout="true")
    t = topo(node("sleepy", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "600"}))
    with pytest.raises(NodeNotReady) as info:
        b.deploy(t, deadline(8))
    err = info.value
    assert err.node == "sleepy" and "rollout not complete" in err.reason and "deadline" in err.reason
    assert "0/1 available" in err.reason and "running, not ready" in err.reason
    assert "starting" in err.logs and "startup delay 600" in err.logs


def test_crash_loop_fails_the_rollout_fast_with_reason_and_logs(make_k8s) -> None:
    b = make_k8s(kubernetes_wait_rollout="true")
    t = topo(node("fine"), node("broken", environment={"BANNOU_REFERENCE_EXIT_CODE": "3"}))
    started = time.monotonic()
    with pytest.raises(NodeNotReady) as info:
        b.deploy(t, deadline(90))
    err = info.value
    assert err.node == "broken" and "exit code 3" in err.reason
    assert "exiting with code 3" in err.logs
    assert time.monotonic() - started < 80
    (st,) = [s for s in b.status() if s.node == "broken"]
    assert st.state == "exited" and st.exit_code == 3


def test_logs_of_all_replicas_with_tail(make_k8s) -> None:
    b = make_k8s()
    deploy_ready(b, topo(node("web", replicas=2)))
    text = b.logs("web")
    assert text.count("bannou reference node web listening on :") == 2
    assert len(b.logs("web", tail=3).splitlines()) == 3
    assert b.logs("web", tail=0) == ""


def test_endpoints_follow_replicas_and_restarts(make_k8s) -> None:
    b = make_k8s()
    deploy_ready(b, topo(node("web", replicas=2)))
    eps = {b.endpoint("web", replica=i) for i in range(2)}
    assert len(eps) == 2
    for i in range(2):
        assert httpx.get(b.endpoint("web", replica=i).url() + "/health", timeout=10).json()["appId"] == "web"
    with pytest.raises(DeployError, match="has no replica 2"):
        b.endpoint("web", replica=2)
    with pytest.raises(DeployError, match="no port 81"):
        b.endpoint("web", port=81)
    old = {s.id for s in b.status()}
    b.restart("web")
    assert not old & {s.id for s in b.status()}
    assert all(s.restarts == 1 for s in b.status())
    assert httpx.get(b.endpoint("web").url() + "/health", timeout=10).status_code == 200


def test_node_port_service(make_k8s, kubeconfig: str) -> None:
    b = make_k8s(kubernetes_service_type="NodePort")
    t = topo(node("web"))
    d = deadline(60)
    b.deploy(t, d)
    ep = b.endpoint("web")
    svc = core_api(kubeconfig).read_namespaced_service("web", b.namespace)
    assert svc.spec.type == "NodePort" and ep.port == svc.spec.ports[0].node_port
    assert ep.host == core_api(kubeconfig).list_namespaced_pod(b.namespace).items[0].status.host_ip
    try:
        socket.create_connection(("127.0.0.1", 10256), timeout=1).close()  # kube-proxy healthz
    except OSError:
        pytest.skip(
            "NodePorts are routed only with kube-proxy: BANNOU_K8S_KUBE_PROXY=1 ../shared/k8s/cluster up"
        )
    health.wait_ready(b, t, d)
    assert httpx.get(ep.url() + "/health", timeout=10).json()["appId"] == "web"


def test_apply_scale_only_patches_replicas(make_k8s) -> None:
    b = make_k8s()
    a = topo(node("web"), node("other"))
    deploy_ready(b, a)
    before = {s.node: s.id for s in b.status()}
    c = a.with_nodes([node("web", replicas=2), node("other")])
    b.apply(diff(a, c), deadline(60))
    ids = sorted((s.node, s.replica, s.id) for s in b.status())
    assert [(n, r) for n, r, _ in ids] == [("other", 0), ("web", 0), ("web", 1)]
    assert ("other", 0, before["other"]) in ids and ("web", 0, before["web"]) in ids


def test_clean_without_run_id_removes_only_dead_owners(make_k8s, kubeconfig: str, tmp_path: Path) -> None:
    dead = make_k8s()
    alive = make_k8s()
    deploy_ready(dead, topo(node("web"), preset="dead-owner"))
    deploy_ready(alive, topo(node("web"), preset="live-owner"))
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone_pid = proc.stdout.strip()
    core_api(kubeconfig).patch_namespace(
        dead.namespace, {"metadata": {"labels": {LABEL_OWNER_PID: gone_pid}}}
    )
    removed = KubernetesBackend.clean(None, options(tmp_path, kubeconfig))
    assert any(dead.run_id in line and dead.namespace in line for line in removed)
    assert not any(alive.run_id in line for line in removed)
    assert alive.status() and alive.status()[0].state == "running"
    assert dead.status() == []


def test_namespace_stuck_terminating_hits_the_teardown_deadline(make_k8s, kubeconfig: str) -> None:
    b = make_k8s(kubernetes_teardown_timeout=3)
    deploy_ready(b, topo(node("web")))
    core = core_api(kubeconfig)
    ns = b.namespace
    (pod,) = core.list_namespaced_pod(ns).items
    core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"finalizers": ["bannou.test/hold"]}})
    try:
        with pytest.raises(DeployError) as info:
            b.teardown()
        msg = str(info.value)
        assert f"namespace {ns} (Terminating" in msg and "still terminating" in msg
        assert "teardown deadline" in msg
        assert pod.metadata.name in msg and "bannou.test/hold" in msg
        assert "kubernetes_teardown_timeout" in msg
    finally:
        core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"finalizers": None}})
    assert b.topology is None and b.namespace is None
    b.teardown()  # idempotent after a failed teardown


def test_teardown_can_wait_for_the_namespace_itself(make_k8s, kubeconfig: str) -> None:
    b = make_k8s(kubernetes_teardown_wait="namespace", kubernetes_teardown_timeout=4)
    deploy_ready(b, topo(node("web")))
    core = core_api(kubeconfig)
    ns = b.namespace
    from kubernetes import client

    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["bannou.test/hold"]))
    )
    try:
        with pytest.raises(DeployError) as info:
            b.teardown()
        msg = str(info.value)
        assert f"namespace {ns} (Terminating" in msg and "teardown deadline" in msg
    finally:
        core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})


# --- processes -------------------------------------------------------------------------------------------
PLUGIN = """
import json, os, sys
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpgid(0)} {os.getsid(0)}")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": "from-the-plugin"}}))
"""


def test_credential_plugin_runs_in_its_own_process_group(tmp_path: Path) -> None:
    """A kubeconfig's exec credential plugin is the one process the backend has started for it
    (through the client): it runs in its own session, so a Ctrl-C in the terminal reaches only
    pytest, which then tears down in order."""
    plugin, seen = tmp_path / "plugin.py", tmp_path / "seen"
    plugin.write_text(PLUGIN)
    exec_user = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": [str(plugin), str(seen)],
    }
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"exec": exec_user}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    conn = k8s.connect(options(tmp_path, str(path)))
    assert "from-the-plugin" in str(conn.configuration.api_key)
    pgid, sid = (int(x) for x in seen.read_text().split())
    assert pgid != os.getpgrp() and sid != os.getsid(0)


STARTERS = {
    "subprocess": {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
    "os": {"system", "popen", "fork", "forkpty", "spawnv", "spawnvp", "posix_spawn", "posix_spawnp"},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
}


@pytest.mark.parametrize("package", ["kubernetes", "portainer"])
def test_engine_subprocesses_start_their_own_session(package: str) -> None:
    """Every process the engine packages start themselves (today: none but the credential
    plugin above) gets ``start_new_session`` or ``process_group``: none joins the terminal's
    foreground process group, where a Ctrl-C meant for pytest would reach it."""
    import ast

    import pytest_bannou.backends as backends

    for path in sorted((Path(backends.__file__).parent / package).glob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr not in STARTERS.get(ast.unparse(call.func.value), set()):
                continue
            keywords = {k.arg for k in call.keywords}
            assert keywords & {"start_new_session", "process_group"}, (
                f"{package}/{path.name}:{call.lineno}: {ast.unparse(call.func)} without start_new_session"
            )
