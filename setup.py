"""Build hook: the wheel carries the lessons and the STUDENT homework as package data.

Everything else is in setup.cfg.  At build time ``build_py`` writes

    tinynet/_lessons/NN_name.ipynb            copies of lessons/*.ipynb
    tinynet/_lessons/homework/hwN_*.ipynb     student versions of lessons/homework/*.ipynb

into the build folder only, so the source tree never holds a second copy and
the solution notebooks never reach the wheel.  ``tinynet lessons`` copies
them out.  Building needs only the standard library (no numpy): the release
module is loaded from its file, not through the tinynet package.
"""
import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LESSONS = ROOT / "lessons"
HOMEWORK = LESSONS / "homework"
# The student-version logic (it exposes release_notebook_file(src, dst)).
RELEASE_MODULE = ROOT / "tinynet" / "grade" / "release.py"


def _load_standalone(path):
    """Import one file without importing the tinynet package (which needs numpy).

    The release code imports only ``tinynet.files`` (standard library only),
    so that one module is loaded from its file too and removed afterwards.
    """
    saved = {k: sys.modules.get(k) for k in ("tinynet.files",)}
    files_spec = importlib.util.spec_from_file_location("tinynet.files",
                                                        ROOT / "tinynet" / "files.py")
    files = importlib.util.module_from_spec(files_spec)
    files_spec.loader.exec_module(files)
    sys.modules["tinynet.files"] = files
    try:
        spec = importlib.util.spec_from_file_location("_tinynet_release", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return module


def release_notebook_file(src, dst):
    """Write the student version of the homework notebook ``src`` to ``dst``."""
    return _load_standalone(RELEASE_MODULE).release_notebook_file(src, dst)


class BuildWithLessons(build_py):
    """build_py, plus the lessons and the student homework under tinynet/_lessons/."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return          # an editable install reads lessons/ from the checkout
        if not LESSONS.is_dir():
            raise RuntimeError(f"cannot build the wheel: {LESSONS} is missing "
                               f"(the sdist must include lessons/, see MANIFEST.in)")
        out = Path(self.build_lib) / "tinynet" / "_lessons"
        if out.exists():
            shutil.rmtree(out)
        (out / "homework").mkdir(parents=True)
        for nb in sorted(LESSONS.glob("*.ipynb")):
            shutil.copyfile(nb, out / nb.name)
        for nb in sorted(HOMEWORK.glob("*.ipynb")):
            release_notebook_file(nb, out / "homework" / nb.name)


setup(cmdclass={"build_py": BuildWithLessons})
