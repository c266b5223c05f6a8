"""report.html in a real browser (Debian's chromium, headless): screenshot, DOM after the page's
JS ran (filters pre-set from the URL), and no request leaving the page.

Chromium runs behind a recording proxy on 127.0.0.1 so that every request it makes - the page's
and chromium's own background chatter - lands here and nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import pytest

from pytest_bannou.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium for the real-browser check: apt-get install -y chromium"
)

# hosts chromium itself contacts (time, component updates, sign-in) whatever the page does
CHROMIUM_OWN_SUFFIXES = (".google.com", ".googleapis.com", ".gvt1.com", ".gstatic.com")
DEADLINE_S = 120


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records each request line and answers 502."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(8192)
                    self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
                    conn.sendall(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                except OSError:
                    pass

    def page_requests(self) -> list[str]:
        """Requests not explained by chromium's own background traffic."""
        out = []
        for line in self.requests:
            parts = line.split()
            target = parts[1] if len(parts) > 1 else line
            host = target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if not host.endswith(CHROMIUM_OWN_SUFFIXES):
                out.append(line)
        return out


def chromium(tmp_path: Path, proxy: RecordingProxy, url: str, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--proxy-server=127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
        "--window-size=1280,900",
        *mode,
        url,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group chromium (and only it) runs in
        proc.communicate()
        pytest.fail(f"chromium did not finish within {DEADLINE_S} s")
    result = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode(errors="replace"))
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def read_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def count_colour(png: tuple[int, int, int, bytes], rgb: tuple[int, int, int], tol: int = 6) -> int:
    width, height, bpp, pixels = png
    n = 0
    for i in range(0, width * height * bpp, bpp):
        if all(abs(pixels[i + k] - rgb[k]) <= tol for k in range(3)):
            n += 1
    return n


def visible_rows(doc) -> list[str]:
    return [r.find_all("th")[0].get_text() for r in doc.find_all("tr", "row") if "hidden" not in r.attrs]


@pytest.fixture
def report_dir(tmp_path, sample_report):
    write_report(sample_report, tmp_path / "report")
    return tmp_path / "report"


def test_screenshot_shows_the_coloured_matrix(tmp_path, report_dir):
    shot = tmp_path / "report.png"
    with RecordingProxy() as proxy:
        chromium(tmp_path, proxy, (report_dir / "report.html").as_uri(), f"--screenshot={shot}")
    assert proxy.page_requests() == []
    png = read_png(shot.read_bytes())
    assert png[:2] == (1280, 900)
    # the CSS applied: outcome colours of the matrix cells and the timeline bars are on screen
    assert count_colour(png, (0x2E, 0x9D, 0x4F)) > 1000  # passed cells
    assert count_colour(png, (0xD7, 0x26, 0x3D)) > 300  # the failed cell and the FAILED badge
    assert count_colour(png, (0x3B, 0x6F, 0xD4)) > 300  # the deploy bar of the timeline


def test_dom_after_js_without_filter_shows_every_row(tmp_path, report_dir, parse_html):
    with RecordingProxy() as proxy:
        out = chromium(tmp_path, proxy, (report_dir / "report.html").as_uri(), "--dump-dom").stdout
    doc = parse_html(out)
    assert len(visible_rows(doc)) == 7
    assert doc.find_all("body")[0].attrs["data-shown"] == "7"
    assert [s.get_text() for s in doc.iter("span") if s.attrs.get("id") == "shown"] == [
        "showing 7 of 7 tests"
    ]
    assert proxy.page_requests() == []


def test_dom_after_js_with_outcome_filter_from_the_url_hash(tmp_path, report_dir, parse_html):
    url = (report_dir / "report.html").as_uri() + "#outcome=failed,error"
    with RecordingProxy() as proxy:
        out = chromium(tmp_path, proxy, url, "--dump-dom").stdout
    doc = parse_html(out)
    assert visible_rows(doc) == ["tests/test_auth.py::test_login", "tests/test_plain.py::test_no_env"]
    assert [s.get_text() for s in doc.iter("span") if s.attrs.get("id") == "shown"] == [
        "showing 2 of 7 tests"
    ]
    details = [d for d in doc.find_all("details") if "hidden" not in d.attrs]
    # only the failing results' details stay visible (and the visible rows' detail rows)
    assert sorted(d.attrs["data-o"] for d in details) == ["error", "failed"]
    assert proxy.page_requests() == []


def test_dom_after_js_with_text_filter_from_the_query(tmp_path, report_dir, parse_html):
    url = (report_dir / "report.html").as_uri() + "?q=TESTER#outcome=not_run"
    with RecordingProxy() as proxy:
        out = chromium(tmp_path, proxy, url, "--dump-dom").stdout
    doc = parse_html(out)
    assert visible_rows(doc) == ["tester::http-tester::Test Crash Next"]
    assert proxy.page_requests() == []


def test_large_report_filters_in_the_browser(tmp_path, parse_html, big_report_factory):
    report = big_report_factory(tests=1000, presets=8, fail_every=20, text=500)
    write_report(report, tmp_path / "big")
    url = (tmp_path / "big" / "report.html").as_uri() + "#outcome=failed"
    with RecordingProxy() as proxy:
        doc = parse_html(chromium(tmp_path, proxy, url, "--dump-dom").stdout)
    failing_rows = {t.nodeid.split("[")[0] for t in report.tests if t.outcome == "failed"}
    assert len(doc.find_all("tr", "row")) == 1000
    assert sorted(visible_rows(doc)) == sorted(failing_rows)
    assert proxy.page_requests() == []


def test_the_request_check_catches_a_page_that_fetches(tmp_path):
    page = tmp_path / "fetching.html"
    page.write_text(
        '<html><body><img src="https://example.invalid/y.png">'
        '<script>fetch("http://203.0.113.5/z").catch(function(){});</script></body></html>',
        encoding="utf-8",
    )
    with RecordingProxy() as proxy:
        chromium(tmp_path, proxy, page.as_uri(), "--dump-dom")
    seen = proxy.page_requests()
    assert any("example.invalid" in r for r in seen), proxy.requests
    assert any("203.0.113.5" in r for r in seen), proxy.requests


DRIVE_SCRIPT = """<script>
(function(){
  var out={};
  var box=document.querySelector('input[name=outcome][value=passed]');
  box.checked=false; box.dispatchEvent(new Event('change'));
  out.afterUncheck=document.body.getAttribute('data-shown'); out.hash1=location.hash;
  var q=document.getElementById('q'); q.value='Crash'; q.dispatchEvent(new Event('input'));
  out.afterText=document.body.getAttribute('data-shown'); out.hash2=location.hash;
  var td=document.querySelector('td[data-d]'); td.click();
  out.opened=document.getElementById(td.getAttribute('data-d')).open;
  document.body.setAttribute('data-drive', JSON.stringify(out));
})();
</script></body>"""


def test_filters_react_to_clicks_and_typing(tmp_path, report_dir, parse_html):
    """The page's own handlers, driven by events in the real browser (a copy with a driver script)."""
    page = report_dir / "driven.html"
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    page.write_text(html.replace("</body>", DRIVE_SCRIPT), encoding="utf-8")
    with RecordingProxy() as proxy:
        doc = parse_html(chromium(tmp_path, proxy, page.as_uri(), "--dump-dom").stdout)
    result = json.loads(doc.find_all("body")[0].attrs["data-drive"])
    assert result == {
        "afterUncheck": "5",  # test_health and Test Account Create only passed: hidden
        "hash1": "#outcome=failed%2Cerror%2Cunclear%2Cnot_run%2Cskipped",
        "afterText": "1",
        "hash2": "#outcome=failed%2Cerror%2Cunclear%2Cnot_run%2Cskipped&q=Crash",
        "opened": True,
    }
    assert visible_rows(doc) == ["tester::http-tester::Test Crash Next"]
    assert proxy.page_requests() == []
