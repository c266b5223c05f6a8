"""A plain-text tests x presets table for the terminal summary (pytest's or the CLI's).

Only rows that did not pass everywhere are listed by default: a 1,000-test run that passed
prints two lines, and one that did not shows where it failed at a glance.
"""

from __future__ import annotations

from .._support.text import terminal_text
from .html import columns, matrix
from .model import NO_PRESET, OUTCOMES, RunReport

LABELS = {
    "passed": "passed",
    "failed": "FAILED",
    "error": "ERROR",
    "skipped": "skipped",
    "not_run": "NOT RUN",
    "unclear": "UNCLEAR",
}


def summary_line(report: RunReport) -> str:
    counts = report.counts()
    parts = [f"{counts[o]} {o.replace('_', ' ')}" for o in OUTCOMES if counts[o]]
    envs = len(report.presets)
    return terminal_text(
        f"bannou results (run {report.run_id}, backend {report.backend or '-'}, {envs} environments): "
        + (", ".join(parts) or "no results")
    )


def render_terminal(
    report: RunReport, *, all_rows: bool = False, max_rows: int = 50, width: int = 120
) -> str:
    """The summary line, then the table of rows that did not pass (all rows with ``all_rows``)."""
    lines = [summary_line(report)]
    # names come from tests and testers: their control characters are escaped before measuring
    rows = {terminal_text(name): cells for name, cells in matrix(report).items()}
    if not all_rows:
        rows = {
            name: cells
            for name, cells in rows.items()
            if any(t.outcome not in ("passed", "skipped") for t in cells.values())
        }
    if not rows:
        return lines[0]
    cols = columns(report)
    heads = [terminal_text(c or NO_PRESET) for c in cols]
    widths = [max(len(h), 7) for h in heads]
    name_w = max(10, min(max(len(n) for n in rows), width - sum(w + 2 for w in widths) - 2, 80))

    def cell(text: str, w: int) -> str:
        return text[:w].ljust(w)

    def line(first: str, values: list[str]) -> str:
        return cell(first, name_w) + "  " + "  ".join(cell(v, w) for v, w in zip(values, widths, strict=True))

    def clip(name: str) -> str:
        return name if len(name) <= name_w else "..." + name[-(name_w - 3) :]

    lines.append(
        cell("test", name_w) + "  " + "  ".join(cell(h, w) for h, w in zip(heads, widths, strict=True))
    )
    shown = list(rows.items())[:max_rows]
    for name, cells in shown:
        values = [LABELS.get(cells[c].outcome, cells[c].outcome) if c in cells else "-" for c in cols]
        lines.append(
            cell(clip(name), name_w)
            + "  "
            + "  ".join(cell(v, w) for v, w in zip(values, widths, strict=True))
        )
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more rows in report.html")
    return "\n".join(text.rstrip() for text in lines)
