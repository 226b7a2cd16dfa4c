"""Shared by the grader's security and class tests: released notebooks plus one cell."""
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOMEWORK = ROOT / "lessons" / "homework"


def released_notebook(name):
    """The student version (dict) of lessons/homework/NAME, as a student receives it."""
    from tinynet.grade.release import release_notebook
    nb = json.loads((HOMEWORK / name).read_text(encoding="utf-8"))
    return release_notebook(nb, name)[0]


def code_cell(source, tags=None):
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source}
    if tags is not None:
        cell["metadata"]["tags"] = tags
    return cell


def with_cell(name, source, path):
    """Write the released NAME with one extra code cell at the end to ``path``."""
    nb = released_notebook(name)
    nb["cells"].append(code_cell(source))
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = Path(dirpath, f)
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def processes_with(marker):
    """PIDs whose command line contains ``marker`` (Linux /proc)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(d))
            except OSError:
                pass
    return found


def assert_capped(report):
    for p in report["parts"]:
        assert 0 <= p["points"] <= p["max_points"], p
    assert report["total"] == sum(p["points"] for p in report["parts"])
    assert report["total"] <= report["max_total"]
