"""The README's ten-line example runs as printed and reaches the accuracy it states."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example_code():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return next(b for b in blocks if "fit(model" in b)


def test_readme_example_reaches_stated_accuracy(capsys):
    code = _example_code()
    assert len([line for line in code.splitlines() if line.strip()]) <= 12
    namespace = {}
    exec(compile(code.replace("print(evaluate(", "result = (evaluate("), "README", "exec"),
         namespace)
    assert namespace["result"]["acc"] >= 0.8
