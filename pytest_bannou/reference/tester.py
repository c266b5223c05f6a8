"""A reference tester: real checks against a bannou node, printed in bannou's tester formats.

    python -m pytest_bannou.reference.tester --format http-tester|edge-tester [--daemon]

It stands in for bannou's http-tester / edge-tester images so that the whole path (deploy ->
tester -> per-case results -> report) runs without them, and it prints exactly their console
format (see testers-format.md) so the same parsers read both.

Checks (HTTP, with httpx): ``/health`` answers; every service ``/health`` lists answers 200 on
``POST /{service}/ping``; a known service the node does not list is not served by this node;
each service in ``BANNOU_EXPECT_SERVICES`` (comma list) answers, from whichever app id routes it
(split routing). edge-tester adds a WebSocket round trip through ``CONNECT_ENDPOINT`` (with
``websockets``): the upgrade, the node's welcome message, a text and a binary echo, ping/pong and
a clean close, each step within ``WS_DEADLINE_S``.

Endpoint: ``BANNOU_HTTP_ENDPOINT`` (http-tester, default ``http://localhost:5012``);
``OPENRESTY_HOST``/``OPENRESTY_PORT`` or ``CONNECT_ENDPOINT`` (edge-tester; its WebSocket goes
to ``CONNECT_ENDPOINT``, bannou's ``host:port/connect`` or a ``ws://``/``wss://`` URL, else to
``/connect`` on the HTTP endpoint). Readiness wait:
``BANNOU_TESTER_WAIT`` seconds (default 60). Like upstream, without ``DAEMON_MODE=true`` or
``--daemon`` it shows an interactive menu and waits on stdin.

Exit codes as upstream: 0 all passed; 1 a failure or a setup failure; 139 (http-tester) when the
node stops answering mid-run (service crash, fail-fast). edge-tester with
``EXIT_ON_SERVICE_ERROR=true`` exits 1 at the first connection error, before its summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from .ws_check import WebSocketFailure, round_trip

FORMATS = ("http-tester", "edge-tester")
DEFAULT_WAIT_S = 60.0
REQUEST_TIMEOUT_S = 5.0
WS_DEADLINE_S = 15.0  # the whole WebSocket case: upgrade, welcome, echoes, ping, close
WEBSOCKET_CASE = "WebSocket Connect - Echo"
CRASH_EXIT = 139
SEPARATOR = "━" * 68

# bannou's services (2026-03 names) outside the always-on infrastructure layer: candidates for
# the "a service this node does not list is not served here" check
KNOWN_SERVICES = (
    "account", "auth", "connect", "permission", "contract", "resource", "chat",
    "game-session", "character", "realm", "location", "species", "relationship",
    "orchestrator", "website", "asset", "documentation", "voice",
    "behavior", "actor", "matchmaking", "quest", "inventory", "testing",
)  # fmt: skip


def say(line: str = "") -> None:
    print(line, flush=True)


class Crash(Exception):
    """The node stopped answering (connection refused/reset): a service crash."""


@dataclass
class Outcome:
    status: str  # passed | failed | unclear
    message: str = ""
    lines: list[str] = field(default_factory=list)


Check = Callable[[], Outcome]


@dataclass
class Suite:
    client: httpx.Client
    base: str
    health: dict = field(default_factory=dict)
    app_id: str = ""
    connect_url: str = ""  # the WebSocket the edge-tester opens (``connect_endpoint``)
    behind_front: bool = False  # the edge-tester: an ingress may answer /health itself

    def request(self, method: str, path: str) -> httpx.Response:
        try:
            if method == "POST":
                return self.client.post(self.base + path, json={"check": "reference-tester"})
            return self.client.get(self.base + path)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise Crash(f"{type(exc).__name__}: {method} {self.base}{path}: {exc}") from exc

    def checks(self, env: Mapping[str, str], edge: bool) -> list[tuple[str, Check]]:
        services = [str(s) for s in self.health.get("services", [])]
        expected = [s.strip() for s in env.get("BANNOU_EXPECT_SERVICES", "").split(",") if s.strip()]
        name_health = "Health Check" if edge else "Health"
        out: list[tuple[str, Check]] = [(name_health, self.check_health)]
        for s in services:
            name = f"Service Routing - {s}" if edge else f"Routing.{s}"
            out.append((name, lambda s=s: self.check_served(s, local=True, edge=edge)))
        missing = [s for s in KNOWN_SERVICES if s not in services and s not in expected]
        if missing:
            s = missing[0]
            name = f"Unlisted Service - {s}" if edge else f"Routing.Unlisted.{s}"
            out.append((name, lambda s=s: self.check_not_local(s)))
        for s in expected:
            name = f"Expected Service - {s}" if edge else f"Expected.{s}"
            out.append((name, lambda s=s: self.check_served(s, local=False, edge=edge)))
        if edge:
            out.append((WEBSOCKET_CASE, self.check_websocket))
        return out

    def check_websocket(self) -> Outcome:
        """The edge path: upgrade at ``connect_url``, welcome, echo, ping, close."""
        lines: list[str] = []
        try:
            greeting = round_trip(self.connect_url, WS_DEADLINE_S, lambda line: lines.append(f"   {line}"))
        except WebSocketFailure as exc:
            return Outcome("failed", f"WebSocket {self.connect_url}: {exc}", lines)
        except OSError as exc:  # refused or reset: the front stopped answering
            raise Crash(f"{type(exc).__name__}: WebSocket {self.connect_url}: {exc}") from exc
        who = greeting.get("appId", "?")
        return Outcome("passed", f"WebSocket round trip through {self.connect_url} (app id {who})", lines)

    def learn_services(self) -> None:
        """Behind an ingress the node's own /health is not reachable: its WebSocket welcome
        names the app id and the services (left unknown when the upgrade fails: the WebSocket
        case then reports why)."""
        try:
            greeting = round_trip(self.connect_url, WS_DEADLINE_S, lambda line: None)
        except (WebSocketFailure, OSError):
            return
        services = greeting.get("services")
        if isinstance(services, list):
            self.health = {"status": "healthy", "appId": greeting.get("appId", ""), "services": services}
            self.app_id = str(greeting.get("appId", ""))

    def check_health(self) -> Outcome:
        r = self.request("GET", "/health")
        if r.status_code != 200:
            return Outcome("failed", f"GET /health answered {r.status_code}: {r.text[:200]}")
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) and not self.behind_front:
            return Outcome("failed", f"GET /health is not a node's JSON health: {r.text[:200]!r}")
        if not isinstance(body, dict):
            # bannou's ingress (OpenResty) answers /health itself, in plain text: the front is
            # up; the services behind it are learnt from the WebSocket welcome (``learn_services``)
            lines = [f"   GET /health -> 200 {r.text.strip()[:80]!r} (the front answered itself)"]
            return Outcome("passed", "the front answered /health (not a node's JSON health)", lines)
        self.health, self.app_id = body, str(body.get("appId", ""))
        status = body.get("status")
        lines = [f"   GET /health -> 200 status={status} appId={self.app_id}"]
        if status not in ("healthy", "Healthy", "ok"):
            return Outcome("failed", f"/health status is {status!r}, expected 'healthy'", lines)
        n = len(body.get("services", []))
        return Outcome("passed", f"status={status} appId={self.app_id} services={n}", lines)

    def check_served(self, service: str, *, local: bool, edge: bool) -> Outcome:
        r = self.request("POST", f"/{service}/ping")
        lines = [f"   POST /{service}/ping -> {r.status_code}"]
        if r.status_code != 200:
            return Outcome(
                "failed",
                f"expected 200 from POST /{service}/ping, got {r.status_code}: {r.text[:200]}",
                lines,
            )
        try:
            body = r.json()
        except ValueError:
            lines.append(f"   body is not JSON: {r.text[:120]!r}")
            # upstream edge-tester reports such answers as "result unclear"
            return Outcome("unclear" if edge else "passed", "answered 200 with a non-JSON body", lines)
        served_by = str(body.get("appId", "?")) if isinstance(body, dict) else "?"
        lines.append(f"   served by app id {served_by}")
        if isinstance(body, dict) and body.get("service") not in (None, service):
            return Outcome("failed", f"POST /{service}/ping was answered for {body.get('service')!r}", lines)
        if local and self.app_id and served_by not in ("?", self.app_id):
            return Outcome("failed", f"{service} is listed on {self.app_id} but {served_by} answered", lines)
        return Outcome("passed", f"{service} answered 200 (app id {served_by})", lines)

    def check_not_local(self, service: str) -> Outcome:
        r = self.request("POST", f"/{service}/ping")
        lines = [f"   POST /{service}/ping -> {r.status_code}"]
        if r.status_code == 404:
            return Outcome("passed", f"{service} (not enabled here) answered 404", lines)
        if r.status_code == 200:
            try:
                served_by = str(r.json().get("appId", ""))
            except (ValueError, AttributeError):
                served_by = ""
            if served_by and served_by != self.app_id:
                return Outcome("passed", f"{service} is routed to app id {served_by}", lines)
        return Outcome(
            "failed",
            f"{service} is not listed by {self.app_id or 'the node'} yet POST /{service}/ping answered"
            f" {r.status_code} from this node (expected 404)",
            lines,
        )


def endpoint(fmt: str, env: Mapping[str, str]) -> str:
    """The node's base URL from the variables the chosen upstream tester reads."""
    if fmt == "http-tester":
        return env.get("BANNOU_HTTP_ENDPOINT", "http://localhost:5012").rstrip("/")
    host = env.get("OPENRESTY_HOST")
    if host:
        port = env.get("OPENRESTY_PORT", "80")
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"
    connect = env.get("CONNECT_ENDPOINT")
    if connect:
        parts = urlsplit(connect if "://" in connect else f"ws://{connect}")
        scheme = "https" if parts.scheme in ("wss", "https") else "http"
        return f"{scheme}://{parts.netloc}"
    return env.get("BANNOU_HTTP_ENDPOINT", "http://localhost:80").rstrip("/")


def connect_endpoint(env: Mapping[str, str], base: str) -> str:
    """The WebSocket URL: ``CONNECT_ENDPOINT`` (bannou's ``host:port/connect``, or with a
    ``ws``/``wss``/``http``/``https`` scheme), else ``/connect`` on the HTTP endpoint ``base``."""
    raw = (env.get("CONNECT_ENDPOINT") or "").strip()
    parts = urlsplit(raw if "://" in raw else f"ws://{raw}") if raw else urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if raw and parts.path not in ("", "/") else "/connect"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def wait_ready(client: httpx.Client, base: str, wait_s: float) -> str | None:
    """Poll ``/health`` until 200 or the deadline; the last error when it never came."""
    deadline = time.monotonic() + wait_s
    attempt, last = 0, ""
    while True:
        attempt += 1
        try:
            r = client.get(base + "/health")
            if r.status_code == 200:
                return None
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            return last
        say(f"⏳ Waiting for bannou at {base}/health (attempt {attempt}, up to {wait_s:g}s): {last}")
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def run_http(suite: Suite, env: Mapping[str, str]) -> int:
    say("Running in daemon mode - executing tests sequentially with fail-fast on service crashes...")
    passed = failed = 0
    checks = suite.checks(env, edge=False)
    i = 0
    while i < len(checks):
        name, check = checks[i]
        say(f"Running test: {name}")
        try:
            result = check()
        except Crash as exc:
            say(f"❌ Test {name} failed with exception: {exc}")
            say(
                f"🚨 FATAL: Service crash detected in test '{name}'. "
                "Exiting immediately to prevent cascade failures."
            )
            return CRASH_EXIT
        except Exception as exc:
            failed += 1
            say(f"❌ Test {name} failed with exception: {type(exc).__name__}: {exc}")
        else:
            for line in result.lines:
                say(line)
            if result.status == "failed":
                failed += 1
                say(f"❌ Test {name} failed: {result.message}")
            else:
                passed += 1
                say(f"✅ Test {name} completed successfully: {result.message}")
        if i == 0:  # /health read: the service checks depend on it
            checks = checks[:1] + suite.checks(env, edge=False)[1:]
        i += 1
    say(f"All tests completed in daemon mode. Passed: {passed}, Failed: {failed}")
    if failed:
        say(f"❌ {failed} test(s) failed - returning exit code 1")
        return 1
    return 0


def run_edge(suite: Suite, env: Mapping[str, str]) -> int:
    exit_on_error = env.get("EXIT_ON_SERVICE_ERROR", "").lower() == "true"
    suite.behind_front = True
    try:
        suite.check_health()
    except Crash as exc:
        say(f"❌ Basic HTTP connectivity test FAILED: {exc}")
        return 1
    say("✅ Basic HTTP connectivity test PASSED")
    if not suite.health:
        suite.learn_services()
    say("🔄 Running full edge test suite in daemon mode...")
    checks = suite.checks(env, edge=True)
    say(f"   Total tests registered: {len(checks)}")
    failed_names: list[str] = []
    passed = 0
    for name, check in checks:
        say(SEPARATOR)
        say(f"📋 Running: {name}")
        say(SEPARATOR)
        try:
            result = check()
        except Crash as exc:
            failed_names.append(name)
            say(f"❌ Test {name} FAILED with exception: {exc}")
            if exit_on_error:
                say("   EXIT_ON_SERVICE_ERROR=true: stopping at the first service error")
                return 1
            continue
        except Exception as exc:
            failed_names.append(name)
            say(f"❌ Test {name} FAILED with exception: {type(exc).__name__}: {exc}")
            continue
        for line in result.lines:
            say(line)
        if result.status == "failed":
            failed_names.append(name)
            say(f"   {result.message}")
            say(f"❌ Test {name} FAILED")
        elif result.status == "unclear":
            passed += 1
            say(f"   {result.message}")
            say(f"⚠️ Test {name} completed (result unclear)")
        else:
            passed += 1
            say(f"✅ Test {name} PASSED")
    say(SEPARATOR)
    say("📊 TEST SUMMARY")
    say(SEPARATOR)
    say(f"   Total:  {len(checks)}")
    say(f"   Passed: {passed}")
    say(f"   Failed: {len(failed_names)}")
    if failed_names:
        say()
        say("❌ Failed tests:")
        for name in failed_names:
            say(f"   - {name}")
        return 1
    return 0


def interactive_menu(fmt: str, base: str, run: Callable[[], int]) -> int:
    """Upstream's non-daemon behaviour: a menu, then wait for a choice on stdin."""
    title = "Bannou HTTP Tester" if fmt == "http-tester" else "Bannou Edge Tester"
    while True:
        say(f"{title} (reference)")
        say("=" * len(f"{title} (reference)"))
        say(f"Endpoint: {base}")
        say()
        say("Select a test to run:")
        say("  1. Run all tests")
        say("  0. Exit")
        print("Enter your choice: ", end="", flush=True)
        line = sys.stdin.readline()
        while not line:  # no input yet (or stdin closed): keep waiting, as a console program does
            time.sleep(0.5)
            line = sys.stdin.readline()
        choice = line.strip()
        if choice == "0":
            return 0
        if choice == "1":
            run()
        else:
            say(f"Invalid choice: {choice!r}")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_bannou.reference.tester", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--format", choices=FORMATS, required=True, help="which upstream tester to imitate")
    ap.add_argument(
        "--daemon", "-d", action="store_true", help="run all tests and exit (as DAEMON_MODE=true)"
    )
    args = ap.parse_args(argv)
    env = os.environ if env is None else env
    base = endpoint(args.format, env)
    daemon = args.daemon or env.get("DAEMON_MODE", "").lower() == "true"
    try:
        wait_s = float(env.get("BANNOU_TESTER_WAIT", DEFAULT_WAIT_S))
    except ValueError:
        say(f"❌ BANNOU_TESTER_WAIT={env.get('BANNOU_TESTER_WAIT')!r} is not a number of seconds")
        return 1

    def run() -> int:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, trust_env=False) as client:
            error = wait_ready(client, base, wait_s)
            if error is not None:
                say(f"❌ bannou at {base} did not answer /health within {wait_s:g}s ({error})")
                return 1
            say(f"✅ bannou at {base} is healthy")
            suite = Suite(client, base, connect_url=connect_endpoint(env, base))
            return run_http(suite, env) if args.format == "http-tester" else run_edge(suite, env)

    if not daemon:
        return interactive_menu(args.format, base, run)
    return run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
