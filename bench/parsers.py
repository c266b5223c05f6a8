"""Parse generated 100,000-test transcripts of each console format: time and memory.

    .venv/bin/python bench/parsers.py [--tests 100000] [--small 10000] [--rounds 3]

For http-tester and edge-tester (and the JUnit XML a tester writes) a transcript of N tests is
generated: every 50th test fails with two lines of its own output, every 20th prints an
interleaved log line, each line carries a Docker-style timestamp (what the plugin's log files
hold). Reported per format: the median wall and CPU time of ``parser.parse(text, exit_code)`` over
the rounds, and the tracemalloc peak of one parse beyond the transcript itself, for N and for the small
size: the same figure per test at both sizes shows memory is linear in the transcript's lines
(the console parsers split it into a list of clean lines while they parse) and in the results;
"kept per test" is what the returned results hold afterwards.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pytest_bannou.testers import get_parser

SEP = "━" * 68
T0 = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)


def _stamp(i: int) -> str:
    return (T0 + timedelta(milliseconds=7 * i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ ")


def http_transcript(n: int) -> tuple[str, int]:
    lines = ["Running in daemon mode - executing tests sequentially with fail-fast on service crashes..."]
    failed = 0
    for i in range(n):
        name = f"Suite{i % 97}.Case{i}"
        lines.append(f"Running test: {name}")
        if i % 20 == 0:
            lines.append(f"info: Bannou.Client[0] request {i} sent")
        if i % 50 == 49:
            failed += 1
            lines.append(f"   expected 200, got 500 from /case/{i}")
            lines.append('   response body: {"error": "boom"}')
            lines.append(f"❌ Test {name} failed: status 500")
        else:
            lines.append(f"✅ Test {name} completed successfully: ok")
    lines.append(f"All tests completed in daemon mode. Passed: {n - failed}, Failed: {failed}")
    return "".join(_stamp(i) + line + "\n" for i, line in enumerate(lines)), 1 if failed else 0


def edge_transcript(n: int) -> tuple[str, int]:
    lines = [
        "✅ Basic WebSocket connectivity test PASSED",
        "🔄 Running full edge test suite in daemon mode...",
        f"   Total tests registered: {n}",
    ]
    failed = 0
    for i in range(n):
        name = f"Edge Case {i}"
        lines += [SEP, f"📋 Running: {name}", SEP]
        if i % 20 == 0:
            lines.append(f"   sent capability request {i}")
        if i % 50 == 49:
            failed += 1
            lines.append(f"   Expected 41 capabilities, got 38 (case {i})")
            lines.append(f"❌ Test {name} FAILED")
        else:
            lines.append(f"✅ Test {name} PASSED")
    lines += [
        SEP,
        "📊 TEST SUMMARY",
        SEP,
        f"   Total:  {n}",
        f"   Passed: {n - failed}",
        f"   Failed: {failed}",
    ]
    return "".join(_stamp(i) + line + "\n" for i, line in enumerate(lines)), 1 if failed else 0


def junit_transcript(n: int) -> tuple[str, int]:
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="bench" tests="{n}">\n']
    failed = 0
    for i in range(n):
        if i % 50 == 49:
            failed += 1
            parts.append(
                f'<testcase classname="Suite{i % 97}" name="case{i}" time="0.007">'
                f'<failure message="status 500">expected 200, got 500</failure></testcase>\n'
            )
        else:
            parts.append(f'<testcase classname="Suite{i % 97}" name="case{i}" time="0.007"/>\n')
    parts.append("</testsuite>\n")
    return "".join(parts), 1 if failed else 0


FORMATS: dict[str, Callable[[int], tuple[str, int]]] = {
    "http-tester": http_transcript,
    "edge-tester": edge_transcript,
    "junit": junit_transcript,
}


def measure(fmt: str, n: int, rounds: int) -> dict[str, float]:
    text, code = FORMATS[fmt](n)
    parser = get_parser(fmt)
    run = parser.parse(text, code, tester=fmt)  # warm-up, and the check that it parsed everything
    if len([c for c in run.cases if not c.name.startswith("(")]) != n:
        raise SystemExit(f"{fmt}: parsed {len(run.cases)} cases, expected {n}: {run.counts_line()}")
    del run
    times, cpu = [], []
    for _ in range(rounds):
        gc.collect()
        t, c = time.perf_counter(), time.process_time()
        parser.parse(text, code, tester=fmt)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    run = parser.parse(text, code, tester=fmt)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak -= base
    kept = current - base  # what the returned TesterRun holds once the parse is over
    return {
        "tests": n,
        "mb": len(text.encode()) / 1e6,
        "seconds": statistics.median(times),
        "cpu": statistics.median(cpu),
        "peak_mb": peak / 1e6,
        "peak_per_test": peak / n,
        "kept_per_test": kept / n,
        "cases": len(run.cases),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--formats", nargs="*", default=list(FORMATS))
    args = ap.parse_args(argv)
    print(
        "| format | tests | transcript | parse wall (median) | parse CPU | peak beyond text | peak per test"
        " | kept per test |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for fmt in args.formats:
        for n in (args.small, args.tests):
            r = measure(fmt, n, args.rounds)
            print(
                f"| {fmt} | {n:,} | {r['mb']:.1f} MB | {r['seconds']:.3f} s | {r['cpu']:.3f} s "
                f"| {r['peak_mb']:.1f} MB | {r['peak_per_test']:.0f} B | {r['kept_per_test']:.0f} B |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
