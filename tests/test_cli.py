"""The `tinynet` command: info, and `explain` on every case, writing its figures."""
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
    assert "pip install -e .[gpu]" in capsys.readouterr().err


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
