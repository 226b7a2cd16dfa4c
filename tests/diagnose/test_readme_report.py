"""The report printed in the README is a real one: rerun its example and compare."""
import re
from pathlib import Path

import tinynet as tn
from tinynet import data, init, nn, optim
from tinynet.data import DataLoader

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_report():
    text = README.read_text()
    start = text.index("```text\n", text.index("And why a parameter stops updating")) + 8
    return text[start:text.index("\n```", start)]


def _decimals(s):
    # decimals rounded to 2 significant digits: the text, not the last BLAS bit, is compared
    return re.sub(r"-?\d+\.\d+", lambda m: f"{float(m.group()):.2g}", " ".join(s.split()))


def test_readme_report_is_what_explain_prints():
    x, y = data.digits(2000, seed=0)
    tn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dense(784, 64), nn.ReLU(),
                          nn.Dense(64, 64, bias_init=init.constant(-3.0)), nn.ReLU(),
                          nn.Dense(64, 10))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    report = tn.diagnose.explain(model, DataLoader(x, y, batch_size=64), optimizer=opt,
                                 steps=100, progress=False)
    assert _decimals(str(report)) == _decimals(_readme_report())
