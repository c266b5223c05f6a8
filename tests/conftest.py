"""Suite-wide test settings.

- The Kubernetes tests run last: ``scripts/test.sh`` starts the cluster in the background (its
  first start on a machine builds it, about 5 minutes), and everything else runs meanwhile.
- Before the first Kubernetes test, wait for that background start (``BANNOU_K8S_UP_STATUS``
  names the file its exit status lands in) with a deadline; a failed start fails the test with
  the tail of the cluster's log instead of skipping it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Imported before any in-process pytester run: pytester restores sys.modules after each inner
# run, and PyYAML imported again beside its already-loaded C extension breaks the next run (the
# helper module imports the rest of the plugin's modules for the same reason).
import pytest_bannou.preset  # noqa: F401
from tests.support.bannou_pytester import BannouPytester, bannou_pytester_fixture

K8S_DIR = Path(__file__).resolve().parent / "k8s"
CLUSTER_START_DEADLINE = float(os.environ.get("BANNOU_K8S_UP_DEADLINE", "1500"))
_cluster_checked: list[str] = []


@pytest.fixture(autouse=True)
def _same_output_in_and_out_of_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest prints untruncated short summaries when ``CI``/``BUILD_NUMBER`` is set; inner test
    runs must print the same on a laptop and in CI."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)


@pytest.fixture
def bannou_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[BannouPytester]:
    """Inner pytest sessions against small presets in a tmp dir (tests/support/bannou_pytester.py),
    with the ``BANNOU_*`` option variables of the outer shell cleared."""
    yield from bannou_pytester_fixture(pytester, monkeypatch)


def _in_k8s(item: pytest.Item) -> bool:
    return K8S_DIR in Path(str(item.path)).resolve().parents


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """After every other reordering (the plugin's own batching included): k8s last."""
    yield
    items.sort(key=_in_k8s)  # stable: everything else keeps its order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    status_file = os.environ.get("BANNOU_K8S_UP_STATUS")
    if not status_file or not _in_k8s(item):
        return
    if not _cluster_checked:
        deadline = time.monotonic() + CLUSTER_START_DEADLINE
        while not os.path.exists(status_file) and time.monotonic() < deadline:
            time.sleep(1)
        _cluster_checked.append(_read(status_file))
    rc = _cluster_checked[0]
    if rc != "0":
        log = Path(status_file + ".log")
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:]) if log.exists() else ""
        what = "did not finish" if rc == "" else f"exited with status {rc}"
        pytest.fail(f"the background `cluster up` {what}; its log ({log}):\n{tail}", pytrace=False)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
