"""Running a tester as a container on the environment's network (every tester on Compose and
Swarm; a tester given as an ``image`` on the other backends): what the plugin decides, with no
engine in sight.

The tester joins the network of the environment's target node and reaches every node by its
in-network name and container port, exactly as bannou's own tester images do in bannou's compose
files. This module describes the container (``backends.base.TesterContainer``: command with
``{junit}``/``{workdir}`` filled in, the tester's environment plus the endpoint variables of that
network, ``DAEMON_MODE=true`` always, the deadline) and parses what it left with
``runner.parse_outcome``; the environment's backend runs it (``Backend.run_tester_container``:
image, labels, network, killing it at its deadline, its timestamped log). Everything after the
container is shared with the process variant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends.base import TesterAddress, TesterContainer, TesterContainerOutcome
from ..topology.model import TesterSpec
from .endpoints import endpoint_variables
from .process import ProcessOutcome
from .registry import get_parser
from .runner import JUNIT_ENV, parse_outcome, safe_name, setup_error

if TYPE_CHECKING:  # pragma: no cover
    from ..environment.environment import Environment
    from .model import TesterRun

#: ``Backend.run_tester_container`` of the environment's backend
ContainerRunner = Callable[[TesterContainer], TesterContainerOutcome]


def run_tester_container(
    spec: TesterSpec,
    env: Environment,
    run: ContainerRunner,
    *,
    workdir: Path,
    deadline_s: float | None = None,
) -> TesterRun:
    """Run ``spec`` in a container on ``env``'s network through ``run`` and parse its output.

    Raises ``BannouError`` only for user mistakes found before anything starts (unknown format,
    target node the environment does not run); a missing image, a timeout or bad output are
    results.
    """
    get_parser(spec.format)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"tester-{safe_name(spec.name)}.log"
    junit_path = workdir / f"tester-{safe_name(spec.name)}.junit.xml"
    if junit_path.exists():
        junit_path.unlink()
    timeout = spec.timeout if deadline_s is None else min(spec.timeout, max(0.0, deadline_s))
    argv = [
        a.replace("{junit}", str(junit_path)).replace("{workdir}", str(workdir)) for a in spec.command or ()
    ]
    target = env.node_for(spec.target or env.main_node)  # DeployError naming the nodes

    def environment(address: TesterAddress) -> Mapping[str, str]:
        variables = {**spec.environment, **endpoint_variables(env.topology, target, address)}
        variables["DAEMON_MODE"] = "true"
        variables[JUNIT_ENV] = str(junit_path)
        return variables

    outcome = run(
        TesterContainer(
            name=spec.name,
            run_id=env.run_id,
            backend=env.backend,
            env_key=env.key,
            image=spec.image,
            command=tuple(argv),
            target=target,
            environment=environment,
            workdir=workdir,
            log_path=log_path,
            timeout=timeout,
        )
    )
    if outcome.error is not None:
        return setup_error(spec, outcome.error, list(outcome.command))
    ran = ProcessOutcome(outcome.exit_code, outcome.timed_out, outcome.duration, 0)
    result = parse_outcome(spec, ran, log_path, junit_path, argv=list(outcome.command), timeout=timeout)
    result.summary["image"] = outcome.image
    result.summary["network"] = outcome.network
    if outcome.container:
        result.summary["container"] = outcome.container
    return result
