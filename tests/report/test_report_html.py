"""report.html checked as a document (html.parser): matrix, filters, details, timeline, no fetches."""

from __future__ import annotations

from pytest_bannou.report import PresetRecord, RunReport, TestRecord, TimelineEvent, render_html, write_report
from pytest_bannou.report.html import DETAIL_BUDGET


def test_page_is_one_self_contained_document(sample_report, parse_html, fetch_check):
    html = render_html(sample_report)
    doc = parse_html(html)
    assert html.startswith("<!DOCTYPE html>")
    assert len(doc.find_all("style")) == 1
    (script,) = doc.find_all("script")
    assert "src" not in script.attrs
    assert fetch_check(doc) == []
    assert "http://" not in html and "https://" not in html
    assert doc.find_all("title")[0].get_text() == "bannou report run-a1"


def test_matrix_has_a_row_per_test_and_a_column_per_preset(sample_report, parse_html):
    doc = parse_html(render_html(sample_report))
    (table,) = [t for t in doc.find_all("table") if t.attrs.get("id") == "matrix-table"]
    heads = [th.get_text() for th in table.find_all("thead")[0].find_all("th")]
    assert heads == ["test", "monolithlocal", "split-authlocal", "(no preset)"]
    rows = table.find_all("tr", "row")
    names = [r.find_all("th")[0].get_text() for r in rows]
    assert names == [
        "tests/test_auth.py::test_health",
        "tests/test_auth.py::test_login",
        "tests/test_auth.py::TestSessions::test_skip",
        "tester::http-tester::Test Account Create",
        "tester::edge-tester::Test Meta Endpoints",
        "tester::http-tester::Test Crash Next",
        "tests/test_plain.py::test_no_env",
    ]
    cells = {
        name: [td.attrs["class"].split()[1] for td in r.find_all("td")]
        for name, r in zip(names, rows, strict=True)
    }
    assert cells["tests/test_auth.py::test_login"] == ["p", "f", "x"]
    assert cells["tester::edge-tester::Test Meta Endpoints"] == ["u", "u", "x"]
    assert cells["tester::http-tester::Test Crash Next"] == ["p", "n", "x"]
    assert cells["tests/test_plain.py::test_no_env"] == ["x", "x", "e"]
    assert rows[1].attrs["data-o"] == "failed passed"


def test_failure_details_are_expandable_and_linked_from_cells(sample_report, parse_html):
    doc = parse_html(render_html(sample_report))
    details = {d.attrs["id"]: d for d in doc.find_all("details")}
    linked = [td.attrs["data-d"] for td in doc.find_all("td") if td.attrs.get("data-d")]
    assert linked and set(linked) == set(details)
    failing = [d for d in details.values() if d.attrs["data-o"] == "failed"]
    (fail,) = failing
    assert "open" not in fail.attrs  # collapsed until clicked
    assert fail.find_all("summary")[0].get_text().startswith("FAILED in split-auth · 0.40 s")
    assert "E       assert 503 == 200" in fail.find_all("pre")[0].get_text()
    unclear = [d for d in details.values() if d.attrs["data-o"] == "unclear"]
    assert "warning: edge-tester reported 'result unclear'" in unclear[0].get_text()


def test_filters_cover_every_outcome_with_counts(sample_report, parse_html):
    doc = parse_html(render_html(sample_report))
    boxes = [i for i in doc.find_all("input") if i.attrs.get("name") == "outcome"]
    assert [b.attrs["value"] for b in boxes] == ["failed", "error", "unclear", "not_run", "passed", "skipped"]
    counts = {
        b.attrs["id"]: b.get_text() for b in doc.find_all("b") if b.attrs.get("id", "").startswith("count-")
    }
    assert counts == {
        "count-failed": "1",
        "count-error": "1",
        "count-unclear": "2",
        "count-not_run": "1",
        "count-passed": "6",
        "count-skipped": "2",
    }
    assert [i for i in doc.find_all("input") if i.attrs.get("id") == "q"]


def test_timeline_is_inline_svg_with_one_lane_per_preset(sample_report, parse_html):
    doc = parse_html(render_html(sample_report))
    (svg,) = doc.find_all("svg")
    assert "xmlns" not in svg.attrs  # inline SVG needs no namespace URL
    bars = svg.find_all("rect", "ev")
    assert len(bars) == sum(len(p.timeline) for p in sample_report.presets)
    assert [b.attrs["data-event"] for b in bars[:5]] == [
        "deploy",
        "ready",
        "tests",
        "tester:http-tester",
        "teardown",
    ]
    labels = [t.get_text() for t in svg.find_all("text")]
    assert "monolith" in labels and "split-auth" in labels
    xs = [float(b.attrs["x"]) for b in bars]
    assert xs[:5] == sorted(xs[:5]) and xs[5] > xs[4]  # split-auth deployed after monolith's teardown
    assert "monolith: deploy 3.50 s" in bars[0].get_text()


def test_hostile_names_and_texts_are_escaped(parse_html, fetch_check):
    evil = '<script>alert(1)</script>"onmouseover="x'
    report = RunReport(
        run_id="r<1>",
        backend="local",
        started_at=0.0,
        presets=[PresetRecord("p<b>", "p<b>", timeline=[TimelineEvent("deploy<x>", 0.0, 1.0)])],
        tests=[
            TestRecord(
                f"t.py::test_{evil}[p<b>]",
                "p<b>",
                "failed",
                1.0,
                '</pre><img src="http://127.0.0.1:9/x.png"> see http://127.0.0.1:8080/health',
            )
        ],
    )
    html = render_html(report)
    doc = parse_html(html)
    assert len(doc.find_all("script")) == 1
    assert fetch_check(doc) == []  # the URL stays text, never an attribute
    assert '<img src="http://127.0.0.1:9/x.png">' in doc.find_all("pre")[0].get_text()
    assert doc.find_all("tr", "row")[0].find_all("th")[0].get_text() == f"t.py::test_{evil}"


def test_fetch_check_catches_a_fetching_page(parse_html, fetch_check):
    doc = parse_html(
        '<html><head><link rel="stylesheet" href="https://cdn.example/x.css"></head>'
        '<body style="background:url(x.png)"><script>fetch("/x")</script></body></html>'
    )
    assert len(fetch_check(doc)) == 4


def test_empty_report_renders(parse_html):
    doc = parse_html(render_html(RunReport(run_id="r", backend="local", started_at=0.0)))
    assert "No results were recorded." in doc.get_text()
    assert "No deploy timeline was recorded." in doc.get_text()


def test_thousand_tests_by_eight_presets_render_bounded(tmp_path, parse_html, big_report_factory):
    report = big_report_factory()
    paths = write_report(report, tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    doc = parse_html(html)
    rows = doc.find_all("tr", "row")
    assert len(rows) == 1000
    assert sum(len(r.find_all("td")) for r in rows) == 8000
    assert len(doc.find_all("details")) == 400
    assert len(html) < 3_000_000, len(html)


def test_every_cell_failing_with_long_texts_stays_bounded(big_report_factory):
    report = big_report_factory(tests=1000, presets=8, fail_every=1, text=8000)
    html = render_html(report)
    assert sum(len(t.longrepr_summary) for t in report.tests) > 60_000_000
    assert len(html) < DETAIL_BUDGET + 8000 * 2000, len(html)
    assert "the full text is in results.json" in html


def test_faults_are_markers_on_their_environments_lane(sample_report, parse_html):
    from pytest_bannou.report import FaultRecord

    monolith = sample_report.presets[0]
    deploy = monolith.timeline[0]
    kill = FaultRecord("kill", "auth", at=deploy.t_end + 0.5, env_key="monolith", test="t.py::test_<kill>")
    undo = FaultRecord("restart", "auth", at=deploy.t_end + 1.0, undo=True, env_key="monolith")
    monolith.faults = [kill, undo]
    sample_report.tests[0].faults = [kill]
    doc = parse_html(render_html(sample_report))
    (svg,) = doc.find_all("svg")
    marks = svg.find_all("path", "fault")
    assert [m.attrs["data-fault"] for m in marks] == ["kill", "restart"]
    titles = [m.get_text() for m in marks]
    assert titles[0].startswith("monolith: fault kill auth by t.py::test_<kill> at ")
    assert titles[1].startswith("monolith: fault restart auth (undo) at ")
    lane_y = float(svg.find_all("rect", "ev")[0].attrs["y"])
    assert all(abs(float(m.attrs["d"].split()[1].split("h")[0]) - lane_y) < 4 for m in marks)
    assert "fault (hollow: undone by the plugin)" in doc.get_text()
    assert any("faults: kill auth" in (td.attrs.get("title") or "") for td in doc.find_all("td"))
