"""Every lesson notebook runs top to bottom in a fresh kernel, as a student runs it.

The lessons end with assertions on the numbers they claim (a collapsed "check"
cell each), so a regression in tinynet fails here.  They use the embedded data,
and real MNIST where TINYNET_MNIST_DIR points at it.

Pass 1 runs every lesson with the machine's default BLAS threading: nothing is
pinned, because a student's Jupyter pins nothing either.  Pass 2 reruns, pinned
to one BLAS thread, the lessons that train long enough for the BLAS summation
order to change their numbers (measured: their printed losses and accuracies
differ between 1 and 2 threads).  A claim that holds under one threading and not
the other fails one of the two passes.
"""
import os
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9]*.ipynb"))

# Lessons whose outputs differ between OPENBLAS_NUM_THREADS=1 and =2 (the others
# print the same digits either way and would only repeat pass 1).
# Measured by running each lesson at 1 and at 2 threads and comparing every printed
# line: 00, 02 and 04 print identical text (their ops do not go through a multi-threaded
# BLAS GEMM whose summation order changes); 01, 03, 05 and 06 print different losses,
# accuracies or counts.  07 printed the same numbers (only a timing differed), but its
# findings rest on Dense training through BLAS and its second pass costs seconds.
THREAD_SENSITIVE = {"01_zero_pixels", "03_constant_init", "05_initialization_done_right",
                    "06_dying_units_and_high_lr", "07_reading_the_report"}
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def execute(path, threads=None):
    """Run the notebook in a fresh kernel; threads=None leaves BLAS at its default."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    os.environ["MPLBACKEND"] = "Agg"
    for var in BLAS_THREAD_VARS:
        if threads is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = str(threads)
    try:
        client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                         resources={"metadata": {"path": str(LESSONS)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    return nb


def _check_outputs(nb):
    """Text printed by the lesson's check cells."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "check" in cell.metadata.get("tags", []):
            out += [o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream"]
    return "".join(out)


@pytest.mark.lesson
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_top_to_bottom(path):
    nb = execute(path)
    assert "all claims hold" in _check_outputs(nb).lower(), (
        f"{path.name}: its check cell did not print 'all claims hold'")


SENSITIVE = [p for p in NOTEBOOKS if p.stem in THREAD_SENSITIVE]


@pytest.mark.lesson
@pytest.mark.parametrize("path", SENSITIVE, ids=[p.stem for p in SENSITIVE])
def test_lesson_claims_hold_on_one_blas_thread(path):
    nb = execute(path, threads=1)
    assert "all claims hold" in _check_outputs(nb).lower()


def test_there_are_lessons():
    assert len(NOTEBOOKS) >= 8, [p.name for p in NOTEBOOKS]


def test_every_lesson_has_exercises_with_solutions_and_one_check_cell():
    nbformat = pytest.importorskip("nbformat")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "## Exercises" in text, f"{path.name} has no Exercises section"
        assert sum("solution" in t for t in tags) >= 2, f"{path.name}: fewer than 2 solutions"
        assert sum("check" in t for t in tags) == 1, f"{path.name}: expected one check cell"
        for cell in nb.cells:
            if {"check", "solution"} & set(cell.metadata.get("tags", [])):
                assert cell.metadata["jupyter"]["source_hidden"] is True, path.name
