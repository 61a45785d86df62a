"""Shipped result files, found in a checkout and in an installed wheel alike.

Chapters show runs too long for a book build from files in the repository's
``results/`` folder. On Colab there is no checkout: the set-up cell installs a
wheel, so a chapter that looked for ``../results/...`` found nothing and
silently ran the experiment again. ``results/`` lies outside the package, so
the wheel carries its JSON and PNG files as data files, installed under
``<prefix>/share/learnenv/results`` (``[tool.setuptools.data-files]`` in
pyproject.toml), and :func:`path` looks there when learnenv does not run from a
checkout::

    from learnenv import results
    json.loads(results.path("se/se-steps-to-solve-quick.json").read_text())
"""

from __future__ import annotations

import difflib
import functools
from importlib import metadata
from pathlib import Path, PurePosixPath, PureWindowsPath

# Where a wheel installs results/, relative to the installation prefix.
DATA_DIR = "share/learnenv/results"


def checkout_results() -> Path | None:
    """``results/`` of the repository learnenv runs from (an editable install,
    or ``lib`` on the path), or None when learnenv is an installed package."""
    package = Path(__file__).resolve().parent
    root = package.parents[1]  # the checkout: <root>/lib/learnenv/results.py
    pyproject = root / "pyproject.toml"
    if (package.parent.name == "lib" and pyproject.is_file() and (root / "results").is_dir()
            and 'name = "learnenv"' in pyproject.read_text(encoding="utf-8")):
        return root / "results"
    return None


@functools.cache
def installed_results() -> dict[str, Path]:
    """Every result file the installed distribution carries, by its path in results/.

    Read from the distribution's record of installed files, so it holds
    wherever pip put the prefix (a venv, ``/usr/local`` on Colab, ``--user``).
    """
    try:
        files = metadata.distribution("learnenv").files or []
    except metadata.PackageNotFoundError:
        return {}
    found = {}
    for file in files:
        _, marker, relative = file.as_posix().partition(DATA_DIR + "/")
        if marker:
            found[relative] = Path(file.locate()).resolve()
    return found


def path(relative: str) -> Path:
    """The shipped result file ``results/RELATIVE``, e.g. ``path("se/se-cartpole-quick.json")``.

    From a checkout it is the file in the checkout (so a rerun that rewrote it
    is what the chapter shows), else the copy installed with the package.
    Raises FileNotFoundError naming the file, where it was looked for and the
    closest shipped names.
    """
    rel = PurePosixPath(relative)
    windows = PureWindowsPath(relative)  # "..\\x" and "C:/x" are plain names to POSIX
    if (rel.is_absolute() or ".." in rel.parts or not rel.parts or windows.anchor
            or ".." in windows.parts):
        raise ValueError(f"results.path({relative!r}): give a path inside results/, like 'se/NAME.json'.")
    key = rel.as_posix()
    root = checkout_results()
    if root is not None:
        found = root / key
        if found.is_file():
            return found
        known = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        where = f"learnenv runs from the checkout {root.parent}, and {found} does not exist"
    else:
        shipped = installed_results()
        if key in shipped and shipped[key].is_file():
            return shipped[key]
        known = list(shipped)
        where = (
            f"learnenv is installed without a checkout, and its installed data ({DATA_DIR}) "
            "has no such file"
            if shipped else
            "learnenv is installed without a checkout and without its result files "
            f"(no {DATA_DIR} in its install record): reinstall it from a wheel built "
            "with the repository's pyproject.toml"
        )
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise FileNotFoundError(f"No shipped result file {key!r}: {where}.{hint}")
