"""README "Coming from PyTorch / Keras": the example runs as printed and does what it says."""
import os
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title):
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_pytorch_section_example_runs_and_learns(tmp_path, monkeypatch):
    code = re.findall(r"```python\n(.*?)```", _section("Coming from PyTorch / Keras"), re.S)[0]
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(code, "README (Coming from PyTorch / Keras)", "exec"), ns)
    model, x, y = ns["model"], ns["x"], ns["y"]
    acc = (model(ns["tn"].tensor(x)).numpy().argmax(1) == y).mean()
    assert acc > 0.9                                   # y = (x0 > 0) is easy: it learned
    assert ns["sched"].get_last_lr() == [0.1]          # warm-up done after 3 epochs
    saved = np.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(saved["param/0.weight"], model[0].weight.numpy())
    assert "Linear" not in dir(ns["nn"])


def test_pip_section_names_real_commands():
    text = _section("Installed with pip: the course in three commands")
    assert "tinynet lessons" in text and "jupyter lab tinynet-lessons" in text
    assert 'pip install "tinynet[gpu]"' in text
    from tinynet.lessons_cli import DEFAULT_DIR
    assert DEFAULT_DIR == "tinynet-lessons"
    assert os.path.exists(Path(__file__).resolve().parents[1] / "lessons" / "homework"
                          / "hw1_dense_softmax.ipynb")
