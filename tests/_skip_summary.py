"""pytest plugin: the skips summarized by reason, one line each, with a count.

Without a GPU, every real-CuPy run of a device test skips for the same
reason; pytest's own ``-rs`` prints one line per test location (79 lines).
setup.cfg's ``-r`` flags leave skips out of the short summary and this hook
prints instead, after it:

    SKIPPED 71 x no GPU with CuPy here (...); real-CuPy runs are skipped
    SKIPPED  4 x real MNIST test split not found (...)

``python -m pytest -rs`` still lists every skipped test.  Loaded from
tests/conftest.py (``from _skip_summary import pytest_terminal_summary``).
"""
from collections import Counter


def _reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = longrepr[2]
    else:
        reason = str(longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if r.longrepr]
    if not skipped or "s" in (terminalreporter.config.option.reportchars or ""):
        return                       # nothing skipped, or -rs asked for every test
    counts = Counter(_reason(r) for r in skipped)
    width = len(str(max(counts.values())))
    terminalreporter.write_sep("-", f"{len(skipped)} skipped, by reason")
    for reason, n in counts.most_common():
        terminalreporter.write_line(f"SKIPPED {n:>{width}} x {reason}")
