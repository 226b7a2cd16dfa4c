"""tests/_skip_summary.py: skips summarized by reason, one line each (run in a child pytest)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

SAMPLE = textwrap.dedent("""
    import pytest

    @pytest.mark.parametrize("k", range(5))
    def test_gpu(k):
        pytest.skip("no GPU here")

    @pytest.mark.skipif(True, reason="no data")
    def test_data():
        pass

    def test_fixture_skip(gpu):
        pass

    @pytest.fixture
    def gpu():
        pytest.skip("no GPU here")

    def test_ok():
        pass
""")


def _pytest(tmp_path, *flags):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "_skip_summary", "-p",
                        "no:cacheprovider", "-c", "/dev/null", "-q", *flags, str(tmp_path)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(HERE)))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_one_line_per_reason_with_counts(tmp_path):
    out = _pytest(tmp_path, "-rfExX")
    lines = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    assert lines == ["SKIPPED 6 x no GPU here", "SKIPPED 1 x no data"], out
    assert "7 skipped, by reason" in out and "1 passed, 7 skipped" in out


def test_rs_still_lists_every_location(tmp_path):
    out = _pytest(tmp_path, "-rs")
    assert "by reason" not in out
    assert sum(ln.startswith("SKIPPED [") for ln in out.splitlines()) >= 3
