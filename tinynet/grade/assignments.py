"""The registry of assignments, and how a submission says which one it is."""
from pathlib import Path

from tinynet.grade import hw1, hw2, hw3

ASSIGNMENTS = {a.id: a for a in (hw1.ASSIGNMENT, hw2.ASSIGNMENT, hw3.ASSIGNMENT)}


class GraderUsageError(Exception):
    """The grader was called wrongly (missing file, unknown assignment): exit code 2."""


def get(assignment_id):
    try:
        return ASSIGNMENTS[assignment_id]
    except KeyError:
        raise GraderUsageError(f"unknown assignment {assignment_id!r}; the assignments are: "
                               f"{', '.join(ASSIGNMENTS)}") from None


def resolve(path, explicit=None, hint=None):
    """The Assignment for a submission.

    In order: ``explicit`` (--assignment); ``hint`` (the notebook's
    metadata.tinynet.assignment or a module's ASSIGNMENT = "..."); the file
    name -- "hw1_dense_softmax.ipynb", "hw1_dense_softmax_alice.ipynb" and
    "hw1_anything.py" all mean hw1_dense_softmax.
    """
    if explicit:
        return get(explicit)
    if hint:
        if hint in ASSIGNMENTS:
            return ASSIGNMENTS[hint]
    stem = Path(path).stem.lower()
    for a in ASSIGNMENTS.values():
        if stem.startswith(a.id):
            return a
    for a in ASSIGNMENTS.values():
        short = a.id.split("_")[0]
        if stem == short or stem.startswith(short + "_") or stem.startswith(short + "-"):
            return a
    raise GraderUsageError(
        f"cannot tell which assignment {Path(path).name} is: its name does not start with "
        f"an assignment id and it names none in its metadata. Pass --assignment, one of: "
        f"{', '.join(ASSIGNMENTS)}")
