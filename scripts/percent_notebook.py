"""What build_lessons.py and build_homework.py share: the ``# %%`` source format and
the build / --check command line.

A source is plain Python with jupytext-style cell markers.  Each builder says what
a marker may carry (``read_marker``) and how a cell becomes a notebook cell; this
module splits the cells, drops the blank lines at their ends, uncomments markdown
(one "# " per line) and commented-out IPython magics (``# %matplotlib inline``),
and writes or checks the notebooks (atomically, all built before any is written).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinynet.files import atomic_write  # noqa: E402

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}


def split_cells(text, read_marker, where="source"):
    """[(kind, extra, body)]: one per ``# %%`` marker, in order.

    ``read_marker(rest, number)`` gets what follows "# %%" on line ``number`` and
    returns (kind, extra) -- kind "markdown" or any code kind -- or raises a
    ValueError naming the markers it accepts.  Lines before the first marker are
    the source file's own header and are dropped."""
    cells, current = [], None

    def close():
        if current is None:
            return
        kind, extra, lines = current
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if kind == "markdown":
            lines = [_uncomment(line, where) for line in lines]
        else:
            lines = [line[2:] if line.startswith("# %") else line for line in lines]
        cells.append((kind, extra, "\n".join(lines)))

    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("# %%"):
            kind, extra = read_marker(line.strip()[4:].strip(), number)
            close()
            current = (kind, extra, [])
        elif current is not None:
            current[2].append(line)
    close()
    return cells


def _uncomment(line, where):
    if line.startswith("# "):
        return line[2:]
    if line.rstrip() == "#":
        return ""
    raise ValueError(f"{where}: a markdown line must start with '# ' (or be '#'), got {line!r}")


def stale(sources, target_for, notebook_text):
    """Sources whose notebook is missing or differs from what the source builds."""
    return [s for s in sources if not target_for(s).exists()
            or target_for(s).read_text(encoding="utf-8") != notebook_text(s)]


def main(argv, description, default_sources, what, script, target_for, notebook_text):
    """``script [SOURCES] [--check]``: write the notebooks, or exit 1 if one is stale."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("sources", nargs="*", type=Path,
                        help=f"{what} sources (default: every {default_sources[0]})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook is stale")
    args = parser.parse_args(argv)
    sources = args.sources or default_sources[1]()
    if args.check:
        bad = stale(sources, target_for, notebook_text)
        for src in bad:
            print(f"stale: {_shown(target_for(src))} does not match {_shown(src)}; run "
                  f"python scripts/{script}")
        return 1 if bad else 0
    texts = [(target_for(s), notebook_text(s)) for s in sources]   # all built before any write
    for target, text in texts:
        with atomic_write(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"wrote {_shown(target)}")
    return 0


def _shown(path):
    path = Path(path).resolve()
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path
