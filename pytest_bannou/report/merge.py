"""Merge several RunReports (xdist workers of one run, CI matrix jobs) into one.

Rules, chosen so that the result does not depend on the order of the inputs:

- Inputs are sorted by (started_at, ci_job, run_id, worker, content) first.
- Within one run (same run_id: the controller and its xdist workers) an env_key names one
  environment: its records are combined (first measured duration, union of nodes, timeline
  events and transitions, highest restart count per node).
- Across runs, environments are never combined: an env_key used by more than one run is
  renamed ``<env_key>@<ci_job>`` (or ``@<run_id>`` when jobs are unnamed or share a name) and
  that run's tests follow the rename, so every job's presets are kept.
- Faults (on an environment, under a test) are the union of the inputs' in time order; a
  renamed environment's faults name its new key.
- Two results for the same (nodeid, env_key) collapse into one: the worst outcome wins
  (error > failed > unclear > passed > skipped > not_run), ties broken by content; when the
  outcomes disagree the kept result gets a warning listing all of them, so nothing is hidden.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace

from ..errors import BannouError
from .model import SCHEMA_VERSION, FaultRecord, PresetRecord, RunReport, TestRecord

OUTCOME_PRECEDENCE = ("error", "failed", "unclear", "passed", "skipped", "not_run")
OUTCOME_RANK = {name: i for i, name in enumerate(OUTCOME_PRECEDENCE)}


def source_label(report: RunReport) -> str:
    """The one-line description of an input kept in ``RunReport.sources``."""
    return " ".join(
        part for part in (report.run_id, report.ci_job or "-", report.backend or "-", report.worker or "-")
    )


def _content_key(report: RunReport) -> str:
    return json.dumps(asdict(report), sort_keys=True, default=str)


def _sort_key(report: RunReport) -> tuple:
    return (report.started_at, report.ci_job or "", report.run_id, report.worker or "", _content_key(report))


def _ordered_union(lists: Iterable[list[str]]) -> list[str]:
    """Items in first-seen order, each as many times as the list that has it most often."""
    best: Counter[str] = Counter()
    order: list[str] = []
    for items in lists:
        counts = Counter(items)
        for item in items:
            if item not in best:
                order.append(item)
        best |= counts
    return [item for item in order for _ in range(best[item])]


def _first(values: Iterable):
    return next((v for v in values if v not in (None, "")), None)


def _fault_union(lists: Iterable[list[FaultRecord]]) -> list[FaultRecord]:
    """Every fault once (the same fault reported by two inputs is one), in time order."""
    unique = {fault for faults in lists for fault in faults}
    return sorted(unique, key=lambda f: (f.at, f.env_key or "", f.node, f.action, f.test or ""))


def _renamed(faults: list[FaultRecord], renames: dict[str, str]) -> list[FaultRecord]:
    return [replace(f, env_key=renames.get(f.env_key, f.env_key)) if f.env_key else f for f in faults]


def combine_presets(records: Sequence[PresetRecord]) -> PresetRecord:
    """One environment seen by several processes of the same run -> one record."""
    first = records[0]
    if len(records) == 1:
        return replace(first)
    restarts: dict[str, int] = {}
    for record in records:
        for node, count in record.restarts.items():
            restarts[node] = max(restarts.get(node, 0), count)
    timeline = sorted({ev for r in records for ev in r.timeline}, key=lambda e: (e.t_start, e.t_end, e.event))
    return PresetRecord(
        env_key=first.env_key,
        preset=first.preset,
        preset_hash=_first(r.preset_hash for r in records) or "",
        backend=_first(r.backend for r in records) or "",
        deploy_s=_first(r.deploy_s for r in records),
        ready_s=_first(r.ready_s for r in records),
        teardown_s=_first(r.teardown_s for r in records),
        nodes=_ordered_union([list(dict.fromkeys(r.nodes)) for r in records]),
        transitions=_ordered_union([r.transitions for r in records]),
        restarts=restarts,
        timeline=timeline,
        error=_first(r.error for r in records),
        faults=_fault_union(r.faults for r in records),
    )


def pick_result(candidates: Sequence[tuple[TestRecord, str]]) -> TestRecord:
    """The one result kept for duplicates of (nodeid, env_key); ``candidates`` are (record, source)."""

    def key(candidate: tuple[TestRecord, str]) -> tuple:
        record, source = candidate
        rank = OUTCOME_RANK.get(record.outcome, len(OUTCOME_RANK))
        return (rank, json.dumps(asdict(record), sort_keys=True), source)

    ranked = sorted(candidates, key=key)
    kept = replace(ranked[0][0])
    kept.warnings = list(dict.fromkeys(w for record, _ in ranked for w in record.warnings))
    kept.faults = _fault_union(record.faults for record, _ in ranked)
    outcomes = {record.outcome for record, _ in ranked}
    if len(outcomes) > 1:
        seen = ", ".join(f"{record.outcome} ({source})" for record, source in ranked)
        kept.warnings.append(f"reported {len(ranked)} times with different outcomes: {seen}")
    return kept


def _rename_labels(runs: dict[str, list[RunReport]], run_ids: list[str]) -> dict[str, str]:
    """The suffix for each run's colliding env_keys: its ci_job when unique, else its run_id."""
    jobs = {rid: _first(r.ci_job for r in runs[rid]) for rid in run_ids}
    job_counts = Counter(jobs.values())
    return {rid: (jobs[rid] if jobs[rid] and job_counts[jobs[rid]] == 1 else rid) for rid in run_ids}


def merge_reports(reports: Sequence[RunReport]) -> RunReport:
    """One report holding every preset and result of ``reports`` (see the module rules)."""
    if not reports:
        raise BannouError("report merge: no reports to merge; pass at least one results.json")
    ordered = sorted(reports, key=_sort_key)
    runs: dict[str, list[RunReport]] = {}
    for report in ordered:
        runs.setdefault(report.run_id, []).append(report)
    run_ids = list(runs)

    # environments per run, combined across that run's processes
    env_records: dict[str, dict[str, list[PresetRecord]]] = {}
    for rid in run_ids:
        per_key: dict[str, list[PresetRecord]] = {}
        for report in runs[rid]:
            for preset in report.presets:
                per_key.setdefault(preset.env_key, []).append(preset)
        # tests may name an environment no process recorded (e.g. a crashed worker): keep the key
        env_records[rid] = per_key

    key_runs: dict[str, list[str]] = {}
    for rid in run_ids:
        keys = set(env_records[rid]) | {t.preset for r in runs[rid] for t in r.tests if t.preset}
        for key in sorted(keys):
            key_runs.setdefault(key, []).append(rid)
    labels = _rename_labels(runs, run_ids)
    taken = {key for key, rids in key_runs.items() if len(rids) == 1}
    renames: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
    for key, rids in key_runs.items():
        if len(rids) == 1:
            continue
        for rid in rids:
            new = f"{key}@{labels[rid]}"
            n = 2
            while new in taken:
                new = f"{key}@{labels[rid]}#{n}"
                n += 1
            taken.add(new)
            renames[rid][key] = new

    presets: list[PresetRecord] = []
    for rid in run_ids:
        for key, records in env_records[rid].items():
            combined = combine_presets(records)
            combined.env_key = renames[rid].get(key, key)
            combined.faults = _renamed(combined.faults, renames[rid])
            presets.append(combined)

    results: dict[tuple[str, str | None], list[tuple[TestRecord, str]]] = {}
    for report in ordered:
        label = report.ci_job or report.worker or report.run_id
        for test in report.tests:
            preset = renames[report.run_id].get(test.preset, test.preset) if test.preset else None
            faults = _renamed(test.faults, renames[report.run_id])
            results.setdefault((test.nodeid, preset), []).append(
                (replace(test, preset=preset, faults=faults), label)
            )
    tests = [pick_result(candidates) for candidates in results.values()]

    sources: list[str] = []
    for report in ordered:
        sources.extend(report.sources or [source_label(report)])
    unique_runs = sorted(set(run_ids))
    if len(unique_runs) == 1:
        run_id = unique_runs[0]
    else:
        run_id = "merged-" + hashlib.sha256("\n".join(unique_runs).encode()).hexdigest()[:12]
    backends = sorted({b for r in ordered for b in r.backend.split("+") if b})
    jobs = {r.ci_job for r in ordered}
    finished = [r.finished_at for r in ordered if r.finished_at is not None]
    return RunReport(
        run_id=run_id,
        backend="+".join(backends),
        started_at=min(r.started_at for r in ordered),
        finished_at=max(finished) if finished else None,
        presets=presets,
        tests=tests,
        ci_job=jobs.pop() if len(jobs) == 1 else None,
        schema_version=SCHEMA_VERSION,
        worker=None,
        sources=list(dict.fromkeys(sources)),
    )
