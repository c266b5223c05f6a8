"""The real ingress image (``openresty/openresty``, no stand-in): a file written for a machine
with a registry (``bannou-env render --no-stand-ins``) hands it bannou's routes as a generated
configuration and a ``/bin/sh`` entrypoint that writes it and execs openresty (else nginx), on
compose, swarm and kubernetes; a stand-in keeps its own entrypoint. The Kubernetes form is run
for real here with the host's nginx in front of a local node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest
import yaml
from websockets.sync.client import connect as ws_connect

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.ingress import CONF_ENV, PORT_ENV, PREFIX_ENV, PUBLIC_ENTRYPOINT, nginx_binary
from pytest_bannou.backends.kubernetes.manifests import render_deployment
from pytest_bannou.cli import main
from pytest_bannou.preset.library import load_file
from pytest_bannou.preset.resolve import resolve
from pytest_bannou.topology.ingress import HEALTH_BODY, UPSTREAM_ENV
from tests.support.messaging_servers import free_port
from tests.support.ws_echo import __file__ as WS_ECHO

INGRESS = "openresty/openresty:1.21.4.2-0-alpine"


def rendered(capsys, monkeypatch, backend: str, *flags: str) -> list[dict]:
    monkeypatch.setenv("BANNOU_INFRA", "true")
    assert main(["render", "test-edge", "--backend", backend, *flags]) == 0
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]


@pytest.mark.parametrize("backend", ["compose", "swarm"])
def test_no_stand_ins_gives_the_real_image_its_configuration_on_docker(capsys, monkeypatch, backend):
    (doc,) = rendered(capsys, monkeypatch, backend, "--no-stand-ins")
    svc = doc["services"]["ingress"]
    assert svc["image"] == INGRESS and "command" not in svc
    # Compose interpolates `$NAME`: every `$` is written `$$`
    assert svc["entrypoint"] == [a.replace("$", "$$") for a in PUBLIC_ENTRYPOINT]
    conf = svc["environment"][CONF_ENV]
    assert "listen 0.0.0.0:80 default_server;" in conf and "daemon off;" in conf
    assert "resolver 127.0.0.11" in conf and "set $$bannou_upstream bannou:80;" in conf
    assert "proxy_set_header Upgrade $$http_upgrade;" in conf and "$host" not in conf.replace("$$", "")
    assert svc["environment"][UPSTREAM_ENV] == "bannou:80"
    assert not any(CONF_ENV in s.get("environment", {}) for n, s in doc["services"].items() if n != "ingress")


def test_no_stand_ins_gives_the_real_image_its_configuration_on_kubernetes(capsys, monkeypatch):
    docs = rendered(capsys, monkeypatch, "kubernetes", "--no-stand-ins")
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ingress"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == INGRESS and "args" not in container
    assert container["command"] == list(PUBLIC_ENTRYPOINT)
    # Kubernetes expands `$(NAME)` and `$$` in command and env: neither may appear
    assert not any(("$(" in a or "$$" in a) for a in container["command"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert "$(" not in env[CONF_ENV] and "$$" not in env[CONF_ENV]
    # the Service name, looked up once at start (cluster DNS search domains, or hostAliases)
    assert "server bannou:80;" in env[CONF_ENV] and "resolver" not in env[CONF_ENV]


PRESET = """\
name: edge-public
topology:
  nodes:
    - name: bannou
      services: [auth, connect]
      command: [{python}, {echo}]
  infrastructure:
    ingress:
      enabled: true
"""


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"exited {proc.returncode}"
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout}s"
        time.sleep(0.2)


@pytest.mark.skipif(nginx_binary() is None, reason="needs nginx or openresty: apt-get install nginx")
def test_the_kubernetes_form_runs_with_a_plain_shell_and_nginx(tmp_path):
    """The rendered command and environment of the ingress container, run by /bin/sh on the
    host (the host's nginx instead of the image's openresty) in front of a local node."""
    path = tmp_path / "edge-public.yaml"
    path.write_text(PRESET.format(python=sys.executable, echo=WS_ECHO))
    topo = resolve(load_file(path))
    node_port, front = free_port(), free_port()
    ingress = topo.node("ingress")
    ingress = replace(
        ingress,
        environment={**ingress.environment, UPSTREAM_ENV: f"127.0.0.1:{node_port}", PORT_ENV: str(front)},
    )
    dep = render_deployment(ingress, topo, BackendOptions(run_id="pub", workdir=tmp_path), "ns")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    base = {"PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", "LANG": "C"}
    node = subprocess.Popen(
        [sys.executable, WS_ECHO],
        env={**os.environ, "BANNOU_BIND_HOST": "127.0.0.1", "HTTP_WEB_HOST_PORT": str(node_port)},
    )
    proxy = subprocess.Popen(container["command"], env={**base, **env, PREFIX_ENV: str(tmp_path / "p")})
    try:
        url = f"http://127.0.0.1:{front}"
        assert wait_health(url + "/health", proxy).text.strip() == HEALTH_BODY
        deadline = time.monotonic() + 30
        while (login := httpx.post(url + "/auth/login", timeout=5)).status_code != 200:
            assert time.monotonic() < deadline, login.text
            time.sleep(0.2)
        assert login.json()["path"] == "/auth/login"
        with ws_connect(f"ws://127.0.0.1:{front}/connect", open_timeout=10, proxy=None) as ws:
            ws.send("through the public form")
            assert ws.recv(timeout=10) == "through the public form"
        assert (tmp_path / "p" / "nginx.conf").read_text().strip() == env[CONF_ENV].strip()
    finally:
        for p in (proxy, node):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.mark.parametrize("backend", ["compose", "swarm", "kubernetes"])
def test_the_real_mysql_image_is_ready_when_root_logs_in(capsys, monkeypatch, backend):
    """Not a TCP connect: the image's entrypoint first runs a set-up server, then restarts it."""
    docs = rendered(capsys, monkeypatch, backend, "--no-stand-ins")
    if backend == "kubernetes":
        (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mysql"]
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        line = container["readinessProbe"]["exec"]["command"][2]
        password = '"$MYSQL_ROOT_PASSWORD"'
    else:
        shell, line = doc_test = docs[0]["services"]["mysql"]["healthcheck"]["test"]
        assert shell == "CMD-SHELL", doc_test
        password = '"$$MYSQL_ROOT_PASSWORD"'  # Compose would substitute a single `$` itself
    assert line.startswith(f"MYSQL_PWD={password} mysql -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1'")


def test_swarm_creates_the_real_ingress_image_with_its_configuration(tmp_path):
    """Through the SDK nothing interpolates: the entrypoint and configuration go in unescaped."""
    from pytest_bannou.backends.docker.swarm_spec import service_spec

    path = tmp_path / "edge-public.yaml"
    path.write_text(PRESET.format(python=sys.executable, echo=WS_ECHO))
    topo = resolve(load_file(path))
    options = BackendOptions(run_id="pub", workdir=tmp_path)
    spec = service_spec(topo.node("ingress"), topo, options, {}, "p", "net", "p-ingress")
    container = spec["task_template"]["ContainerSpec"]
    assert container["Command"] == list(PUBLIC_ENTRYPOINT) and "Args" not in container
    conf = next(e for e in container["Env"] if e.startswith(CONF_ENV + "="))
    assert "resolver 127.0.0.11" in conf and "$$" not in conf and "$http_upgrade" in conf
