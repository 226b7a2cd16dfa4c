#!/usr/bin/env python
"""Write the student versions of the homework notebooks.

    python scripts/release_homework.py SRC_DIR OUT_DIR        (e.g. lessons/homework release/)

A thin wrapper: the logic lives in tinynet/grade/release.py (see its
docstring), so the wheel and ``tinynet lessons`` release homework the same
way.  Exit code 1 when a notebook cannot be released (nothing is written), 2
for misuse (OUT_DIR is the source folder, no such folder).
"""
import sys
from pathlib import Path

try:
    import tinynet  # noqa: F401
except ImportError:                       # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinynet.grade.release import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN,  # noqa: E402,F401
                                   END_SOLUTION, HIDDEN_TAG, MARKERS, ReleaseError,
                                   UsageError, main, release, release_notebook,
                                   release_notebook_file, strip_cell)

if __name__ == "__main__":
    sys.exit(main())
