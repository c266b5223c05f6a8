"""Without cluster DNS, Kubernetes pods find Services through ``/etc/hosts`` (no cluster needed
here): the node manifests carry ``hostAliases``, a recreated Service asks for its old cluster IP,
and the ingress stand-in writes an upstream named in ``/etc/hosts`` as its address (nginx's
``resolver`` does not read that file) while a Docker network's name stays resolved lazily."""

from __future__ import annotations

from pathlib import Path

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.ingress import container_config, lazy_upstream, pinned_upstream, wait_reachable
from pytest_bannou.backends.kubernetes.manifests import render_deployment, render_service
from pytest_bannou.topology.model import Node, Topology
from tests.support.render_checks import k8s_model_errors

K8S_RESOLV = "nameserver 10.96.0.10\nsearch ns1.svc.cluster.local svc.cluster.local cluster.local\n"
K8S_HOSTS = (
    "127.0.0.1\tlocalhost\n172.17.0.9\tingress-abc\n\n"
    "# Entries added by HostAliases.\n10.97.1.2\tbannou\tbannou.ns1\n"
)
DOCKER_RESOLV = "nameserver 127.0.0.11\noptions ndots:0\n"
DOCKER_HOSTS = "127.0.0.1\tlocalhost\n172.18.0.4\t0f1e2d3c4b5a\n"


def test_node_pods_get_every_service_name_in_host_aliases(tmp_path: Path) -> None:
    node = Node(name="bannou", app_id="bannou")
    topology = Topology(preset="p", nodes=(node,))
    opts = BackendOptions(run_id="r1", workdir=tmp_path)
    dep = render_deployment(
        node, topology, opts, "ns1", aliases={"rabbitmq": "10.96.0.20", "mysql": "10.96.0.21"}
    )
    assert dep["spec"]["template"]["spec"]["hostAliases"] == [
        {
            "ip": "10.96.0.20",
            "hostnames": ["rabbitmq", "rabbitmq.ns1", "rabbitmq.ns1.svc", "rabbitmq.ns1.svc.cluster.local"],
        },
        {
            "ip": "10.96.0.21",
            "hostnames": ["mysql", "mysql.ns1", "mysql.ns1.svc", "mysql.ns1.svc.cluster.local"],
        },
    ]
    assert k8s_model_errors(dep) == []
    assert "hostAliases" not in render_deployment(node, topology, opts, "ns1")["spec"]["template"]["spec"]
    svc = render_service(node, topology, opts, "ns1", cluster_ip="10.96.0.30")
    assert svc is not None and svc["spec"]["clusterIP"] == "10.96.0.30" and k8s_model_errors(svc) == []
    assert "clusterIP" not in (render_service(node, topology, opts, "ns1") or {})["spec"]


def test_ingress_writes_an_upstream_named_in_etc_hosts_as_its_address(tmp_path: Path) -> None:
    assert lazy_upstream("bannou:80", K8S_RESOLV, K8S_HOSTS) == ("10.97.1.2:80", None)
    env = {"BANNOU_INGRESS_UPSTREAM": "bannou:80", "BANNOU_INGRESS_PREFIX": str(tmp_path / "p")}
    conf, _ = container_config(env, K8S_RESOLV, K8S_HOSTS)
    text = conf.read_text()
    assert "server 10.97.1.2:80;" in text and "resolver" not in text
    assert pinned_upstream(env, K8S_HOSTS) == ("10.97.1.2", 80)


def test_ingress_on_a_docker_network_still_resolves_at_request_time(tmp_path: Path) -> None:
    assert lazy_upstream("bannou:80", DOCKER_RESOLV, DOCKER_HOSTS) == ("bannou:80", "127.0.0.11")
    # a cluster with DNS and no alias: the qualified name through the cluster's DNS server
    assert lazy_upstream("bannou:80", K8S_RESOLV, "") == ("bannou.ns1.svc.cluster.local:80", "10.96.0.10")
    env = {"BANNOU_INGRESS_UPSTREAM": "bannou:80", "BANNOU_INGRESS_PREFIX": str(tmp_path / "p")}
    conf, _ = container_config(env, DOCKER_RESOLV, DOCKER_HOSTS)
    assert "resolver 127.0.0.11" in conf.read_text()
    assert pinned_upstream(env, DOCKER_HOSTS) is None


def test_waiting_for_an_unreachable_upstream_gives_up() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        assert wait_reachable("127.0.0.1", port, 0.3) is False
        s.listen()
        assert wait_reachable("127.0.0.1", port, 5) is True
