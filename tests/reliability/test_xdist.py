"""pytest-xdist: one deploy per preset, workers isolated, shared mode, two sessions at once."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.support.reliability import carrying

pytest.importorskip("xdist", reason="pip install pytest-xdist")

# every test records where it ran and what it saw of its environment
TESTS = """
import json, os, pytest

def _record(env, name):
    row = {
        "test": name,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "preset": env.preset,
        "run_id": env.run_id,
        "url": env.url(),
        "pids": [int(s.id) for s in env.status() if s.id.isdigit()],
    }
    with open(os.path.join(os.path.dirname(__file__), "seen.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\\n")

@pytest.mark.preset("red")
@pytest.mark.parametrize("i", range(4))
def test_red(bannou_env, i):
    _record(bannou_env, f"red{i}")

@pytest.mark.preset("green")
@pytest.mark.parametrize("i", range(3))
def test_green(bannou_env, i):
    _record(bannou_env, f"green{i}")

@pytest.mark.preset("blue")
@pytest.mark.parametrize("i", range(3))
def test_blue(bannou_env, i):
    _record(bannou_env, f"blue{i}")

@pytest.mark.preset("gold")
@pytest.mark.parametrize("i", range(2))
def test_gold(bannou_env, i):
    _record(bannou_env, f"gold{i}")

@pytest.mark.parametrize("i", range(4))
def test_plain(i):
    pass
"""


def _seen(project) -> list[dict]:
    path = project.path / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("workers", [2, 4])
def test_each_preset_is_deployed_once_on_one_worker(project, workers):
    project.write("test_many.py", TESTS)
    code, out = project.run(f"-n{workers}", "-q", "-p", "no:cacheprovider")
    assert code == 0, out
    deploys = project.deploys()
    per_preset = defaultdict(list)
    for d in deploys:
        per_preset[d["key"]].append(d["worker"])
    print(f"-n {workers}: deploys per preset {dict((k, len(v)) for k, v in per_preset.items())}")
    assert {k: len(v) for k, v in per_preset.items()} == {"red": 1, "green": 1, "blue": 1, "gold": 1}, out
    seen = _seen(project)
    assert len(seen) == 12
    workers_of = defaultdict(set)
    for row in seen:
        workers_of[row["preset"]].add(row["worker"])
    assert all(len(w) == 1 for w in workers_of.values()), workers_of
    assert len({w for ws in workers_of.values() for w in ws}) == min(workers, 4)
    assert project.leftovers() == {}


def test_workers_never_touch_each_others_resources(project):
    project.write("test_many.py", TESTS)
    code, out = project.run("-n2", "-q")
    assert code == 0, out
    # the controller recorded seconds per test per preset: the next run balances by them
    durations = json.loads((project.path / ".pytest_cache/v/bannou/durations").read_text())
    assert all(durations[p] > 0 for p in ("red", "green", "blue", "gold"))
    seen = _seen(project)
    by_worker = defaultdict(lambda: {"run_ids": set(), "pids": set(), "urls": set()})
    for row in seen:
        w = by_worker[row["worker"]]
        w["run_ids"].add(row["run_id"])
        w["pids"].update(row["pids"])
        w["urls"].add(row["url"])
    assert len(by_worker) == 2
    a, b = by_worker.values()
    assert len(a["run_ids"]) == 1 and len(b["run_ids"]) == 1  # one run id per worker
    assert a["run_ids"].isdisjoint(b["run_ids"])
    assert a["pids"] and b["pids"] and a["pids"].isdisjoint(b["pids"])
    assert a["urls"].isdisjoint(b["urls"])
    assert project.leftovers() == {}


def test_shared_mode_deploys_once_for_every_worker_and_tears_down_after_the_last(project):
    project.write("test_many.py", TESTS)
    code, out = project.run("-n2", "--bannou-share=session", "-q", "-p", "no:cacheprovider")
    assert code == 0, out
    deploys = project.deploys()
    assert sorted(d["key"] for d in deploys) == ["blue", "gold", "green", "red"], deploys
    assert len({d["run_id"] for d in deploys}) == 1  # the controller's shared run id
    seen = _seen(project)
    assert len({row["worker"] for row in seen}) == 2  # tests of the presets ran on both workers
    urls = defaultdict(set)
    for row in seen:
        urls[row["preset"]].add(row["url"])
    assert all(len(u) == 1 for u in urls.values())  # every worker used the same environment
    shared_pids = {p for d in deploys for p in d["pids"]}
    # gone, whoever removed them: the last worker (its progress line goes to its own stderr,
    # which xdist may not show) or the controller ("removed by the controller")
    assert shared_pids and not any(carrying(d["run_id"]) for d in deploys)
    assert project.leftovers() == {}


def test_shared_mode_worker_crash_is_cleaned_by_the_controller(project):
    project.write(
        "test_crash.py",
        """
        import os, pytest

        @pytest.mark.preset("red")
        @pytest.mark.parametrize("i", range(4))
        def test_red(bannou_env, i):
            if i == 0:
                os._exit(3)
        """,
    )
    code, out = project.run("-n2", "--bannou-share=session", "-q", "-p", "no:cacheprovider")
    assert code == 1, out
    assert "crashed" in out
    deploys = project.deploys()
    assert deploys, out
    assert not any(carrying(d["run_id"]) for d in deploys)
    assert project.leftovers() == {}


def test_two_sessions_at_once_on_the_same_presets_do_not_cross_talk(project):
    project.write("test_many.py", TESTS)
    first = project.start("-n2", "-q", "-p", "no:cacheprovider")
    second = project.start("-n2", "-q", "-p", "no:cacheprovider")
    from tests.support.reliability import finish

    finish(first)
    finish(second)
    out1, out2 = project.output(first), project.output(second)
    assert first.returncode == 0, out1
    assert second.returncode == 0, out2
    seen = _seen(project)
    assert len(seen) == 24
    run_ids = {row["run_id"] for row in seen}
    assert len(run_ids) == 4  # two workers per session, never shared
    pids_by_run = defaultdict(set)
    for row in seen:
        pids_by_run[row["run_id"]].update(row["pids"])
    all_pids = [p for pids in pids_by_run.values() for p in pids]
    assert len(all_pids) == len(set(all_pids))
    print(f"two sessions x -n 2: {len(seen)} tests, {len(run_ids)} run ids, 0 shared processes")
    assert project.leftovers() == {}
