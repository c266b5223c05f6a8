"""Sample reports shaped like what the plugin and the tester parsers produce."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from pytest_bannou.report import PresetRecord, RunReport, TestRecord, TimelineEvent, tester_nodeid

T0 = 1_790_000_000.0

FAILURE = """def test_auth_login(bannou):
>       assert resp.status_code == 200
E       assert 503 == 200
E        +  where 503 = <Response [503]>.status_code

tests/test_auth.py:12: AssertionError"""


def make_report(
    run_id: str = "run-a1",
    backend: str = "local",
    ci_job: str | None = None,
    presets: tuple[str, ...] = ("monolith", "split-auth"),
    worker: str | None = None,
) -> RunReport:
    """Two environments, pytest tests parametrised by preset plus tester cases, every outcome."""
    records = []
    tests = []
    t = T0
    for i, name in enumerate(presets):
        nodes = ["bannou", "redis", "rabbitmq"] + (["auth"] if "split" in name else [])
        records.append(
            PresetRecord(
                env_key=name,
                preset=name,
                preset_hash=f"{i:02d}" + "ab" * 31,
                backend=backend,
                deploy_s=3.5 + i,
                ready_s=1.25,
                teardown_s=0.75,
                nodes=nodes,
                transitions=["start auth; recreate bannou"] if i else [],
                restarts={"bannou": 1} if i else {},
                timeline=[
                    TimelineEvent("transition" if i else "deploy", t, t + 3.5 + i),
                    TimelineEvent("ready", t + 3.5 + i, t + 4.75 + i),
                    TimelineEvent("tests", t + 4.75 + i, t + 9 + i),
                    TimelineEvent("tester:http-tester", t + 9 + i, t + 12 + i),
                    TimelineEvent("teardown", t + 12 + i, t + 12.75 + i),
                ],
            )
        )
        t += 13 + i
        tests += [
            TestRecord(f"tests/test_auth.py::test_health[{name}]", name, "passed", 0.05),
            TestRecord(
                f"tests/test_auth.py::test_login[{name}]",
                name,
                "failed" if "split" in name else "passed",
                0.4,
                FAILURE if "split" in name else "",
            ),
            TestRecord(
                f"tests/test_auth.py::TestSessions::test_skip[{name}]", name, "skipped", 0.0, "no redis"
            ),
            TestRecord(
                tester_nodeid("http-tester", "Test Account Create", name),
                name,
                "passed",
                0.12,
                "",
                "tester",
                "http-tester",
            ),
            TestRecord(
                tester_nodeid("edge-tester", "Test Meta Endpoints", name),
                name,
                "unclear",
                0.3,
                "",
                "tester",
                "edge-tester",
                ["edge-tester reported 'result unclear'"],
            ),
            TestRecord(
                tester_nodeid("http-tester", "Test Crash Next", name),
                name,
                "not_run" if "split" in name else "passed",
                None,
                "not run: http-tester crashed (exit 139)",
                "tester",
                "http-tester",
            ),
        ]
    tests.append(
        TestRecord("tests/test_plain.py::test_no_env", None, "error", 0.01, "fixture 'db' not found")
    )
    return RunReport(
        run_id=run_id,
        backend=backend,
        started_at=T0 - 1,
        finished_at=t + 1,
        presets=records,
        tests=tests,
        ci_job=ci_job,
        worker=worker,
    )


@pytest.fixture
def sample_report() -> RunReport:
    return make_report()


@pytest.fixture
def report_factory():
    return make_report


# -- a small DOM for checking report.html (html.parser based) --------------------------------

VOID = {"meta", "input", "br", "img", "link", "hr", "source", "wbr", "area", "base", "col", "embed", "track"}
SVG_SELF_CLOSING = {"rect", "line", "circle", "path"}
FETCH_ATTRS = {"src", "href", "action", "srcset", "poster", "data", "formaction", "xlink:href", "background"}


@dataclass
class El:
    tag: str
    attrs: dict[str, str | None]
    children: list[El | str] = field(default_factory=list)  # elements and text, in document order

    def iter(self, tag: str | None = None):
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            if isinstance(child, El):
                yield from child.iter(tag)

    def find_all(self, tag: str, cls: str | None = None) -> list[El]:
        return [e for e in self.iter(tag) if cls is None or cls in (e.attrs.get("class") or "").split()]

    def get_text(self) -> str:
        return "".join(c if isinstance(c, str) else c.get_text() for c in self.children)


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = El("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        el = El(tag, dict(attrs))
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(El(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
        raise AssertionError(f"unbalanced </{tag}>")

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> El:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert [e.tag for e in builder.stack] == ["#document"], "unclosed elements"
    return builder.root


def fetchable_urls(doc: El) -> list[str]:
    """Everything in the page that a browser would request."""
    found = []
    for el in doc.iter():
        for name, value in el.attrs.items():
            if name in FETCH_ATTRS and value and not value.startswith("#"):
                found.append(f"<{el.tag} {name}={value}>")
            if name == "style" and value and "url(" in value:
                found.append(f"<{el.tag} style={value}>")
        if el.tag == "link" or el.tag in ("img", "iframe", "object", "embed", "video", "audio"):
            found.append(f"<{el.tag}>")
    for style in doc.iter("style"):
        css = style.get_text()
        found += re.findall(r"url\([^)]*\)|@import[^;]*", css)
    for script in doc.iter("script"):
        code = script.get_text()
        found += re.findall(r"\b(?:fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\b", code)
        found += re.findall(r"\bimport\s*\(", code)
    return found


def big_report(tests: int = 1000, presets: int = 8, fail_every: int = 20, text: int = 3000) -> RunReport:
    names = [f"preset-{i}" for i in range(presets)]
    records = [
        PresetRecord(
            n,
            n,
            "f" * 64,
            "local",
            2.0,
            1.0,
            0.5,
            ["bannou", "redis"],
            timeline=[
                TimelineEvent("deploy", i * 10.0, i * 10 + 2.0),
                TimelineEvent("tests", i * 10 + 3.0, i * 10 + 9),
            ],
        )
        for i, n in enumerate(names)
    ]
    results = []
    k = 0
    for t in range(tests):
        for n in names:
            k += 1
            failed = k % fail_every == 0
            results.append(
                TestRecord(
                    f"tests/test_mod{t % 40}.py::test_case_{t}[{n}]",
                    n,
                    "failed" if failed else "passed",
                    0.01 * (t % 7),
                    ("E   assert x\n" + "y" * text) if failed else "",
                )
            )
    return RunReport(
        run_id="big", backend="local", started_at=0.0, finished_at=90.0, presets=records, tests=results
    )


@pytest.fixture
def parse_html():
    """html text -> El document tree (asserts the markup is balanced)."""
    return parse


@pytest.fixture
def fetch_check():
    """document -> list of everything in it a browser would request."""
    return fetchable_urls


@pytest.fixture
def big_report_factory():
    return big_report
