"""The `tinynet` command: info, `explain` on every case writing its figures, `lessons`,
and one-line errors for bad input."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinynet import backend
from tinynet.cli import main
from tinynet.data import digits
from tinynet.diagnose import cases


def test_info_prints_version_backend_and_worked_example(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "tinynet 0." in out and "numpy" in out and "relu'(0) = 0" in out


def test_version_flag(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("tinynet ")


def test_explain_all_writes_figures_and_tells_the_story(tmp_path, capsys):
    out_dir = tmp_path / "figs"
    code = main(["explain", "all", "--steps", "3", "--samples", "640", "--no-progress",
                 "--out", str(out_dir)])
    assert code == 0
    out = capsys.readouterr().out
    for title in ("Weights of always-zero pixels never change",
                  "Constant initialization", "A zero kernel", "does not change"):
        assert title in out
    assert "identical: True" in out
    assert "Parameters that moved: 12.bias (of 12)" in out
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    for stem in ("zero_pixels_frozen_map", "constant_init_curves", "zero_kernel_gradient_flow",
                 "tiny_updates_filters_minmax"):
        assert f"{stem}.png" in pngs
    assert not list(out_dir.glob("*.tmp*"))


def test_zero_pixels_case_numbers():
    x, y = digits(640, seed=0)
    res = cases.run_case("zero-pixels", x, y, steps=5, progress=False)
    n = res.numbers
    assert n["row0_unchanged"] and n["frozen_rows_equal_zero_pixels"]
    assert n["frozen_rows"] == n["always_zero_pixels"] >= 208
    assert 0 < n["entries_changed"] < n["entries"]


def test_constant_init_case_keeps_one_unit():
    x, y = digits(1024, seed=0)
    xv, yv = digits(256, seed=0, split="test")
    res = cases.run_case("constant-init", x, y, steps=8, progress=False, x_val=xv, y_val=yv)
    assert res.numbers["symmetry"]["0.weight"] == (1, 256)
    assert res.numbers["epoch_loss"][0] > 1e3          # the first epoch blows up


def test_zero_kernel_case_moves_only_last_bias():
    x, y = digits(100, seed=0)
    res = cases.run_case("zero-kernel", x, y, steps=4, progress=False)
    assert res.numbers["moved"] == ["12.bias"]


def test_explain_cuda_without_gpu_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setattr(backend, "_cuda_xp", None)
    monkeypatch.setattr(backend, "_try_cupy", lambda: None)
    assert main(["explain", "zero-pixels", "--device", "cuda"]) == 2
    assert "[gpu]" in capsys.readouterr().err


def test_explain_on_real_mnist_test_split(mnist_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TINYNET_MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "cache"))
    import importlib
    import urllib.error
    mnist_module = importlib.import_module("tinynet.data.mnist")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")
    monkeypatch.setattr(mnist_module, "_urlopen", offline)   # no training split, no network
    code = main(["explain", "zero-pixels", "--data", "mnist", "--steps", "3", "--no-progress",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "MNIST test split" in out and "identical: True" in out


def test_unknown_case_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "no-such-case"])


# --------------------------------------------------------------------------
# bad input: one line on stderr, exit code 2, and no training before it
# --------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def _tinynet(*args, cwd, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "tinynet.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == "", "something ran before the error: " + r.stdout
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_explain_out_is_an_existing_file(tmp_path):
    (tmp_path / "figs").write_text("not a folder")
    start = time.monotonic()
    r = _tinynet("explain", "--out", "figs", cwd=tmp_path)
    _one_line_error(r, "--out", "figs", "existing file")
    assert time.monotonic() - start < 30        # no training happened (a case takes minutes)
    assert (tmp_path / "figs").read_text() == "not a folder"


def test_explain_out_cannot_be_created(tmp_path):
    (tmp_path / "plain").write_text("x")
    r = _tinynet("explain", "zero-pixels", "--out", "plain/figs", cwd=tmp_path)
    _one_line_error(r, "--out", "cannot write figures")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write into a read-only folder")
def test_explain_out_is_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = _tinynet("explain", "zero-pixels", "--out", "ro", cwd=tmp_path)
    finally:
        ro.chmod(0o700)
    _one_line_error(r, "--out", "cannot write figures")
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("flag,value", [("--samples", "0"), ("--samples", "-5"),
                                        ("--steps", "0"), ("--seed", "-1")])
def test_explain_bad_counts(tmp_path, flag, value):
    r = _tinynet("explain", "zero-pixels", flag, value, "--out", "figs", cwd=tmp_path)
    _one_line_error(r, flag, value)


def test_explain_cuda_without_gpu_is_one_line(tmp_path):
    r = _tinynet("explain", "zero-pixels", "--device", "cuda", "--out", "figs", cwd=tmp_path)
    if r.returncode == 0:
        pytest.skip("a GPU with CuPy is present")
    _one_line_error(r, "[gpu]")


def test_gpu_hint_names_the_wheel_extra_quoted():
    # unquoted .[gpu] is a glob in zsh; wheel users need the package name
    assert 'pip install "tinynet[gpu]"' in backend.INSTALL_HINT
    assert 'pip install -e ".[gpu]"' in backend.INSTALL_HINT


def test_help_shows_the_defaults(tmp_path):
    r = _tinynet("explain", "--help", cwd=tmp_path)
    assert r.returncode == 0
    for text in ("(default: 10000)", "(default: tinynet-explain)", "(default: cpu)",
                 "(default: embedded)", "(default: 0)"):
        assert text in " ".join(r.stdout.split()), text
    r = _tinynet("lessons", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "(default: tinynet-lessons)" in r.stdout


def test_lessons_from_the_checkout(tmp_path, capsys):
    assert main(["lessons", str(tmp_path / "out")]) == 0
    lessons = sorted(p.name for p in (ROOT / "lessons").glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.ipynb")) == lessons
    homework = sorted((tmp_path / "out" / "homework").glob("*.ipynb"))
    assert [p.name for p in homework] == sorted(
        p.name for p in (ROOT / "lessons" / "homework").glob("*.ipynb"))
    for p in homework:
        text = p.read_text(encoding="utf-8")
        assert "### BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        assert "raise NotImplementedError()" in text
    capsys.readouterr()
    # a second run refuses, names a file and the way out; --force overwrites
    assert main(["lessons", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "already exists" in err and len(err.strip().splitlines()) == 1
    assert main(["lessons", str(tmp_path / "out"), "--force"]) == 0


def test_lessons_into_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    r = _tinynet("lessons", "f", cwd=tmp_path)
    _one_line_error(r, "not a folder")
    r = _tinynet("lessons", "f/sub", cwd=tmp_path)
    _one_line_error(r, "cannot create", "f/sub")


def test_explain_figure_write_failure_is_one_line(tmp_path, monkeypatch, capsys):
    from tinynet import plot

    def full_disk(fig, path, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(plot, "save", full_disk)
    code = main(["explain", "zero-kernel", "--steps", "2", "--samples", "64", "--no-progress",
                 "--out", str(tmp_path / "figs")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err


def test_explain_mnist_test_split_only_validates_on_images_it_never_trained_on(
        mnist_dir, monkeypatch, tmp_path, capsys):
    """With only the test split, the CLI trains on its head and validates on its tail:
    the constant-init case gets validation images none of which is a training image."""
    monkeypatch.setenv("TINYNET_MNIST_DIR", str(mnist_dir))
    monkeypatch.setenv("TINYNET_HOME", str(tmp_path / "cache"))
    import importlib
    import urllib.error
    mnist_module = importlib.import_module("tinynet.data.mnist")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")
    monkeypatch.setattr(mnist_module, "_urlopen", offline)
    seen = {}
    real_run = cases.run_case

    def spy(name, x, y, **kw):
        seen.update(x=x, xv=kw.get("x_val"))
        return real_run(name, x, y, **kw)
    monkeypatch.setattr(cases, "run_case", spy)
    code = main(["explain", "constant-init", "--data", "mnist", "--steps", "2",
                 "--samples", "20000", "--no-progress", "--out", str(tmp_path / "figs")])
    assert code == 0
    out = capsys.readouterr().out
    # the truth: the raw test split, read here without the CLI
    from tinynet.data import mnist
    xt, _ = mnist("test")
    train_rows = {r.tobytes() for r in xt[:len(seen["x"])].reshape(len(seen["x"]), -1)}
    val = seen["xv"].reshape(len(seen["xv"]), -1)
    assert len(seen["x"]) + len(val) <= len(xt)
    assert not any(r.tobytes() in train_rows for r in val)
    assert np.array_equal(seen["x"].reshape(len(seen["x"]), -1),
                          xt[:len(seen["x"])].reshape(len(seen["x"]), -1))
    assert "never trained on" in out and "are left out" not in out
    assert "No held-out accuracy" not in out
