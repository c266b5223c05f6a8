"""Portainer backend: one Portainer standalone compose stack per environment, over Portainer's
HTTP API (httpx).

The topology is rendered to the same compose file the compose backend runs (``docker.compose_file``)
and created as a stack (``POST /api/stacks/create/standalone/string``, stack name = the compose
project name). Everything about containers (images, status, published ports, logs, exec,
restart) goes through Portainer's Docker proxy ``/api/endpoints/{id}/docker/...``, which
forwards Docker Engine API calls unchanged. Changes (scale, restart with environment, a
transition) update the stack file (``PUT /api/stacks/{id}``): compose recreates only services
whose definition changed, so the services of kept nodes are carried over verbatim from the
previous file. Teardown deletes the stack, then removes whatever of the project the proxy still
lists. Readiness is left to ``health.wait_ready`` probing the published ports.

Settings: see ``settings``; Portainer's API: ``client``.

Secrets (password, API key, JWT) never appear in messages, reprs or logs: every message built
here and in ``client`` passes through ``Secrets.mask``.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
import yaml

from ...errors import BackendUnavailable, DeployError
from ...topology.diff import Action, Transition
from ...topology.model import Node, Topology
from ..base import (
    LABEL_PREFIX,
    LABEL_RUN_ID,
    Availability,
    Backend,
    BackendOptions,
    Endpoint,
    ExecResult,
    ReplicaStatus,
)
from ..docker import engine as _docker
from ..docker.compose_file import (
    LABEL_PROJECT,
    LABEL_SERVICE,
    no_published_port,
    project_name,
    published_port,
    render,
    render_text,
    replica_containers,
    replica_statuses,
)
from ..docker.compose_file import service_name as _service
from .client import PortainerClient, PortainerError, demux, stack_owner, sweep
from .faults import PortainerFaults
from .settings import PortainerSettings
from .testers import PortainerTesters

LABEL_SPEC_HASH = f"{LABEL_PREFIX}.spec-hash"
STACK_PREFIX = "bannou-"
STACK_FILE_SUFFIX = ".portainer-stack.yaml"  # in the run directory, after the project name
SNAPSHOT_AGE = 0.25  # endpoint() lookups may reuse a container list this old


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- the backend -----------------------------------------------------------------------------------------
class PortainerBackend(PortainerFaults, PortainerTesters, Backend):
    name: ClassVar[str] = "portainer"

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self.settings = PortainerSettings.load(options.extra)
        self._client: PortainerClient | None = None
        self._endpoint: dict[str, Any] | None = None
        self.project: str | None = None
        self.stack_id: int | None = None
        self._doc: dict[str, Any] = {}
        self._snap: list[dict[str, Any]] = []
        self._snap_at = 0.0
        self._restarts: dict[str, int] = {}
        self._image_infos: dict[str, _docker.ImageInfo] = {}
        self._pending: tuple[dict[str, Any], str] | None = None  # a stack update not sent yet

    def __repr__(self) -> str:
        return f"PortainerBackend(run_id={self.run_id!r}, settings={self.settings!r})"

    # capability
    @classmethod
    def available(cls) -> Availability:
        return cls.check(PortainerSettings.load())

    @classmethod
    def check(cls, settings: PortainerSettings) -> Availability:
        """Whether Portainer at ``settings`` can be used: configured, reachable, credentials
        accepted, the environment exists and its Docker answers."""
        try:
            client = PortainerClient(settings)
        except BackendUnavailable as exc:
            return Availability(False, exc.message)
        try:
            client.login()
            env = client.resolve_endpoint(settings.endpoint)
            version = client.docker(env["Id"], "GET", "/version", what="ask Docker its version").json()
        except (BackendUnavailable, PortainerError) as exc:
            return Availability(False, client.secrets.mask(exc.message))
        finally:
            client.close()
        return Availability(
            True,
            f"Portainer at {settings.url}, environment {env['Id']} ({env.get('Name')}), "
            f"Docker Engine {version.get('Version', '?')}",
        )

    # plumbing
    @property
    def client(self) -> PortainerClient:
        if self._client is None:
            client = PortainerClient(self.settings)
            client.login()
            self._client = client
        return self._client

    @property
    def endpoint_id(self) -> int:
        if self._endpoint is None:
            self._endpoint = self.client.resolve_endpoint(self.settings.endpoint)
        return int(self._endpoint["Id"])

    @property
    def host(self) -> str:
        """Where published ports are reached from this process."""
        if self.settings.host:
            return self.settings.host
        self.endpoint_id  # noqa: B018 - resolves the environment
        env = self._endpoint or {}
        public = str(env.get("PublicURL") or "")
        if public:  # "URL or IP address where exposed containers will be reachable"
            return urlsplit(public if "//" in public else "//" + public).hostname or public
        env_url = urlsplit(str(env.get("URL") or ""))
        if env_url.scheme == "tcp" and env_url.hostname:
            return env_url.hostname
        return urlsplit(self.settings.url).hostname or "127.0.0.1"

    def _mask(self, text: str) -> str:
        return self._client.secrets.mask(text) if self._client else text

    def _docker(self, method: str, path: str, *, what: str, **kw: Any) -> httpx.Response:
        return self.client.docker(self.endpoint_id, method, path, what=what, **kw)

    def _where(self) -> str:
        env = self._endpoint or {}
        where = f"environment {env.get('Id')} {env.get('Name')!r} at {self.settings.url}"
        return f"Portainer stack {self.project} ({where})"

    def _require(self, node: str) -> Node:
        return self.deployed_node(node)

    # images and the stack file
    def _images(self, topology: Topology) -> dict[str, _docker.ImageInfo]:
        infos: dict[str, _docker.ImageInfo] = {}
        missing: list[str] = []
        for node in topology.nodes:
            name = _docker.image_for(node)
            if name in infos or any(m.startswith(name + " ") for m in missing):
                continue
            resp = self._docker(
                "GET", f"/images/{quote(name, safe='')}/json", what=f"inspect image {name}", ok=(404,)
            )
            if resp.status_code == 404:
                missing.append(f"{name} (node {node.name})")
                continue
            infos[name] = _docker.image_info_from_attrs(name, resp.json())
        self._image_infos.update(infos)
        if missing:
            env = self._endpoint or {}
            raise DeployError(
                f"preset {topology.preset!r}: image(s) not found on Portainer environment {env.get('Id')} "
                f"({env.get('Name')}) at {self.settings.url}: {', '.join(missing)}. Nothing is pulled: "
                f"{_docker.BUILD_IMAGES_HINT} on that Docker host, or build/tag your own with "
                "`docker build -t NAME .` / `docker tag EXISTING NAME`"
            )
        return infos

    def _render(self, topology: Topology, images: Mapping[str, _docker.ImageInfo]) -> dict[str, Any]:
        """The compose file for ``topology``, labelled as this backend's, with each service's spec
        hash (so a changed node is recreated even when its rendering looks alike)."""
        assert self.project
        doc = render(topology, self.options, self.project, images)
        remote = not _is_loopback(self.host)
        for node in topology.nodes:
            svc = doc["services"][_service(node.name)]
            svc["labels"][_docker.LABEL_BACKEND] = self.name
            svc["labels"][LABEL_SPEC_HASH] = node.spec_hash()
            if remote:  # published on every interface of a remote Docker host
                for p in svc.get("ports", []):
                    p.pop("host_ip", None)
        for section in ("networks", "volumes"):
            for spec in (doc.get(section) or {}).values():
                if isinstance(spec, dict) and "labels" in spec:
                    spec["labels"][_docker.LABEL_BACKEND] = self.name
        return doc

    def _evolve(self, new: Topology, keep: Mapping[str, Action], images) -> dict[str, Any]:
        """The next stack file: fresh services for changed nodes, the previous definitions of
        kept ones (a new preset name in their labels must not recreate them), scaled ones with
        their new replica count."""
        fresh = self._render(new, images)
        for node in new.nodes:
            svc = _service(node.name)
            action = keep.get(node.name)
            old = self._doc.get("services", {}).get(svc)
            if old is None or action not in (Action.KEEP, Action.SCALE):
                continue
            carried = copy.deepcopy(old)
            carried.setdefault("deploy", {})["replicas"] = node.replicas
            fresh["services"][svc] = carried
        for section in ("networks", "volumes"):
            for key, spec in (self._doc.get(section) or {}).items():
                if key in (fresh.get(section) or {}):
                    fresh[section][key] = copy.deepcopy(spec)
        return fresh

    def _update(self, doc: dict[str, Any], deadline: float, what: str) -> None:
        assert self.stack_id is not None
        timeout = max(1.0, self.remaining(deadline))
        try:
            self.client.update_stack(self.endpoint_id, self.stack_id, render_text(doc), timeout, what)
        except PortainerError as exc:
            raise DeployError(self._mask(f"{self._where()}: {what} failed: {exc.message}")) from None
        self._doc = doc
        self._save_stack_file(doc)  # what ``reattach`` reads back
        self._invalidate()

    def _save_stack_file(self, doc: dict[str, Any]) -> Path:
        """The stack file as sent, in the run directory (for the user, and for ``reattach``)."""
        self.options.workdir.mkdir(parents=True, exist_ok=True)
        path = self.options.workdir / f"{self.project}{STACK_FILE_SUFFIX}"
        path.write_text(render_text(doc))
        return path

    def reattach(self, topology: Topology, deadline: float) -> None:
        """Take over this run's stack (kept by another process): the stack file last sent,
        from the run directory, and the stack of that name; the next change sends a stack file
        that carries the kept services over verbatim, so only the changed ones are recreated."""
        files = sorted(self.options.workdir.glob(f"*{STACK_FILE_SUFFIX}"))
        doc = yaml.safe_load(files[0].read_text()) if files else None
        project = doc.get("name") if isinstance(doc, dict) else None
        stacks = self.client.stacks(self.endpoint_id) if project else []
        stack = next((x for x in stacks if x.get("Name") == project), None)
        if stack is None:
            raise DeployError(
                self._mask(
                    f"portainer backend: run {self.run_id} has no stack file in {self.options.workdir} or"
                    f" no stack {project or '?'} at {self.settings.url} (preset {topology.preset!r});"
                    f" remove it with `bannou-env clean --run-id {self.run_id} --backend portainer`"
                    " and deploy it again"
                )
            )
        self.project, self.stack_id, self._doc = str(project), int(stack["Id"]), dict(doc)  # type: ignore[arg-type]
        self._images(topology)
        self.topology = topology
        self._invalidate()

    # containers
    def _containers(self, max_age: float = 0.0) -> list[dict[str, Any]]:
        if self.project is None:
            return []
        if max_age and time.monotonic() - self._snap_at <= max_age:
            return self._snap
        flt = json.dumps({"label": [f"{LABEL_PROJECT}={self.project}"]})
        found = self._docker(
            "GET", "/containers/json", params={"all": "1", "filters": flt}, what="list containers"
        ).json()
        found.sort(key=lambda c: c.get("Created", 0), reverse=True)  # newest first wins
        self._snap, self._snap_at = found, time.monotonic()
        return found

    def _invalidate(self) -> None:
        self._snap_at = 0.0

    def _replicas(self, node: str, max_age: float = 0.0) -> dict[int, dict[str, Any]]:
        return replica_containers(self._containers(max_age), node)

    def _container(self, node: str, replica: int, max_age: float = 0.0) -> dict[str, Any]:
        self._require(node)
        reps = self._replicas(node, max_age)
        if replica not in reps and max_age:
            reps = self._replicas(node)
        if replica not in reps:
            raise DeployError(
                f"{self._where()}: node {node!r} has no replica {replica} "
                f"(replicas: {sorted(reps) or 'none'})"
            )
        return reps[replica]

    def _remove_containers(self, ids: Sequence[str]) -> None:
        for cid in ids:
            self._docker(
                "DELETE",
                f"/containers/{cid}",
                params={"force": "1", "v": "1"},
                ok=(404, 409),
                what=f"remove container {cid[:12]}",
            )

    # lifecycle
    def deploy(self, topology: Topology, deadline: float) -> None:
        if self.topology is not None:
            raise DeployError(
                f"{self._where()} already runs preset {self.topology.preset!r}; "
                "use apply() for a transition or teardown() first"
            )
        images = self._images(topology)
        self.project = project_name(self.options, topology)
        self.topology = topology
        doc = self._render(topology, images)
        stack_file = self._save_stack_file(doc)
        timeout = max(1.0, self.remaining(deadline))
        try:
            stack = self.client.create_stack(self.endpoint_id, self.project, render_text(doc), timeout)
        except PortainerError as exc:
            hint = ""
            if exc.status == 409:
                hint = (
                    "; a stack of this name is left over: remove it with "
                    f"`bannou-env clean --run-id {self.run_id}`"
                )
            raise DeployError(
                self._mask(
                    f"preset {topology.preset!r}: {self._where()}: creating the stack failed: {exc.message}"
                    f"{hint}\n(the stack file sent: {stack_file})"
                )
            ) from None
        self.stack_id = int(stack["Id"])
        self._doc = doc
        self._invalidate()

    def apply(self, transition: Transition, deadline: float) -> None:
        if self.stack_id is None:
            self.topology = None  # the stack was never created: deploy it
        super().apply(transition, deadline)

    # transitions (``Backend.apply`` calls these). A transition is one stack update, sent
    # before the first primitive acts (``_flush``); the primitives then do what it left.
    def _check_changes(self, plan: Transition, deadline: float) -> None:
        assert plan.new is not None
        images = self._images(plan.new)
        actions = {c.name: c.action for c in plan.changes}
        self._pending = (self._evolve(plan.new, actions, images), f"transition ({plan.summary()})")

    def _flush(self, deadline: float) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._update(pending[0], deadline, pending[1])

    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        self._flush(deadline)
        self._remove_stopped(names)

    def _update_nodes(self, nodes: Sequence[Node], deadline: float) -> Sequence[str]:
        self._flush(deadline)  # the stack update recreated them
        return [n.name for n in nodes]

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        self._flush(deadline)  # the stack update started them

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        if self._pending is None:  # ``scale``: only these nodes change
            assert self.topology is not None
            scaled = {n.name for n in nodes}
            actions = {
                x.name: (Action.SCALE if x.name in scaled else Action.KEEP) for x in self.topology.nodes
            }
            what = ", ".join(f"scale {n.name} to {n.replicas}" for n in nodes)
            self._pending = (self._evolve(self.topology, actions, self._image_infos), what)
        self._flush(deadline)

    def _changes_done(self, plan: Transition, deadline: float) -> None:
        self._flush(deadline)
        for c in plan.of(Action.START, Action.RECREATE):
            self._restarts.pop(c.name, None)

    def _remove_stopped(self, nodes: Sequence[str]) -> None:
        """Containers of services no longer in the file (Portainer's update may keep orphans)."""
        wanted = {_service(n) for n in nodes}
        if wanted:
            ids = [
                c["Id"] for c in self._containers() if (c.get("Labels") or {}).get(LABEL_SERVICE) in wanted
            ]
            self._remove_containers(ids)
            self._invalidate()

    def teardown(self) -> None:
        """Delete the stack (with its volumes), then whatever of the project is still listed.
        Idempotent; tolerates a stack deleted behind our back and a failed create."""
        if self.project is None:
            return
        timeout = max(30.0, self.options.ready_timeout)
        problems: list[str] = []
        if self.stack_id is not None:
            try:
                self.client.delete_stack(self.endpoint_id, self.stack_id, timeout)
            except PortainerError as exc:
                problems.append(exc.message)
            self.stack_id = None
        problems += self._sweep_project()
        self.topology = None
        self._doc = {}
        self._invalidate()
        if problems:
            raise DeployError(
                self._mask(
                    f"{self._where()}: teardown left {'; '.join(problems)}; remove it with "
                    f"`bannou-env clean --run-id {self.run_id} --backend portainer`"
                )
            )

    def _sweep_project(self) -> list[str]:
        assert self.project
        return sweep(self.client, self.endpoint_id, {"label": [f"{LABEL_PROJECT}={self.project}"]}, None)

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        """Delete stacks named ``bannou-*`` whose containers carry ``run_id`` (or, when None,
        whose owner session is gone), and stacks named after ``run_id``; then remove labelled
        containers, networks and volumes left outside any stack."""
        settings = PortainerSettings.load(options.extra if options else None)
        client = PortainerClient(settings)
        try:
            client.login()
            env_id = int(client.resolve_endpoint(settings.endpoint)["Id"])
            removed: list[str] = []
            prefix = _docker.sanitize(f"{STACK_PREFIX}{run_id}") + "-" if run_id else None
            for stack in client.stacks(env_id):
                name = str(stack.get("Name", ""))
                if not name.startswith(STACK_PREFIX):
                    continue
                owner = stack_owner(client, env_id, name)
                if run_id is not None:
                    mine = (owner is not None and owner.get(LABEL_RUN_ID) == run_id) or (
                        owner is None and prefix is not None and name.startswith(prefix)
                    )
                else:
                    mine = owner is not None and LABEL_RUN_ID in owner and not _docker.owner_alive(owner)
                if not mine:
                    continue
                if client.delete_stack(env_id, int(stack["Id"]), max(30.0, settings.timeout)):
                    rid = (owner or {}).get(LABEL_RUN_ID, run_id)
                    removed.append(f"stack {name} (id {stack['Id']}, run id {rid})")
            flt = {"label": [f"{LABEL_RUN_ID}={run_id}" if run_id else LABEL_RUN_ID]}
            removed += sweep(client, env_id, flt, run_id, report=True)
            return removed
        except (BackendUnavailable, PortainerError) as exc:
            raise type(exc)(client.secrets.mask(exc.message)) from None
        finally:
            client.close()

    # inspection
    def status(self) -> list[ReplicaStatus]:
        if self.topology is None:
            return []
        return replica_statuses(self.topology, self._containers(), self._restarts)

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        n = self._require(node)
        port = port if port is not None else n.http_port
        if port is None:
            raise DeployError(f"{self._where()}: node {node!r} publishes no port")
        for max_age in (SNAPSHOT_AGE, 0.0):
            c = self._container(node, replica, max_age)
            host_port = published_port(c, port)
            if host_port is not None:
                return Endpoint(self.host, host_port)
        raise no_published_port(self._where(), node, replica, port, c)

    def logs(self, node: str, tail: int | None = None) -> str:
        self._require(node)
        chunks = []
        params = {"stdout": "1", "stderr": "1", "timestamps": "1"}
        if tail is not None:
            params["tail"] = str(max(tail, 0))
        for c in self._replicas(node).values():
            with contextlib.suppress(PortainerError):
                resp = self._docker(
                    "GET", f"/containers/{c['Id']}/logs", params=params, what=f"logs of {node}"
                )
                chunks.append(demux(resp.content))
        return _docker.merged_logs(chunks, tail)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        c = self._container(node, replica)
        spec = {"Cmd": list(argv), "AttachStdout": True, "AttachStderr": True, "Tty": False}
        exec_id = self._docker(
            "POST", f"/containers/{c['Id']}/exec", json=spec, what=f"exec in {node}"
        ).json()["Id"]
        try:
            resp = self._docker(
                "POST",
                f"/exec/{exec_id}/start",
                json={"Detach": False, "Tty": False},
                timeout=max(0.5, timeout),
                what=f"exec in {node}",
            )
        except PortainerError as exc:
            if exc.timed_out:
                return ExecResult(124, f"{' '.join(argv)}: timed out after {timeout:.1f}s")
            raise
        output = demux(resp.content).decode("utf-8", "replace")
        code = self._docker("GET", f"/exec/{exec_id}/json", what=f"exec in {node}").json().get("ExitCode")
        return ExecResult(int(code if code is not None else 1), output)

    # changes
    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        assert self.topology is not None
        if recreate:
            actions = {
                x.name: (Action.RECREATE if x.name == node.name else Action.KEEP) for x in self.topology.nodes
            }
            doc = self._evolve(self.topology, actions, self._images(self.topology))
            self._update(doc, deadline, f"restart {node.name} with a new environment")
        else:
            for c in self._replicas(node.name).values():
                self._docker(
                    "POST",
                    f"/containers/{c['Id']}/restart",
                    params={"t": "5"},
                    timeout=max(15.0, self.remaining(deadline)),
                    what=f"restart {node.name}",
                )
        self._restarts[node.name] = self._restarts.get(node.name, 0) + 1
        self._invalidate()

    # optional capabilities (see ``base``)
    @classmethod
    def peer_address(cls, node: Node, port: int) -> Endpoint:
        """Containers of the stack reach each other by node name and container port."""
        return Endpoint(node.name, port)

    def describe(self) -> str:
        return (
            f"backend portainer, {self._where()}, stack id {self.stack_id}: remove it in Portainer's UI "
            f"(Stacks) or with `bannou-env clean --run-id {self.run_id} --backend portainer`"
        )
