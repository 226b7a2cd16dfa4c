"""A pip user's first contact: build the wheel, install it in a fresh venv, get the lessons.

One test does it all, so that only one build runs in the checkout at a time
(builds write build/ there; parallel workers would race).  Building and
installing costs ~30 s with pip's cache warm; the dependencies come from PyPI.

* the wheel holds the lessons and the *student* homework as package data, and
  the LICENSE in its dist-info; no solution notebook, no solution text;
* the sdist holds what its own wheel build needs (MANIFEST.in): a wheel built
  from the unpacked sdist has the same lessons;
* in an empty folder, ``tinynet lessons out/`` writes every lesson and every
  homework notebook, with no solution and no hidden test; a second run refuses
  to overwrite; ``tinynet info``, ``tinynet explain --help`` and a short
  ``tinynet explain zero-kernel`` run; a bad input is one line;
* lesson 00 runs from the copied folder with the venv's Python.
"""
import importlib.util
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.name for p in (ROOT / "lessons").glob("*.ipynb"))
HOMEWORK = sorted(p.name for p in (ROOT / "lessons" / "homework").glob("*.ipynb"))
SOLUTION_TEXT = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "hidden-tests")


def _run(cmd, cwd, timeout, env=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def _build_wheel(out, src=ROOT):
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    # Without build isolation when this environment can build (no download of
    # setuptools); setuptools < 70.1 needs the separate `wheel` package for that.
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        cmd.insert(4, "--no-build-isolation")
    r = _run(cmd, src, 300)
    assert r.returncode == 0, f"building the wheel failed:\n{r.stdout}\n{r.stderr}"
    wheels = list(out.glob("tinynet-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _venv_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["MPLBACKEND"] = "Agg"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _code_of(notebook):
    """A notebook's code cells as one script; IPython magics (%..., !...) are dropped."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines += [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"


def _check_wheel(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in LESSONS:
        assert f"tinynet/_lessons/{name}" in names
    for name in HOMEWORK:
        assert f"tinynet/_lessons/homework/{name}" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names), "the LICENSE is not in the wheel's dist-info"
    with zipfile.ZipFile(wheel) as z:
        license_name = next(n for n in names if n.endswith("LICENSE") and "dist-info" in n)
        assert "MIT License" in z.read(license_name).decode()
        for n in names:
            if n.startswith("tinynet/_lessons/homework/"):
                text = z.read(n).decode("utf-8")
                for marker in SOLUTION_TEXT:
                    assert marker not in text, f"{n} holds {marker!r}"
                assert "raise NotImplementedError()" in text
    assert not any("lessons/src" in n or n.startswith("lessons/") for n in names)
    return names


def _wheel_from_sdist(tmp_path):
    """sdist (setuptools' PEP 517 hook, in the checkout), unpacked, then its own wheel."""
    import tarfile
    out = tmp_path / "sdist"
    r = _run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
              "print(b.build_sdist(sys.argv[1]))", str(out)], ROOT, 300)
    assert r.returncode == 0, r.stderr
    sdist = out / r.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path / "unpacked", **safe)
    src = next((tmp_path / "unpacked").iterdir())
    assert (src / "LICENSE").is_file() and (src / "scripts" / "release_homework.py").is_file()
    return _build_wheel(tmp_path / "from-sdist", src)


@pytest.mark.slow
def test_pip_user_path_from_a_fresh_venv(tmp_path):
    wheel = _build_wheel(tmp_path / "dist")
    names = _check_wheel(wheel)
    if importlib.util.find_spec("setuptools"):      # builds the sdist in this interpreter
        assert set(_check_wheel(_wheel_from_sdist(tmp_path))) == set(names)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    env = _venv_env()
    r = _run([str(py), "-m", "pip", "install", "-q", str(wheel)], tmp_path, 600, env)
    if r.returncode != 0 and ("NewConnectionError" in r.stderr or "No matching distribution"
                              in r.stderr or "Could not find a version" in r.stderr):
        pytest.skip(f"the dependencies could not be installed from PyPI: "
                    f"{r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, f"pip install of the wheel failed:\n{r.stderr}"
    tinynet = env_dir / "bin" / "tinynet"

    work = tmp_path / "empty"
    work.mkdir()
    r = _run([str(tinynet), "lessons", "out/"], work, 120, env)
    assert r.returncode == 0, r.stderr
    out = work / "out"
    assert sorted(p.name for p in out.glob("*.ipynb")) == LESSONS
    assert sorted(p.name for p in (out / "homework").glob("*.ipynb")) == HOMEWORK
    for p in (out / "homework").glob("*"):
        text = p.read_text(encoding="utf-8")
        for marker in SOLUTION_TEXT:
            assert marker not in text, f"{p.name} holds {marker!r}"
    # the packaged lessons are the repository's, byte for byte
    for name in LESSONS:
        assert (out / name).read_bytes() == (ROOT / "lessons" / name).read_bytes()

    r = _run([str(tinynet), "lessons", "out/"], work, 120, env)
    assert r.returncode != 0 and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr

    r = _run([str(tinynet), "info"], work, 120, env)
    assert r.returncode == 0 and "tinynet 0." in r.stdout, r.stderr
    r = _run([str(tinynet), "explain", "--help"], work, 120, env)
    assert r.returncode == 0 and "default" in r.stdout, r.stderr
    r = _run([str(tinynet), "explain", "zero-kernel", "--steps", "2", "--samples", "64",
              "--no-progress", "--out", "figs"], work, 300, env)
    assert r.returncode == 0 and "done in" in r.stdout, r.stderr
    assert list((work / "figs").glob("zero_kernel_*.png"))
    r = _run([str(tinynet), "explain", "--samples", "0"], work, 120, env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--samples" in r.stderr

    # one lesson runs from the copied folder, against the installed wheel
    (out / "lesson00.py").write_text(_code_of(out / "00_autograd_by_hand.ipynb"))
    r = _run([str(py), "lesson00.py"], out, 300, env)
    assert r.returncode == 0, f"lesson 00 failed from the copy:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
