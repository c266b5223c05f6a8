"""The Portainer backend against the stand-in Portainer (real HTTP, real Docker, real Compose):
the shared conformance cases, then authentication, environment choice, the failure paths and
that no secret ever shows up in a message, a repr or a log."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pytest_bannou.backends.base import LABEL_RUN_ID, Backend, BackendOptions
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose_file import LABEL_PROJECT
from pytest_bannou.backends.portainer.backend import PortainerBackend
from pytest_bannou.backends.portainer.client import demux
from pytest_bannou.backends.portainer.settings import PortainerSettings
from pytest_bannou.backends.registry import load
from pytest_bannou.errors import BackendUnavailable, DeployError
from pytest_bannou.health import wait as health
from pytest_bannou.topology.model import Resources
from tests.support.backends import deploy_ready, node, topology_maker
from tests.support.conformance import BackendConformance
from tests.support.portainer_standin import OpenAPI, PortainerStandIn, UnixHTTPConnection, new_run_id

topo = topology_maker("portainer-test", "h1")


def leftovers(run_id: str) -> list[str]:
    cli = _docker.client()
    try:
        return _docker.labelled_leftovers(cli, run_id)
    finally:
        cli.close()


def stack_names(standin: PortainerStandIn) -> set[str]:
    return {s.name for s in list(standin.stacks.values())}


# --- the shared cases ---
class TestPortainerConformance(BackendConformance):
    faults = frozenset({"kill", "pause", "disconnect"})  # backends/portainer/faults.py, via the Docker proxy

    @pytest.fixture(autouse=True)
    def _portainer(self, standin, api_key_extra):
        self.standin = standin
        self.extra = api_key_extra

    def create_backend(self, options: BackendOptions) -> Backend:
        return PortainerBackend(options)

    def make_options(self, workdir: Path, run_id: str) -> BackendOptions:
        rid = new_run_id("conf")
        return BackendOptions(
            run_id=rid, workdir=workdir.parent / rid, ready_timeout=self.ready_timeout, extra=self.extra
        )

    def assert_gone(self, backend: Backend, ids: list[str]) -> None:
        assert leftovers(backend.run_id) == []
        cli = _docker.client()
        try:
            assert not set(ids) & {c["Id"][:12] for c in cli.api.containers(all=True)}
        finally:
            cli.close()
        assert not any(backend.run_id in name for name in stack_names(self.standin))


@pytest.fixture
def make_portainer(tmp_path, api_key_extra):
    created: list[PortainerBackend] = []

    def factory(extra=None, **kw) -> PortainerBackend:
        rid = new_run_id("ptn")
        options = BackendOptions(
            run_id=rid, workdir=tmp_path / rid, ready_timeout=60, extra=extra or api_key_extra, **kw
        )
        b = PortainerBackend(options)
        created.append(b)
        return b

    yield factory
    for b in created:
        b.teardown()


# --- the stand-in follows Portainer's document ---
def test_document_validator_finds_wrong_types_and_missing_fields():
    api = OpenAPI.load()
    schema = {"$ref": "#/components/schemas/stacks.composeStackFromFileContentPayload"}
    assert api.validate(schema, {"Name": "x", "StackFileContent": "services: {}"}, "body") == []
    problems = api.validate(schema, {"Name": 3, "Env": [{"name": "A"}]}, "body")
    assert "body: required property 'StackFileContent' is missing" in problems
    assert any(p.startswith("body.Name: expected string") for p in problems)
    assert "body.Env[0]: required property 'value' is missing" in problems


def test_wrong_or_missing_auth_is_401_with_portainers_error_body(standin, credentials):
    with httpx.Client(base_url=standin.url, timeout=10) as http:
        for headers in ({}, {"X-API-Key": "nope"}, {"Authorization": "Bearer a.b.c"}):
            for method, path in (("GET", "/api/stacks"), ("GET", "/api/endpoints/1/docker/_ping")):
                resp = http.request(method, path, headers=headers)
                assert resp.status_code == 401, (method, path, headers)
                assert set(resp.json()) == {"message", "details"} and resp.json()["message"] == "Unauthorized"
        ok = http.get("/api/endpoints/1/docker/_ping", headers={"X-API-KEY": credentials["api_key"]})
        assert ok.status_code == 200 and ok.text == "OK"  # forwarded to the real engine


def test_auth_payload_is_validated_and_wrong_password_is_422(standin, credentials):
    with httpx.Client(base_url=standin.url, timeout=10) as http:
        missing = http.post("/api/auth", json={"username": "admin", "password": "x"})
        assert missing.status_code == 400 and "'apiKey' is missing" in missing.json()["details"]
        wrong = http.post("/api/auth", json={"username": "admin", "password": "wrong", "apiKey": ""})
        assert wrong.status_code == 422 and wrong.json()["message"] == "Invalid credentials"
        good = http.post(
            "/api/auth", json={"username": "admin", "password": credentials["password"], "apiKey": ""}
        )
        token = good.json()["jwt"]
        listed = http.get("/api/endpoints", headers={"Authorization": f"Bearer {token}"})
        assert [(e["Id"], e["Name"], e["Type"]) for e in listed.json()] == [
            (1, "local", 1),
            (7, "second-docker", 1),
        ]


def test_stack_calls_check_parameters_and_unknown_stacks_are_404(standin, credentials):
    auth = {"X-API-Key": credentials["api_key"]}
    with httpx.Client(base_url=standin.url, timeout=10, headers=auth) as http:
        body = {"Name": "x", "StackFileContent": "services: {}\n"}
        no_env = http.post("/api/stacks/create/standalone/string", json=body)
        assert no_env.status_code == 400 and "'endpointId' is required" in no_env.json()["details"]
        bad_env = http.post("/api/stacks/create/standalone/string?endpointId=abc", json=body)
        assert bad_env.status_code == 400 and "not an integer" in bad_env.json()["details"]
        no_body = http.post("/api/stacks/create/standalone/string?endpointId=1", json={"Name": "x"})
        assert "'StackFileContent' is missing" in no_body.json()["details"]
        assert http.get("/api/stacks/4242").status_code == 404
        assert http.put("/api/stacks/4242?endpointId=1", json={"StackFileContent": "a"}).status_code == 404
        assert http.delete("/api/stacks/4242?endpointId=1").status_code == 404
        assert http.delete("/api/stacks/4242").status_code == 400  # endpointId is required
        assert http.get("/api/endpoints/99/docker/_ping").status_code == 404
        assert http.get("/api/endpoints/99").status_code == 404


# --- settings, availability, environments ---
def test_settings_come_from_options_then_environment_and_never_show_secrets():
    env = {"BANNOU_PORTAINER_URL": "http://p:9000/", "BANNOU_PORTAINER_API_KEY": "envkey-123"}
    s = PortainerSettings.load({"endpoint": "prod"}, env)
    assert (s.url, s.api_key, s.endpoint) == ("http://p:9000", "envkey-123", "prod")
    assert PortainerSettings.load({"portainer_api_key": "optkey-456"}, env).api_key == "optkey-456"
    assert "envkey-123" not in repr(s)
    assert "BANNOU_PORTAINER_URL" in PortainerSettings.load({}, {}).problem()
    assert (
        "no Portainer credentials"
        in PortainerSettings.load({}, {"BANNOU_PORTAINER_URL": "http://p"}).problem()
    )


def test_registry_finds_the_backend_and_available_says_how_to_configure(monkeypatch):
    for key in ("URL", "API_KEY", "USERNAME", "PASSWORD", "ENDPOINT"):
        monkeypatch.delenv(f"BANNOU_PORTAINER_{key}", raising=False)
    cls = load("portainer")
    assert cls is PortainerBackend
    reason = cls.available().reason
    assert not cls.available() and "BANNOU_PORTAINER_URL" in reason and "BANNOU_PORTAINER_API_KEY" in reason


def test_available_with_api_key_and_with_password(monkeypatch, standin, credentials):
    monkeypatch.setenv("BANNOU_PORTAINER_URL", standin.url)
    monkeypatch.setenv("BANNOU_PORTAINER_API_KEY", credentials["api_key"])
    monkeypatch.setenv("BANNOU_PORTAINER_ENDPOINT", "second-docker")
    ok = PortainerBackend.available()
    assert ok, ok.reason
    assert "environment 7 (second-docker)" in ok.reason and "Docker Engine" in ok.reason
    monkeypatch.delenv("BANNOU_PORTAINER_API_KEY")
    monkeypatch.setenv("BANNOU_PORTAINER_USERNAME", "admin")
    monkeypatch.setenv("BANNOU_PORTAINER_PASSWORD", credentials["password"])
    assert PortainerBackend.available(), PortainerBackend.available().reason


def test_unreachable_server_is_named_with_its_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    url = f"http://127.0.0.1:{port}"
    result = PortainerBackend.check(PortainerSettings(url=url, api_key="k-unreachable-1", timeout=5))
    assert not result and f"Portainer unreachable at {url}" in result.reason
    assert "BANNOU_PORTAINER_URL" in result.reason and "k-unreachable-1" not in result.reason


def test_bad_api_key_and_wrong_password_are_clear_and_masked(standin, credentials):
    bad_key = "ptr_" + "f" * 40
    result = PortainerBackend.check(PortainerSettings(url=standin.url, api_key=bad_key, endpoint="local"))
    assert not result and "HTTP 401" in result.reason and "API key" in result.reason
    assert "BANNOU_PORTAINER_API_KEY" in result.reason and bad_key not in result.reason
    wrong = "pw-wrong-" + "9" * 10
    result = PortainerBackend.check(
        PortainerSettings(url=standin.url, username="admin", password=wrong, endpoint="local")
    )
    assert not result and "rejected the password of user 'admin'" in result.reason
    assert "HTTP 422" in result.reason and "Invalid credentials" in result.reason
    assert wrong not in result.reason


def test_environment_by_id_by_name_and_unknown(standin, api_key_extra, make_portainer):
    assert make_portainer({**api_key_extra, "endpoint": "7"}).endpoint_id == 7
    assert make_portainer({**api_key_extra, "endpoint": "second-docker"}).endpoint_id == 7
    with pytest.raises(BackendUnavailable) as info:
        make_portainer({**api_key_extra, "endpoint": "production"}).endpoint_id  # noqa: B018
    msg = info.value.message
    assert "has no environment 'production'" in msg and "1 (local), 7 (second-docker)" in msg
    assert "BANNOU_PORTAINER_ENDPOINT" in msg
    with pytest.raises(BackendUnavailable, match="has 2 Docker environments"):
        make_portainer({**api_key_extra, "endpoint": ""}).endpoint_id  # noqa: B018


# --- deploy paths ---
def test_password_login_deploys_a_stack_and_changes_go_through_stack_updates(
    standin, password_extra, make_portainer
):
    b = make_portainer(password_extra)
    deploy_ready(b, topo(node("web"), node("db", ports=(80,))))
    (record,) = [s for s in standin.stacks.values() if s.name == b.project]
    assert record.id == b.stack_id and record.endpoint_id == 1
    stack_file = (record.directory / "docker-compose.yml").read_text()
    assert LABEL_RUN_ID in stack_file and b.run_id in stack_file
    assert httpx.get(b.endpoint("web").url() + "/health", timeout=10).json()["appId"] == "web"
    before = len(standin.log)
    b.scale("web", 2)
    health.wait_ready(b, b.topology, time.monotonic() + 60)
    updates = [e for e in standin.log[before:] if e.method == "PUT"]
    assert [(e.path, e.status) for e in updates] == [(f"/api/stacks/{b.stack_id}", 200)]
    assert sorted(s.replica for s in b.status() if s.node == "web") == [0, 1]
    # a plain restart goes through the Docker proxy: same containers, counted
    db_id = b.status()[-1].id
    b.restart("db")
    health.wait_ready(b, b.topology, time.monotonic() + 60)
    (db,) = [s for s in b.status() if s.node == "db"]
    assert (db.id, db.restarts, db.state) == (db_id, 1, "running")
    # exec through the proxy, with its deadline
    result = b.exec("db", ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.exit_code == 3 and sorted(result.output.split()) == ["err", "out"]  # both streams
    assert b.exec("db", ["/bin/sleep", "30"], timeout=1).exit_code == 124
    # an expired/revoked JWT is renewed with the password, once
    standin.secret = os.urandom(32)
    assert len(b.status()) == 3
    assert len(standin.issued) >= 2


def test_image_missing_names_the_image_and_how_to_build_it(standin, make_portainer):
    b = make_portainer()
    t = topo(node("web"), node("cache", image="bannou-missing-image:nope"))
    with pytest.raises(DeployError) as info:
        b.deploy(t, time.monotonic() + 30)
    msg = info.value.message
    assert "bannou-missing-image:nope (node cache)" in msg
    assert "python -m pytest_bannou.backends.docker.images" in msg and "environment 1 (local)" in msg
    assert b.stack_id is None and b.project is None
    assert not any(b.run_id in name for name in stack_names(standin))


def test_stack_deploy_failure_carries_composes_error_and_leaves_nothing(standin, make_portainer):
    b = make_portainer()
    t = topo(node("tiny", resources=Resources(memory_limit="1m")))
    with pytest.raises(DeployError) as info:
        b.deploy(t, time.monotonic() + 60)
    msg = info.value.message
    assert "creating the stack failed" in msg and "HTTP 500: Failed to deploy a stack" in msg
    assert msg.startswith("preset 'portainer-test': ") and ".portainer-stack.yaml" in msg
    assert "Minimum memory limit allowed is 6MB" in msg  # compose's own error, through Portainer
    b.teardown()
    assert leftovers(b.run_id) == [] and b.project not in stack_names(standin)


def test_teardown_of_a_stack_deleted_behind_our_back(standin, credentials, make_portainer):
    b = make_portainer()
    deploy_ready(b, topo(node("web")))
    ids = [s.id for s in b.status()]
    resp = httpx.delete(
        f"{standin.url}/api/stacks/{b.stack_id}",
        params={"endpointId": 1},
        headers={"X-API-Key": credentials["api_key"]},
        timeout=60,
    )
    assert resp.status_code == 204
    b.teardown()  # 404 from Portainer is fine: the stack is gone
    b.teardown()
    assert b.status() == [] and leftovers(b.run_id) == []
    cli = _docker.client()
    try:
        assert not set(ids) & {c["Id"][:12] for c in cli.api.containers(all=True)}
    finally:
        cli.close()


def test_teardown_removes_containers_portainer_forgot(standin, make_portainer):
    """A stack that Portainer lost (deleted from its database, containers still running)."""
    b = make_portainer()
    deploy_ready(b, topo(node("web")))
    standin.stacks.pop(b.stack_id)
    b.teardown()
    assert leftovers(b.run_id) == []
    flt = {"label": f"{LABEL_PROJECT}={b.project}"}
    cli = _docker.client()
    try:
        assert cli.containers.list(all=True, filters=flt) == []
    finally:
        cli.close()


KILLED_SESSION = """
import sys, time
from pathlib import Path
from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.portainer.backend import PortainerBackend
from pytest_bannou.topology.model import Node, Topology
rid, workdir = sys.argv[1], Path(sys.argv[2])
b = PortainerBackend(BackendOptions(run_id=rid, workdir=workdir))
b.deploy(Topology(preset="abandoned", nodes=(Node(name="left", app_id="left"),)), time.monotonic() + 60)
print(b.project)
"""


def test_clean_removes_stacks_of_dead_sessions_only(standin, credentials, make_portainer, tmp_path):
    live = make_portainer()
    deploy_ready(live, topo(node("alive")))
    rid = new_run_id("dead")
    env = {
        **os.environ,
        "BANNOU_PORTAINER_URL": standin.url,
        "BANNOU_PORTAINER_API_KEY": credentials["api_key"],
        "BANNOU_PORTAINER_ENDPOINT": "local",
    }
    out = subprocess.run(
        [sys.executable, "-c", KILLED_SESSION, rid, str(tmp_path / rid)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dead_project = out.stdout.strip().splitlines()[-1]
    assert dead_project in stack_names(standin)
    removed = PortainerBackend.clean(None, live.options)
    assert any(line.startswith(f"stack {dead_project} ") and rid in line for line in removed), removed
    assert dead_project not in stack_names(standin) and leftovers(rid) == []
    assert live.project in stack_names(standin)
    assert [s.state for s in live.status()] == ["running"]


def test_stack_stop_and_start_follow_the_document(standin, credentials, make_portainer):
    b = make_portainer()
    deploy_ready(b, topo(node("web")))
    auth = {"X-API-Key": credentials["api_key"]}
    with httpx.Client(base_url=f"{standin.url}/api/stacks/{b.stack_id}", headers=auth, timeout=60) as http:
        stopped = http.post("/stop", params={"endpointId": 1})
        assert stopped.status_code == 200 and stopped.json()["Status"] == 2
        assert [s.state for s in b.status()] == ["exited"]
        assert http.post("/stop", params={"endpointId": 1}).status_code == 409
        started = http.post("/start", params={"endpointId": 1})
        assert started.status_code == 200 and started.json()["Status"] == 1
        assert http.get(f"{standin.url}/api/stacks/{b.stack_id}").json()["Name"] == b.project
    health.wait_ready(b, b.topology, time.monotonic() + 60)
    assert [s.state for s in b.status()] == ["running"]


def test_credentials_in_the_url_are_masked_too():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://admin:url-secret-77@127.0.0.1:{port}"
    result = PortainerBackend.check(PortainerSettings(url=url, api_key="k-1234", timeout=5))
    assert not result and "unreachable" in result.reason and "url-secret-77" not in result.reason


def test_docker_log_stream_is_demultiplexed():
    frames = b"\x01\x00\x00\x00\x00\x00\x00\x03out" + b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    assert demux(frames) == b"outerr\n"
    assert demux(b"plain tty output\n") == b"plain tty output\n"


# --- secrets ---
def test_secrets_never_appear_in_messages_reprs_logs_or_files(
    standin, credentials, password_extra, api_key_extra, make_portainer, caplog, capfd, tmp_path
):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    # failures that involve each secret
    bad = PortainerSettings(url=standin.url, api_key=credentials["api_key"] + "x", endpoint="local")
    texts.append(PortainerBackend.check(bad).reason)
    wrong = PortainerSettings(url=standin.url, username="admin", password=credentials["password"] + "x")
    texts.append(PortainerBackend.check(wrong).reason)
    for extra in (password_extra, api_key_extra):
        b = make_portainer(extra)
        texts += [repr(b), repr(b.settings), repr(b.client), b.describe()]
        with pytest.raises(DeployError) as info:
            b.deploy(topo(node("x", image="bannou-missing-image:nope")), time.monotonic() + 30)
        texts.append(str(info.value))
        deploy_ready(b, topo(node("web")))
        texts += [b.describe(), b.logs("web"), repr(b.status())]
        texts.append(b.exec("web", ["/usr/bin/env"]).output)
        with pytest.raises(DeployError) as info:
            b.endpoint("web", port=9999)
        texts.append(str(info.value))
        b.teardown()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    texts += [p.read_text(errors="replace") for p in files]
    captured = capfd.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    blob = "\n".join(texts)
    assert standin.issued, "the password login should have produced a JWT"
    for secret in [credentials["api_key"], credentials["password"], *standin.issued]:
        assert secret not in blob
    assert "HTTP Request" in caplog.text  # httpx did log its requests: they were checked


def test_docker_proxy_streams_unchanged(standin, credentials, docker_client):
    headers = {"X-API-Key": credentials["api_key"]}
    conn = UnixHTTPConnection(standin.docker_socket, timeout=30)
    try:
        conn.request("GET", "/version")
        direct = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    proxied = httpx.get(f"{standin.url}/api/endpoints/1/docker/version", headers=headers, timeout=10).json()
    assert proxied == direct


def test_stand_in_answers_only_what_the_document_allows(standin):
    """Runs after the others in this module: every response so far matched the document."""
    assert standin.log, "the stand-in saw no request"
    assert standin.violations == []
