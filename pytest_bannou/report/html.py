"""report.html: one self-contained page (inline CSS, JS and SVG; nothing fetched).

The page is rendered on the server side (plain HTML that reads fine without JS); the inline
script only adds filtering. Filters live in the URL fragment or query (``#outcome=failed,error&q=auth``),
so a link (or a headless browser) opens the page already filtered. Failure texts are bounded in
total so that a run with thousands of failures still gives a page a browser can open.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from .._support.files import atomic_write
from .._support.text import xml_text
from .merge import OUTCOME_RANK
from .model import NO_PRESET, OUTCOMES, FaultRecord, PresetRecord, RunReport, TestRecord, matrix_row

#: CSS class, symbol and label per outcome
OUTCOME_STYLE: dict[str, tuple[str, str, str]] = {
    "passed": ("p", "\u2713", "passed"),
    "failed": ("f", "\u2717", "failed"),
    "error": ("e", "E", "error"),
    "skipped": ("s", "s", "skipped"),
    "not_run": ("n", "\u2013", "not run"),
    "unclear": ("u", "?", "unclear"),
}
#: per-result cap and whole-page budget for failure texts (the full texts stay in results.json)
DETAIL_LIMIT = 20_000
DETAIL_BUDGET = 4_000_000
DETAIL_OVER_BUDGET = 600

TIMELINE_COLOURS = {
    "deploy": "#3b6fd4",
    "ready": "#2aa198",
    "transition": "#8e5cc4",
    "tests": "#6c9a3a",
    "teardown": "#8a8f98",
    "deploy failed": "#c0392b",
}
TESTER_COLOUR = "#d9822b"
FAULT_COLOUR = "#c0392b"  # a fault's marker on its environment's lane (an undo: hollow)
OTHER_COLOUR = "#b0a46a"

CSS = """
:root{--p:#2e9d4f;--f:#d7263d;--e:#a4161a;--s:#9aa0a6;--n:#c8ccd2;--u:#e0a800;--bg:#fafbfc;
  --line:#dde1e6}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2329;
  background:var(--bg)}
header{padding:14px 20px;background:#fff;border-bottom:1px solid var(--line)}
h1{font-size:19px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
.meta{color:#5a636e;margin:0 0 8px}.meta code{background:#eef1f4;padding:1px 4px;border-radius:3px}
.verdict{font-weight:600;padding:2px 8px;border-radius:10px;
  color:#fff}.verdict.ok{background:var(--p)}.verdict.bad{background:var(--f)}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.chip{display:inline-flex;gap:5px;align-items:center;border:1px solid var(--line);
  border-radius:14px;padding:2px 10px;background:#fff;cursor:pointer;user-select:none}
.chip .dot{width:10px;height:10px;border-radius:50%;display:inline-block}
#q{padding:4px 8px;border:1px solid var(--line);border-radius:6px;min-width:260px}
#shown{color:#5a636e}
main{padding:0 20px 40px}
table{border-collapse:collapse;background:#fff}
#matrix-table th,#matrix-table td{border:1px solid var(--line);padding:2px 6px}
#matrix-table thead th{position:sticky;top:0;white-space:nowrap;background:#f1f3f5;font-weight:600;
  vertical-align:bottom;text-align:center}
#matrix-table thead th small{display:block;font-weight:400;color:#5a636e}
#matrix-table tbody th{text-align:left;font-weight:400;
  font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all;
  max-width:640px}
td.c{text-align:center;width:64px;color:#fff;font-weight:700;cursor:default}
td.c[data-d]{cursor:pointer}
td.p{background:var(--p)}td.f{background:var(--f)}td.e{background:var(--e)}td.s{background:var(--s)}
td.n{background:var(--n);color:#333}td.u{background:var(--u);color:#222}td.x{background:#fff;
  color:#bbb;font-weight:400}
.dot.p{background:var(--p)}.dot.f{background:var(--f)}.dot.e{background:var(--e)}
  .dot.s{background:var(--s)}.dot.n{background:var(--n)}.dot.u{background:var(--u)}
tr.detail td{background:#fff8f8;padding:4px 8px}
details{margin:3px 0}details summary{cursor:pointer;font-size:13px}
details pre{white-space:pre-wrap;word-break:break-word;background:#f6f7f9;
  border:1px solid var(--line);padding:8px;max-height:420px;overflow:auto;font-size:12px}
.warn{color:#8a6100}
table.presets th,table.presets td{border:1px solid var(--line);padding:3px 8px;text-align:left;
  font-size:13px}
table.presets td.num{text-align:right;font-variant-numeric:tabular-nums}
.timeline svg{background:#fff;border:1px solid var(--line);max-width:100%}
.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:12px;height:10px;
  margin-right:4px;vertical-align:middle}
[hidden]{display:none!important}
"""

JS = """
(function(){
  var boxes=[].slice.call(document.querySelectorAll('input[name=outcome]'));
  var q=document.getElementById('q');
  var rows=[].slice.call(document.querySelectorAll('#matrix-table tbody tr.row'));
  var shown=document.getElementById('shown');
  function params(){
    var p=new URLSearchParams(location.search.replace(/^\\?/,''));
    new URLSearchParams((location.hash||'').replace(/^#/,'')).forEach(function(v,k){p.set(k,v);});
    return p;
  }
  function read(){
    var p=params();
    if(p.has('outcome')){
      var want=p.get('outcome').split(',');
      boxes.forEach(function(b){b.checked=want.indexOf(b.value)>=0;});
    }
    if(p.has('q')){q.value=p.get('q');}
  }
  function apply(){
    var sel={};boxes.forEach(function(b){if(b.checked){sel[b.value]=1;}});
    var text=q.value.trim().toLowerCase();var n=0;
    rows.forEach(function(r){
      var os=r.getAttribute('data-o').split(' ');
      var ok=os.some(function(o){return sel[o];})&&(!text||r.getAttribute('data-t').indexOf(text)>=0);
      r.hidden=!ok;
      var d=r.nextElementSibling;
      if(d&&d.classList.contains('detail')){
        d.hidden=!ok;
        [].forEach.call(d.querySelectorAll('details'),function(x){x.hidden=!sel[x.getAttribute('data-o')];});
      }
      if(ok){n++;}
    });
    shown.textContent='showing '+n+' of '+rows.length+' tests';
    document.body.setAttribute('data-shown',String(n));
  }
  function write(){
    var sel=boxes.filter(function(b){return b.checked;}).map(function(b){return b.value;});
    var p=new URLSearchParams();
    if(sel.length!==boxes.length){p.set('outcome',sel.join(','));}
    if(q.value){p.set('q',q.value);}
    var h=p.toString();
    try{history.replaceState(null,'',h?'#'+h:location.pathname+location.search);}catch(e){}
  }
  read();apply();
  boxes.forEach(function(b){b.addEventListener('change',function(){apply();write();});});
  q.addEventListener('input',function(){apply();write();});
  window.addEventListener('hashchange',function(){read();apply();});
  document.getElementById('matrix-table').addEventListener('click',function(ev){
    var td=ev.target.closest('td[data-d]');if(!td){return;}
    var d=document.getElementById(td.getAttribute('data-d'));
    if(d){d.hidden=false;d.open=true;d.scrollIntoView({block:'nearest'});}
  });
})();
"""


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a results.json edited by hand: year 0, 1e300
        return f"{ts:g} (not a date)"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 160 else line[:157] + "..."
    return ""


def columns(report: RunReport) -> list[str | None]:
    """Matrix columns: recorded environments, then env keys only tests name, then no preset."""
    cols: list[str | None] = [p.env_key for p in report.presets]
    for test in report.tests:
        if test.preset and test.preset not in cols:
            cols.append(test.preset)
    if any(t.preset is None for t in report.tests):
        cols.append(None)
    return cols


def matrix(report: RunReport) -> dict[str, dict[str | None, TestRecord]]:
    """row name -> column -> result (the worst one when a cell gets several)."""
    names = {p.env_key: p.preset for p in report.presets}
    rows: dict[str, dict[str | None, TestRecord]] = {}
    for test in report.tests:
        key = test.preset
        row = matrix_row(test.nodeid, key, names.get(key or ""), (key or "").split("@")[0])
        cells = rows.setdefault(row, {})
        old = cells.get(key)
        if old is None or OUTCOME_RANK.get(test.outcome, 99) < OUTCOME_RANK.get(old.outcome, 99):
            cells[key] = test
    return rows


class _Budget:
    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, text: str) -> str:
        limit = DETAIL_LIMIT if self.left > 0 else DETAIL_OVER_BUDGET
        if len(text) > limit:
            text = text[:limit] + "\n... [cut here; the full text is in results.json]"
        self.left -= len(text)
        return text


def _render_header(report: RunReport) -> list[str]:
    counts = report.counts()
    total = len(report.tests)
    duration = (report.finished_at - report.started_at) if report.finished_at else None
    verdict = (
        '<span class="verdict ok">PASSED</span>' if report.ok else '<span class="verdict bad">FAILED</span>'
    )
    meta = [
        f"run <code>{escape(report.run_id)}</code>",
        f"backend <code>{escape(report.backend or '-')}</code>",
        f"started {escape(fmt_time(report.started_at))}",
        f"took {escape(fmt_s(duration))}",
    ]
    if report.ci_job:
        meta.append(f"CI job <code>{escape(report.ci_job)}</code>")
    if len(report.sources) > 1:
        meta.append(f"merged from {len(report.sources)} reports")
    out = [
        "<header>",
        f"<h1>pytest-bannou report {verdict}</h1>",
        f'<p class="meta">{" &middot; ".join(meta)}</p>',
        '<div class="filters" id="filters">',
    ]
    for outcome in OUTCOMES:
        cls, _sym, label = OUTCOME_STYLE[outcome]
        out.append(
            f'<label class="chip"><input type="checkbox" name="outcome" value="{outcome}" checked>'
            f'<span class="dot {cls}"></span>{label} <b id="count-{outcome}">{counts[outcome]}</b></label>'
        )
    out.append('<input id="q" type="search" placeholder="filter tests by text" aria-label="filter by text">')
    out.append(f'<span id="shown">{total} results</span>')
    out.append("</div></header>")
    return out


def _column_head(key: str | None, presets: dict[str, PresetRecord], report: RunReport) -> str:
    if key is None:
        return f"<th>{escape(NO_PRESET)}</th>"
    record = presets.get(key)
    sub = ""
    if record:
        bits = [record.backend or report.backend]
        if record.preset != key:
            bits.insert(0, record.preset)
        sub = f"<small>{escape(' · '.join(b for b in bits if b))}</small>"
    return f'<th data-env="{escape(key)}">{escape(key)}{sub}</th>'


def _render_matrix(report: RunReport, budget: _Budget) -> list[str]:
    cols = columns(report)
    presets = {p.env_key: p for p in report.presets}
    rows = matrix(report)
    envs = sum(k is not None for k in cols)
    out = [f'<section id="matrix"><h2>Results: {len(rows)} tests &times; {envs} presets</h2>']
    if not rows:
        out.append("<p>No results were recorded.</p></section>")
        return out
    out.append('<table id="matrix-table"><thead><tr><th>test</th>')
    out.extend(_column_head(k, presets, report) for k in cols)
    out.append("</tr></thead><tbody>")
    for r, (name, cells) in enumerate(rows.items()):
        outcomes = sorted({t.outcome for t in cells.values()})
        tds: list[str] = []
        details: list[str] = []
        for c, key in enumerate(cols):
            test = cells.get(key)
            if test is None:
                tds.append('<td class="c x">&middot;</td>')
                continue
            cls, sym, label = OUTCOME_STYLE.get(test.outcome, ("x", "?", test.outcome))
            title = f"{label} · {fmt_s(test.duration)}"
            if test.faults:  # the faults it made, also marked on its environment's timeline
                title += " · faults: " + ", ".join(f.label() for f in test.faults)
            text = test.longrepr_summary.strip()
            warn = test.warnings
            if test.outcome == "passed" and not warn:
                tds.append(f'<td class="c {cls}" title="{escape(title)}">{sym}</td>')
                continue
            if not text and not warn:
                tds.append(f'<td class="c {cls}" title="{escape(title)}">{sym}</td>')
                continue
            did = f"d-{r}-{c}"
            tds.append(f'<td class="c {cls}" title="{escape(title)}" data-d="{did}">{sym}</td>')
            summary = f"{label.upper()} in {key or NO_PRESET}"
            if test.duration is not None:
                summary += f" · {fmt_s(test.duration)}"
            first = _first_line(text) or (warn[0] if warn else "")
            body = "".join(f'<p class="warn">warning: {escape(w)}</p>' for w in warn)
            if text:
                body += f"<pre>{escape(budget.take(text))}</pre>"
            details.append(
                f'<details id="{did}" data-o="{test.outcome}"><summary><b>{escape(summary)}</b>'
                f" &mdash; {escape(first)}</summary>{body}</details>"
            )
        search = escape(" ".join([name, *(k or NO_PRESET for k in cells)]).lower())
        out.append(
            f'<tr class="row" data-o="{" ".join(outcomes)}" data-t="{search}"><th>{escape(name)}</th>'
            + "".join(tds)
            + "</tr>"
        )
        if details:
            out.append(f'<tr class="detail"><td colspan="{len(cols) + 1}">{"".join(details)}</td></tr>')
    out.append("</tbody></table></section>")
    return out


def _render_presets(report: RunReport) -> list[str]:
    if not report.presets:
        return []
    per_env: dict[str, dict[str, int]] = {}
    for test in report.tests:
        if test.preset:
            counts = per_env.setdefault(test.preset, {})
            counts[test.outcome] = counts.get(test.outcome, 0) + 1
    out = [
        '<section id="presets"><h2>Environments</h2><table class="presets"><thead><tr>'
        "<th>environment</th><th>preset</th><th>backend</th><th>hash</th><th>nodes</th>"
        "<th>deploy</th><th>ready</th><th>teardown</th><th>transitions</th><th>restarts</th>"
        "<th>results</th></tr></thead><tbody>"
    ]
    for p in report.presets:
        counts = per_env.get(p.env_key, {})
        results = ", ".join(f"{counts[o]} {OUTCOME_STYLE[o][2]}" for o in OUTCOMES if counts.get(o))
        restarts = ", ".join(f"{n}: {k}" for n, k in sorted(p.restarts.items()) if k) or "-"
        transitions = "<br>".join(escape(t) for t in p.transitions) or "-"
        out.append(
            f"<tr><td>{escape(p.env_key)}</td><td>{escape(p.preset)}</td>"
            f"<td>{escape(p.backend or report.backend)}</td>"
            f"<td><code>{escape(p.preset_hash[:12])}</code></td>"
            f"<td>{escape(', '.join(p.nodes)) or '-'}</td>"
            f'<td class="num">{fmt_s(p.deploy_s)}</td><td class="num">{fmt_s(p.ready_s)}</td>'
            f'<td class="num">{fmt_s(p.teardown_s)}</td><td>{transitions}</td>'
            f"<td>{escape(restarts)}</td><td>{escape(results) or '-'}</td></tr>"
        )
        if p.error:  # a failed deploy: its error under its row
            out.append(f'<tr class="env-error"><td colspan="11"><pre>{escape(p.error)}</pre></td></tr>')
    out.append("</tbody></table></section>")
    return out


def timeline_colour(event: str) -> str:
    if event.startswith("tester"):
        return TESTER_COLOUR
    return TIMELINE_COLOURS.get(event, OTHER_COLOUR)


def render_timeline_svg(report: RunReport) -> str:
    """One lane per environment, its phases as bars on the run's time axis (inline SVG)."""
    lanes = [p for p in report.presets if p.timeline or p.faults]
    if not lanes:
        return "<p>No deploy timeline was recorded.</p>"
    faults = [f.at for p in lanes for f in p.faults]
    starts = [ev.t_start for p in lanes for ev in p.timeline] + [report.started_at, *faults]
    ends = [ev.t_end for p in lanes for ev in p.timeline] + faults
    if report.finished_at:
        ends.append(report.finished_at)
    t0, t1 = min(starts), max(ends)
    span = max(t1 - t0, 1e-3)
    label_w, plot_w, lane_h, top = 200, 900, 24, 8
    height = top + lane_h * len(lanes) + 28
    width = label_w + plot_w + 20

    def x(t: float) -> float:
        return label_w + (t - t0) / span * plot_w

    out = [
        f'<svg id="timeline-svg" role="img" aria-label="deploy timeline per preset" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="12" '
        f'font-family="system-ui,sans-serif">'
    ]
    for i, preset in enumerate(lanes):
        y = top + i * lane_h
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{lane_h}" fill="#f5f7f9"/>')
        out.append(f'<text x="6" y="{y + 16}">{escape(preset.env_key[:30])}</text>')
        for ev in sorted(preset.timeline, key=lambda e: e.t_start):
            x0 = x(ev.t_start)
            w = max(x(ev.t_end) - x0, 1.5)
            label = f"{preset.env_key}: {ev.event} {fmt_s(ev.t_end - ev.t_start)}"
            out.append(
                f'<rect class="ev" data-event="{escape(ev.event)}" x="{x0:.1f}" y="{y + 4}" '
                f'width="{w:.1f}" height="{lane_h - 8}" rx="2" fill="{timeline_colour(ev.event)}">'
                f"<title>{escape(label)}</title></rect>"
            )
        out.extend(_fault_marker(preset.env_key, f, x(f.at), y + 2, f.at - t0) for f in preset.faults)
    axis_y = top + lane_h * len(lanes) + 4
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" stroke="#888"/>')
    for k in range(6):
        t = t0 + span * k / 5
        xt = x(t)
        anchor = "start" if k == 0 else ("end" if k == 5 else "middle")
        out.append(f'<line x1="{xt:.1f}" y1="{axis_y}" x2="{xt:.1f}" y2="{axis_y + 4}" stroke="#888"/>')
        out.append(
            f'<text x="{xt:.1f}" y="{axis_y + 17}" text-anchor="{anchor}" fill="#555">'
            f"{escape(fmt_s(t - t0))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _fault_marker(env_key: str, fault: FaultRecord, x: float, y: float, offset: float) -> str:
    """A downward triangle on the lane at the fault's time; its title names the fault."""
    by = f" by {fault.test}" if fault.test else ""
    title = f"{env_key}: fault {fault.label()}{by} at {fmt_s(offset)}"
    fill = "#fff" if fault.undo else FAULT_COLOUR
    return (
        f'<path class="fault" data-fault="{escape(fault.action)}" d="M{x - 5:.1f} {y:.1f}h10l-5 9z" '
        f'fill="{fill}" stroke="{FAULT_COLOUR}" stroke-width="1.5"><title>{escape(title)}</title></path>'
    )


def _legend(report: RunReport) -> str:
    events: Iterable[str] = dict.fromkeys(ev.event for p in report.presets for ev in p.timeline)
    items = [f'<span><i style="background:{timeline_colour(e)}"></i>{escape(e)}</span>' for e in events]
    if any(p.faults for p in report.presets):
        items.append(
            f'<span><i style="background:{FAULT_COLOUR}"></i>fault (hollow: undone by the plugin)</span>'
        )
    return f'<p class="legend">{"".join(items)}</p>' if items else ""


def render_html(report: RunReport) -> str:
    """The whole page as one string: valid UTF-8 whatever the texts hold (controls, surrogates
    and noncharacters escaped once, over the whole page; see ``text``)."""
    budget = _Budget(DETAIL_BUDGET)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>bannou report {escape(report.run_id)}</title>",
        f"<style>{CSS}</style></head><body>",
        *_render_header(report),
        "<main>",
        *_render_matrix(report, budget),
        '<section id="timeline" class="timeline"><h2>Deploy timeline</h2>',
        render_timeline_svg(report),
        _legend(report),
        "</section>",
        *_render_presets(report),
        "</main>",
        f"<script>{JS}</script>",
        "</body></html>",
    ]
    return xml_text("\n".join(parts) + "\n")


def write_html(report: RunReport, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, render_html(report), mode=0o666)  # a report: readable as the umask allows
    return path
