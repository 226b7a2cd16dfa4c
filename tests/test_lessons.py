"""Every lesson notebook runs top to bottom in a fresh kernel.

The lessons end with assertions on the numbers they claim, so a regression in
tinynet fails here.  They use the embedded data, and real MNIST where
TINYNET_MNIST_DIR points at it.
"""
import os
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9]*.ipynb"))


@pytest.mark.lesson
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_top_to_bottom(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    os.environ["MPLBACKEND"] = "Agg"
    # One BLAS thread per kernel: CI runs lessons beside test workers on two
    # cores, and oversubscribed OpenBLAS threads slow training cells tenfold.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(LESSONS)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)


def test_there_are_lessons():
    assert len(NOTEBOOKS) >= 1, "lessons/ holds no numbered notebooks"
