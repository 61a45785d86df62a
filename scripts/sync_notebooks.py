"""Keep every chapter's Colab set-up cell and its .ipynb twin in sync.

Chapters are MyST markdown notebooks, ``chapters/NAME.md``: the source of
truth, what the book builds and what you edit. Colab opens only ``.ipynb``, so
each chapter has a committed twin ``chapters/NAME.ipynb`` (jupytext pairing,
``formats: md:myst,ipynb``) that the book's "Open in Colab" button links to.

This script, run by ``make sync``:

1. reads the repository URL and branch from ``_config.yml`` (the one place
   that names them);
2. makes the first code cell of every chapter the Colab set-up cell generated
   from them (tagged ``colab-setup``; a no-op outside Colab);
3. writes the ``.ipynb`` twin from the ``.md`` with no outputs;
4. writes the chapter's student notebook, ``student/NAME.ipynb``: the same
   without solutions, pinned to the release tag (scripts/student_notebooks.py).

``python scripts/sync_notebooks.py --check`` changes nothing and exits 1 if
any file is out of date. The tests in ``tests/test_book.py`` import this
module to check the same things.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import student_notebooks as student  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
CHAPTERS = ROOT / "chapters"
SETUP_TAG = "colab-setup"
# The set-up cell is collapsed in the HTML book (it does nothing there).
SETUP_TAGS = [SETUP_TAG, "hide-input"]
PAIRED_FORMATS = "md:myst,ipynb"
# When set, the set-up cell installs this pip requirement instead of the
# repository (a fork, a branch, or a local wheel as in scripts/check_colab_install.py).
INSTALL_SPEC_ENV = "LEARNENV_INSTALL_SPEC"

SETUP_TEMPLATE = '''\
# Colab set-up, generated from _config.yml by `make sync` (do not edit here).
# On Colab it installs learnenv from the book's repository, keeping Colab's own
# JAX build; anywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib.metadata
    import os
    import subprocess

    spec = "{spec}"
    # ${env} installs another learnenv instead (a fork, a local wheel).
    spec = os.environ.get("{env}", spec)
    keep = [f"{{p}}=={{importlib.metadata.version(p)}}" for p in ("jax", "jaxlib")]
    cmd = [sys.executable, "-m", "pip", "install", "-q", spec, *keep]
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError(
            f"Installing learnenv next to this runtime's {{' and '.join(keep)}} failed "
            "(see pip's message above). If it says the JAX version is too old, run "
            "`%pip install -U 'jax[cuda12]'`, restart the session and run this cell again."
        )
    # The SCB paper's published bandits are data files of this package (learnenv[paper]);
    # learnenv reads them and never imports it, so its dependencies are not needed.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "{paper}"])
    # Colab shows ipywidgets (the chapters' play panels) only with its custom widget manager.
    from google.colab import output

    output.enable_custom_widget_manager()'''


def repository(config_path: Path = CONFIG) -> tuple[str, str]:
    """The repository URL and branch named in ``_config.yml``."""
    config = yaml.safe_load(config_path.read_text())
    repo = config.get("repository") or {}
    url, branch = repo.get("url"), repo.get("branch")
    if not url or not branch:
        raise SystemExit(f"{config_path}: set repository.url and repository.branch")
    return str(url).rstrip("/"), str(branch)


def install_spec(url: str, branch: str) -> str:
    """The pip requirement that installs learnenv from the repository."""
    if url.endswith(".git"):
        url = url[: -len(".git")]
    return f"learnenv @ git+{url}@{branch}"


def paper_requirement() -> str:
    """The ``paper`` extra's one requirement (pyproject.toml), installed without its deps."""
    import tomllib

    (requirement,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["paper"]
    return requirement


def setup_cell_source(config_path: Path = CONFIG) -> str:
    return SETUP_TEMPLATE.format(spec=install_spec(*repository(config_path)), env=INSTALL_SPEC_ENV,
                                 paper=paper_requirement())


def chapter_sources(chapters: Path = CHAPTERS) -> list[Path]:
    """Every chapter notebook: the MyST ``.md`` files in ``chapters/``."""
    return sorted(p for p in chapters.glob("*.md") if not p.name.startswith("_"))


def twin(md_path: Path) -> Path:
    return md_path.with_suffix(".ipynb")


def with_setup_cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose first code cell is the set-up cell, exactly once."""
    nb = copy.deepcopy(nb)
    cells = [
        c for c in nb.cells if not (c.cell_type == "code" and SETUP_TAG in c.metadata.get("tags", []))
    ]
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(SETUP_TAGS)})
    cell.pop("id", None)
    cells.insert(first_code, cell)
    nb.cells = cells
    jupytext_meta = nb.metadata.setdefault("jupytext", {})
    jupytext_meta["formats"] = PAIRED_FORMATS
    return nb


def as_ipynb(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The committed twin: no outputs, no execution counts, Colab asks for a GPU."""
    nb = copy.deepcopy(nb)
    seen: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        # Ids from the content, so re-syncing an unchanged chapter changes nothing.
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()
        cell_id = digest[:8]
        while cell_id in seen:
            digest = hashlib.sha1(digest.encode()).hexdigest()
            cell_id = digest[:8]
        seen.add(cell_id)
        cell["id"] = cell_id
    # Colab opens the notebook on a GPU runtime when one is free; learnenv
    # then picks the full preset (see learnenv.config.preset_name).
    nb.metadata["accelerator"] = "GPU"
    nb.metadata.setdefault("colab", {"provenance": [], "gpuType": "T4"})
    return nb


def cell_summary(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must agree between the .md and the .ipynb: type, source and tags."""
    return [
        (c.cell_type, c.source.strip("\n"), tuple(c.metadata.get("tags", ())))
        for c in nb.cells
    ]


def sync(md_path: Path, *, check: bool = False, source: str | None = None) -> list[str]:
    """Bring one chapter up to date; return the names of files that were (or would be) changed."""
    source = setup_cell_source() if source is None else source
    nb = jupytext.read(md_path)
    new_nb = with_setup_cell(nb, source)
    changed: list[str] = []

    if cell_summary(new_nb) != cell_summary(nb) or nb.metadata.get("jupytext", {}).get(
        "formats"
    ) != PAIRED_FORMATS:
        changed.append(str(md_path.relative_to(ROOT)))
        if not check:
            jupytext.write(new_nb, md_path, fmt="md:myst")
            new_nb = jupytext.read(md_path)  # what the book will see

    ipynb = twin(md_path)
    wanted = as_ipynb(new_nb)
    current = nbformat.read(ipynb, as_version=4) if ipynb.exists() else None
    if current is None or _ipynb_text(current) != _ipynb_text(wanted):
        changed.append(str(ipynb.relative_to(ROOT)))
        if not check:
            jupytext.write(wanted, ipynb, fmt="ipynb")

    path = student.STUDENT / ipynb.name
    setup = student.install_setup(source, repository()[0])
    wanted = as_ipynb(student.student_notebook(new_nb, setup))
    current = nbformat.read(path, as_version=4) if path.exists() else None
    if current is None or _ipynb_text(current) != _ipynb_text(wanted):
        changed.append(str(path.relative_to(ROOT)))
        if not check:
            path.parent.mkdir(exist_ok=True)
            jupytext.write(wanted, path, fmt="ipynb")
    return changed


INSTRUCTOR_TABLES = ROOT / "book" / "_exercises.md"


def write_instructor_tables(check: bool = False) -> list[str]:
    """Write the instructor guide's generated tables (book/_exercises.md) if they changed."""
    chapters = [(name, jupytext.read(CHAPTERS / f"{name}.md")) for name in student.book_chapters()]
    text = student.instructor_tables(chapters, repository()[0])
    if INSTRUCTOR_TABLES.exists() and INSTRUCTOR_TABLES.read_text() == text:
        return []
    if not check:
        INSTRUCTOR_TABLES.write_text(text)
    return [str(INSTRUCTOR_TABLES.relative_to(ROOT))]


def _ipynb_text(nb: nbformat.NotebookNode) -> str:
    return jupytext.writes(nb, fmt="ipynb")


def has_outputs(nb: nbformat.NotebookNode) -> bool:
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of date")
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter .md files (default: all)")
    args = parser.parse_args(argv)

    paths = [p.resolve() for p in args.chapters] or chapter_sources()
    source = setup_cell_source()
    stale = [name for p in paths for name in sync(p, check=args.check, source=source)]
    stale += write_instructor_tables(check=args.check)
    verb = "out of date" if args.check else "updated"
    for name in stale:
        print(f"{verb}: {name}")
    if not stale:
        print(f"{len(paths)} chapter(s) in sync with {CONFIG.name}.")
    if args.check and stale:
        print("Run `make sync`.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
