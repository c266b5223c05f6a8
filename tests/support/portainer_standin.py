"""A stand-in Portainer for tests: a real HTTP server implementing the subset of Portainer's API
the portainer backend uses, as Portainer's own OpenAPI document specifies it.

No Portainer server can be installed here, so this server follows
``../shared/upstream-schemas/portainer-openapi.yaml`` (Portainer EE 2.45.3's document):

- every request is matched to the document's operation (method + path template under the
  document's server ``/api``); its ``security`` is enforced (``X-API-KEY`` or a JWT in
  ``Authorization: Bearer``, either satisfies a requirement), and its required path/query
  parameters and JSON body are validated against the document's schemas by a small validator
  (``type``, ``required``, ``properties``, ``items``, ``enum``, ``allOf``/``anyOf``/``oneOf``,
  ``additionalProperties``, ``$ref``): a bad request gets 400 with Portainer's error body
  ``{"message": ..., "details": ...}``, wrong or missing auth 401, wrong credentials on
  ``POST /auth`` 422 (as the document lists), an unknown stack or environment 404;
- every response of an implemented operation is validated against the document too; a
  response the document does not allow is recorded in ``violations`` (tests assert it is empty);
- ``/api/endpoints/{id}/docker/...`` is forwarded unchanged to the real Docker Engine on its
  unix socket (authentication headers removed), the response streamed back;
- standalone compose stacks run with the real Compose v2 binary (``-p NAME -f FILE up -d`` /
  ``down --remove-orphans [-v]``), one working directory per stack.

Implemented operations: ``POST /auth``, ``GET /endpoints``, ``GET /endpoints/{id}``, ``GET /stacks``,
``POST /stacks/create/standalone/string``, ``GET|PUT|DELETE /stacks/{id}``,
``POST /stacks/{id}/stop|start``; other documented operations answer 501.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DOCUMENT = Path(
    os.environ.get("BANNOU_PORTAINER_OPENAPI")
    or Path(__file__).resolve().parents[3] / "shared" / "upstream-schemas" / "portainer-openapi.yaml"
)
_DOCKER_HOST = os.environ.get("DOCKER_HOST", "")
DOCKER_SOCKET = (
    _DOCKER_HOST[len("unix://") :] if _DOCKER_HOST.startswith("unix://") else "/var/run/docker.sock"
)
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}
AUTH_HEADERS = {"authorization", "x-api-key"}
STACK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

_DOC_CACHE: dict[str, OpenAPI] = {}


# --- the OpenAPI document -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: Mapping[str, Any]
    pattern: re.Pattern[str]
    literals: int


class OpenAPI:
    """Portainer's document: operations by method + path, and a validator of its schemas."""

    def __init__(self, path: Path = DOCUMENT) -> None:
        with open(path, "rb") as fh:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            self.doc: dict[str, Any] = yaml.load(fh, Loader=loader)
        self.base = (self.doc.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")
        self.schemes: Mapping[str, Any] = self.doc["components"]["securitySchemes"]
        self.operations: list[Operation] = []
        for template, item in self.doc["paths"].items():
            for method, spec in item.items():
                if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                    continue
                regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
                literals = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
                self.operations.append(Operation(method.upper(), template, spec, re.compile(regex), literals))
        self.operations.sort(key=lambda o: -o.literals)  # /stacks/create/... before /stacks/{id}

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> OpenAPI:
        key = str(path)
        if key not in _DOC_CACHE:
            _DOC_CACHE[key] = cls(path)
        return _DOC_CACHE[key]

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for ``path`` (under the server base, e.g. ``/api/stacks/3``)."""
        if not path.startswith(self.base + "/"):
            return None
        rel = path[len(self.base) :]
        for op in self.operations:
            if op.method == method:
                m = op.pattern.match(rel)
                if m:
                    return op, {k: unquote(v) for k, v in m.groupdict().items()}
        return None

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def skeleton(self, schema: Mapping[str, Any]) -> Any:
        """The smallest value ``schema`` accepts: required properties with zero values (the
        first enum value where there is one). Responses start from it, then fill in real data."""
        schema = self.resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        merged: dict[str, Any] = {}
        for sub in schema.get("allOf", []):
            value = self.skeleton(sub)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        is_object = "properties" in schema or bool(schema.get("allOf"))
        kind = schema.get("type", "object" if is_object else None)
        if kind == "object":
            props = schema.get("properties", {})
            for req in schema.get("required", []):
                merged[req] = self.skeleton(props.get(req, {}))
            return merged
        return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": []}.get(kind or "")

    def response_schema(self, method: str, template: str, status: int = 200) -> Mapping[str, Any]:
        spec = self.resolve(self.doc["paths"][template][method.lower()]["responses"][str(status)])
        schema = next(iter(spec["content"].values()))["schema"]
        schema = self.resolve(schema)
        return self.resolve(schema["items"]) if schema.get("type") == "array" else schema

    # validation
    def validate(self, schema: Mapping[str, Any], value: Any, where: str) -> list[str]:
        """Problems of ``value`` against ``schema``, each naming its JSON path."""
        schema = self.resolve(schema)
        problems: list[str] = []
        for sub in schema.get("allOf", []):
            problems += self.validate(sub, value, where)
        for key in ("anyOf", "oneOf"):
            if key in schema and all(self.validate(s, value, where) for s in schema[key]):
                problems.append(f"{where}: matches none of the {key} alternatives")
        kind = schema.get("type")
        if kind and not _is_type(value, kind):
            return [*problems, f"{where}: expected {kind}, got {type(value).__name__} {_short(value)}"]
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {_short(value)} is not one of {schema['enum']}")
        if isinstance(value, dict):
            for req in schema.get("required", []):
                if req not in value:
                    problems.append(f"{where}: required property {req!r} is missing")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for k, v in value.items():
                if k in props:
                    problems += self.validate(props[k], v, f"{where}.{k}")
                elif isinstance(extra, dict):
                    problems += self.validate(extra, v, f"{where}.{k}")
                elif extra is False:
                    problems.append(f"{where}: property {k!r} is not allowed")
        if isinstance(value, list) and "items" in schema:
            for i, v in enumerate(value):
                problems += self.validate(schema["items"], v, f"{where}[{i}]")
        return problems

    def validate_request(
        self, op: Operation, path_params: Mapping[str, str], query: Mapping[str, list[str]], body: bytes
    ) -> tuple[list[str], dict[str, Any], Any]:
        """Problems, the typed parameters (path and query) and the parsed JSON body."""
        problems: list[str] = []
        params: dict[str, Any] = {}
        for p in op.spec.get("parameters", []):
            p = self.resolve(p)
            where, name = p["in"], p["name"]
            if where == "path":
                raw: list[str] | None = [path_params[name]] if name in path_params else None
            elif where == "query":
                raw = query.get(name)
            else:
                continue
            if raw is None:
                if p.get("required"):
                    problems.append(f"{where} parameter {name!r} is required")
                continue
            value, problem = _coerce(self.resolve(p.get("schema", {})), raw, p.get("explode", True))
            if problem:
                problems.append(f"{where} parameter {name!r}: {problem}")
                continue
            problems += self.validate(p.get("schema", {}), value, f"{where} parameter {name!r}")
            params[name] = value
        payload: Any = None
        rb = op.spec.get("requestBody")
        if rb is not None:
            rb = self.resolve(rb)
            content = rb.get("content", {})
            schema = (content.get("application/json") or {}).get("schema")
            if not body:
                if rb.get("required"):
                    problems.append("request body is required")
            elif schema is not None:
                try:
                    payload = json.loads(body)
                except ValueError as exc:
                    problems.append(f"request body is not JSON: {exc}")
                else:
                    problems += self.validate(schema, payload, "body")
        return problems, params, payload

    def response_problems(self, op: Operation, status: int, body: Any) -> list[str]:
        responses = op.spec.get("responses", {})
        spec = responses.get(str(status)) or responses.get("default")
        if spec is None:
            if status >= 400 and isinstance(body, dict) and set(body) <= {"message", "details"}:
                return []  # Portainer's generic error body on a status the document omits
            return [f"{op.method} {op.template}: status {status} is not documented"]
        content = self.resolve(spec).get("content")
        if not content:
            return (
                []
                if body in (None, b"")
                else [f"{op.method} {op.template} {status}: documented without body"]
            )
        schema = next(iter(content.values())).get("schema")
        return self.validate(schema, body, f"{op.method} {op.template} {status} body") if schema else []


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(
        value, {"string": str, "boolean": bool, "object": dict, "array": list}.get(kind, object)
    )


def _coerce(schema: Mapping[str, Any], raw: list[str], explode: bool) -> tuple[Any, str]:
    kind = schema.get("type", "string")
    if kind == "array":
        parts = raw if explode else [x for r in raw for x in r.split(",")]
        items = []
        for part in parts:
            v, problem = _coerce(schema.get("items", {}), [part], True)
            if problem:
                return None, problem
            items.append(v)
        return items, ""
    text = raw[-1]
    if kind == "integer":
        try:
            return int(text), ""
        except ValueError:
            return None, f"{text!r} is not an integer"
    if kind == "number":
        try:
            return float(text), ""
        except ValueError:
            return None, f"{text!r} is not a number"
    if kind == "boolean":
        if text.lower() in ("true", "1"):
            return True, ""
        if text.lower() in ("false", "0"):
            return False, ""
        return None, f"{text!r} is not a boolean"
    return text, ""


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- JWT (HS256, as Portainer issues) -------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(secret: bytes, claims: Mapping[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(dict(claims)).encode())
    sig = _b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def check_jwt(secret: bytes, token: str) -> dict[str, Any] | None:
    try:
        head, body, sig = token.split(".")
        want = _b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    return claims if claims.get("exp", 0) > time.time() else None


# --- Docker over the unix socket -------------------------------------------------------------------------
class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class HttpError(Exception):
    def __init__(self, status: int, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def body(self) -> dict[str, str]:
        return {"message": self.message, "details": self.details or self.message}


# --- the server ------------------------------------------------------------------------------------------
@dataclass
class StackRecord:
    id: int
    name: str
    endpoint_id: int
    directory: Path
    env: list[dict[str, str]]
    status: int = 1
    created: int = field(default_factory=lambda: int(time.time()))
    updated: int = 0
    updated_by: str = ""
    created_by: str = ""

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Id": self.id,
            "Name": self.name,
            "Type": 2,
            "EndpointId": self.endpoint_id,
            "EntryPoint": "docker-compose.yml",
            "Env": self.env,
            "Status": self.status,
            "ProjectPath": str(self.directory),
            "CreationDate": self.created,
            "CreatedBy": self.created_by,
            "AdditionalFiles": [],
            "FromAppTemplate": False,
            "Option": {"Prune": False},
        }
        if self.updated:
            out["UpdateDate"] = self.updated
            out["UpdatedBy"] = self.updated_by
        return out


@dataclass
class Logged:
    method: str
    path: str
    status: int


class PortainerStandIn:
    """Start with ``start()`` (or as a context manager); ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(
        self,
        workdir: Path,
        compose: Sequence[str],
        *,
        api_key: str,
        username: str = "admin",
        password: str,
        endpoints: Mapping[int, str] | None = None,
        docker_socket: str = DOCKER_SOCKET,
        compose_timeout: float = 300.0,
        document: Path = DOCUMENT,
    ) -> None:
        self.api = OpenAPI.load(document)
        self.workdir = Path(workdir)
        self.compose = tuple(compose)
        self.api_key = api_key
        self.username = username
        self.password = password
        self.endpoints = dict(endpoints or {1: "local"})
        self.docker_socket = docker_socket
        self.compose_timeout = compose_timeout
        self.secret = os.urandom(32)
        self.stacks: dict[int, StackRecord] = {}
        self.issued: list[str] = []  # JWTs handed out (tests check none leaks)
        self.log: list[Logged] = []
        self.violations: list[str] = []
        self._next_id = 1
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PortainerStandIn:
        standin = self

        class Handler(_Handler):
            server_standin = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="portainer-standin", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> list[str]:
        """Stop serving and bring down every stack still deployed; their names."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        left = []
        for record in list(self.stacks.values()):
            self._compose(record, ["down", "--remove-orphans", "-v"])
            left.append(record.name)
        self.stacks.clear()
        return left

    def __enter__(self) -> PortainerStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # authentication
    def authenticated(self, headers: Mapping[str, str]) -> str | None:
        """Which scheme the request satisfies (``ApiKeyAuth`` / ``jwt``), or None."""
        key = headers.get("x-api-key")
        if key is not None and hmac.compare_digest(key.encode(), self.api_key.encode()):
            return "ApiKeyAuth"
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and check_jwt(self.secret, auth[7:].strip()):
            return "jwt"
        return None

    # compose
    def _compose(self, record: StackRecord, args: Sequence[str]) -> tuple[int, str]:
        argv = [*self.compose, "--ansi", "never", "-p", record.name, "-f", "docker-compose.yml", *args]
        env = {**os.environ, **{p["name"]: p["value"] for p in record.env}}
        try:
            out = subprocess.run(
                argv,
                cwd=record.directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.compose_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"compose {' '.join(args)} did not finish within {self.compose_timeout:.0f}s"
        return out.returncode, (out.stderr + out.stdout).strip()

    # operations (called with typed params and the parsed body)
    def op_authenticate(self, params: dict, body: dict, user: str | None) -> tuple[int, Any]:
        ok_user = hmac.compare_digest(str(body.get("username", "")).encode(), self.username.encode())
        ok_pass = hmac.compare_digest(str(body.get("password", "")).encode(), self.password.encode())
        if not (ok_user and ok_pass):
            raise HttpError(422, "Invalid credentials", "Unauthorized")
        token = make_jwt(
            self.secret, {"id": 1, "username": self.username, "role": 1, "exp": int(time.time()) + 8 * 3600}
        )
        self.issued.append(token)
        return 200, {"jwt": token}

    def _endpoint_json(self, eid: int, template: str) -> dict[str, Any]:
        """An environment in the shape ``GET {template}`` documents, pointing at the local Docker."""
        base = self.api.skeleton(self.api.response_schema("GET", template))
        return base | {
            "Id": eid,
            "Name": self.endpoints[eid],
            "Type": 1,
            "URL": f"unix://{self.docker_socket}",
            "PublicURL": "",
            "GroupId": 1,
            "Status": 1,
            "ContainerEngine": "docker",
        }

    def _endpoint(self, eid: int) -> int:
        if eid not in self.endpoints:
            raise HttpError(
                404, "Unable to find an environment with the specified identifier inside the database"
            )
        return eid

    def op_endpoint_list(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        found = [self._endpoint_json(e, "/endpoints") for e in sorted(self.endpoints)]
        if params.get("search"):
            found = [e for e in found if params["search"].lower() in e["Name"].lower()]
        start = params.get("start", 0)
        limit = params.get("limit") or len(found)
        return 200, found[start : start + limit]

    def op_endpoint_inspect(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        return 200, self._endpoint_json(self._endpoint(params["id"]), "/endpoints/{id}")

    def op_stack_list(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        flt: dict[str, Any] = {}
        if params.get("filters"):
            try:
                flt = json.loads(params["filters"])
            except ValueError as exc:
                raise HttpError(400, "Invalid query parameter: filters", str(exc)) from None
        wanted = flt.get("EndpointID", flt.get("EndpointId"))
        with self._lock:
            found = [s.json() for s in self.stacks.values() if wanted is None or s.endpoint_id == int(wanted)]
        return 200, found

    def _stack(self, sid: int) -> StackRecord:
        record = self.stacks.get(sid)
        if record is None:
            raise HttpError(404, "Unable to find a stack with the specified identifier inside the database")
        return record

    def op_stack_create(self, params: dict, body: dict, user: str | None) -> tuple[int, Any]:
        eid = self._endpoint(params["endpointId"])
        name = body["Name"]
        if not STACK_NAME.match(name):
            raise HttpError(400, "Invalid stack name", "a stack name is lowercase letters, digits, - and _")
        if not body["StackFileContent"].strip():
            raise HttpError(400, "Invalid stack file content")
        with self._lock:
            if any(s.name == name and s.endpoint_id == eid for s in self.stacks.values()):
                raise HttpError(409, f"A stack with the normalized name '{name}' already exists")
            sid = self._next_id
            self._next_id += 1
            directory = self.workdir / "compose" / str(sid)
            record = StackRecord(
                sid, name, eid, directory, list(body.get("Env") or []), created_by=user or ""
            )
            self.stacks[sid] = record
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "docker-compose.yml").write_text(body["StackFileContent"])
        code, output = self._compose(record, ["up", "-d"])
        if code != 0:
            self._compose(record, ["down", "--remove-orphans", "-v"])
            with self._lock:
                self.stacks.pop(sid, None)
            shutil.rmtree(directory, ignore_errors=True)
            raise HttpError(500, "Failed to deploy a stack", output)
        return 200, record.json()

    def op_stack_inspect(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        return 200, self._stack(params["id"]).json()

    def op_stack_update(self, params: dict, body: dict, user: str | None) -> tuple[int, Any]:
        self._endpoint(params["endpointId"])
        record = self._stack(params["id"])
        content = body.get("StackFileContent")
        if not content:
            raise HttpError(400, "Invalid stack file content")
        path = record.directory / "docker-compose.yml"
        previous = path.read_text()
        path.write_text(content)
        if body.get("Env") is not None:
            record.env = list(body["Env"])
        code, output = self._compose(record, ["up", "-d"])
        if code != 0:
            path.write_text(previous)
            raise HttpError(500, "Failed to deploy a stack", output)
        record.updated, record.updated_by, record.status = int(time.time()), user or "", 1
        return 200, record.json()

    def op_stack_delete(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        self._endpoint(params["endpointId"])
        record = self._stack(params["id"])
        args = ["down", "--remove-orphans"] + (["-v"] if params.get("removeVolumes") else [])
        code, output = self._compose(record, args)
        if code != 0:
            raise HttpError(500, "Unable to remove stack", output)
        with self._lock:
            self.stacks.pop(record.id, None)
        shutil.rmtree(record.directory, ignore_errors=True)
        return 204, None

    def op_stack_stop(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        self._endpoint(params["endpointId"])
        record = self._stack(params["id"])
        if record.status == 2:
            raise HttpError(409, "Stack is already inactive")
        code, output = self._compose(record, ["stop"])
        if code != 0:
            raise HttpError(500, "Unable to stop stack", output)
        record.status = 2
        return 200, record.json()

    def op_stack_start(self, params: dict, body: Any, user: str | None) -> tuple[int, Any]:
        self._endpoint(params["endpointId"])
        record = self._stack(params["id"])
        if record.status == 1:
            raise HttpError(409, "Stack is already active")
        code, output = self._compose(record, ["up", "-d"])
        if code != 0:
            raise HttpError(500, "Unable to start stack", output)
        record.status = 1
        return 200, record.json()

    def handler_for(self, op_id: str) -> Callable[[dict, Any, str | None], tuple[int, Any]] | None:
        return {
            "AuthenticateUser": self.op_authenticate,
            "EndpointList": self.op_endpoint_list,
            "EndpointInspect": self.op_endpoint_inspect,
            "StackList": self.op_stack_list,
            "StackCreateDockerStandaloneString": self.op_stack_create,
            "StackInspect": self.op_stack_inspect,
            "StackUpdate": self.op_stack_update,
            "StackDelete": self.op_stack_delete,
            "StackStop": self.op_stack_stop,
            "StackStart": self.op_stack_start,
        }.get(op_id)


DOCKER_PROXY = re.compile(r"^/api/endpoints/(?P<id>[^/]+)/docker(?P<rest>/.*)$")


class _Handler(BaseHTTPRequestHandler):
    server_standin: PortainerStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read `log`
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    # plumbing
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _dispatch(self) -> None:
        s = self.server_standin
        url = urlsplit(self.path)
        body = self._body()
        status = 500
        try:
            proxy = DOCKER_PROXY.match(url.path)
            if proxy:
                status = self._proxy(proxy["id"], proxy["rest"], url.query, body)
                return
            found = s.api.match(self.command, url.path)
            if found is None:
                raise HttpError(404, "Not found", f"{self.command} {url.path} is not a Portainer API route")
            op, path_params = found
            user = None
            security = op.spec.get("security")
            if security:
                scheme = s.authenticated(self._headers())
                if scheme is None or not any(scheme in req for req in security):
                    raise HttpError(401, "Unauthorized", "A valid authorisation token is missing")
                user = s.username if scheme == "jwt" else f"{s.username} (API key)"
            problems, params, payload = s.api.validate_request(
                op, path_params, parse_qs(url.query, keep_blank_values=True), body
            )
            if problems:
                raise HttpError(400, "Invalid request payload", "; ".join(problems))
            handler = s.handler_for(op.spec.get("operationId", ""))
            if handler is None:
                raise HttpError(501, "Not implemented by the Portainer stand-in", op.template)
            status, out = handler(params, payload, user)
            problems = s.api.response_problems(op, status, out)
            if problems:
                s.violations.extend(problems)
            self._send_json(status, out)
        except HttpError as err:
            status = err.status
            self._send_json(err.status, err.body())
        except Exception as exc:  # a stand-in bug: answer like Portainer, and record it
            status = 500
            s.violations.append(f"{self.command} {url.path}: {type(exc).__name__}: {exc}")
            self._send_json(500, {"message": "Internal server error", "details": str(exc)})
        finally:
            s.log.append(Logged(self.command, url.path, status))

    def _proxy(self, endpoint: str, rest: str, query: str, body: bytes) -> int:
        """Forward to the Docker Engine unchanged (minus Portainer's auth headers); stream back."""
        s = self.server_standin
        if s.authenticated(self._headers()) is None:
            raise HttpError(401, "Unauthorized", "A valid authorisation token is missing")
        try:
            eid = int(endpoint)
        except ValueError:
            raise HttpError(400, "Invalid environment identifier route variable", endpoint) from None
        s._endpoint(eid)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in AUTH_HEADERS | HOP_HEADERS | {"host", "content-length"}
        }
        conn = UnixHTTPConnection(s.docker_socket, timeout=s.compose_timeout)
        started = False
        try:
            conn.request(
                self.command, rest + (f"?{query}" if query else ""), body=body or None, headers=headers
            )
            resp = conn.getresponse()
            started = True
            self.send_response(resp.status)
            length = resp.getheader("Content-Length")
            for k, v in resp.getheaders():
                if k.lower() not in HOP_HEADERS and k.lower() != "content-length":
                    self.send_header(k, v)
            if length is not None:
                self.send_header("Content-Length", length)
            else:  # a stream (logs, exec): delimited by closing the connection
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            while True:
                chunk = resp.read1(65536) if length is None else resp.read(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
            return resp.status
        except OSError as exc:
            if started or isinstance(exc, BrokenPipeError | ConnectionResetError):
                self.close_connection = True
                return 499
            raise HttpError(502, "Unable to proxy the request to the Docker environment", str(exc)) from None
        finally:
            conn.close()


# --- test bookkeeping (shared by conftest and the test modules) -------------------------------------------
RUN_IDS: set[str] = set()


def new_run_id(prefix: str = "ptn") -> str:
    """A run id recorded for the session's leak check."""
    import uuid

    rid = f"{prefix}-{uuid.uuid4().hex[:10]}"
    RUN_IDS.add(rid)
    return rid
