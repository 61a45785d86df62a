"""Student notebooks: each chapter without its solutions, for assigning exercises.

A chapter marks every solution with sphinx-exercise's gated directives::

    ```{solution-start} ex-primer-corridor
    :class: dropdown
    ```
    prose and code cells; the first code cell tagged `answer` holds only the
    definitions that the exercise's check takes (self-contained: its own imports)
    ```{solution-end}
    ```

and follows a coding exercise's solution with a check cell,
``exercises.check("ex-primer-corridor", Corridor)``, which stays. The student
notebook ``student/NAME.ipynb`` is the chapter with every solution region
replaced: the answer cell by the exercise's stub (``learnenv.exercises``: it
defines the same names, each raising ``NotImplementedError("Exercise N: ...")``,
so the notebook still runs top to bottom and the checks say "not done yet"),
the rest of the solution by an empty cell for the student's own work. Its
Colab set-up cell installs the tagged release ``v<version>`` (pyproject.toml),
so a course's notebooks do not change under its students.

``make sync`` writes them (scripts/sync_notebooks.py); tests/test_course.py
checks that they are up to date, leak no solution, and run.
"""

from __future__ import annotations

import copy
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "student"
sys.path.insert(0, str(ROOT / "lib"))

from learnenv import exercises as course  # noqa: E402  (the checkout's learnenv, after sys.path)

EXERCISE = re.compile(r"^`{3,}\{exercise\}[^\n]*\n:label:\s*(\S+)", re.M)
START = re.compile(r"^(`{3,})\{solution-start\}\s+(\S+)[^\n]*\n(?::[^\n]*\n)*\1[ \t]*$", re.M)
END = re.compile(r"^(`{3,})\{solution-end\}[^\n]*\n\1[ \t]*$", re.M)
ANSWER_TAG = "answer"
RELEASE_TAG = "v{version}"


def release_tag() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return RELEASE_TAG.format(version=version)


def colab_url(chapter: str, url: str) -> str:
    """The Colab link of a student notebook, at the release tag."""
    path = url.removeprefix("https://github.com/").removesuffix(".git")
    return f"https://colab.research.google.com/github/{path}/blob/{release_tag()}/student/{chapter}.ipynb"


def book_chapters() -> list[str]:
    """The chapters in the book's order (_toc.yml)."""
    return re.findall(r"^\s*- file: chapters/(\S+)", (ROOT / "_toc.yml").read_text(), re.M)


def exercise_numbers() -> dict[str, int]:
    """``{label: n}``: sphinx-exercise numbers exercises through the whole book, in
    the order of the table of contents, and the student notebooks use its numbers."""
    labels = [label for name in book_chapters()
              for label in EXERCISE.findall((ROOT / "chapters" / f"{name}.md").read_text())]
    return {label: n for n, label in enumerate(labels, start=1)}


def exercise_labels(nb: nbformat.NotebookNode) -> list[str]:
    """The chapter's exercise labels, in order (Exercise 1, 2, ...)."""
    return [m for c in nb.cells if c.cell_type == "markdown" for m in EXERCISE.findall(c.source)]


def solution_regions(nb: nbformat.NotebookNode) -> dict[str, list]:
    """``{label: [(cell index, text of the cell inside the region), ...]}``."""
    regions: dict[str, list] = {}
    label = None
    for i, cell in enumerate(nb.cells):
        text = cell.source
        if cell.cell_type != "markdown":
            if label is not None:
                regions[label].append((i, text))
            continue
        pos = 0
        while True:
            if label is None:
                m = START.search(text, pos)
                if not m:
                    break
                label = m.group(2)
                regions[label] = []
                pos = m.end()
            else:
                m = END.search(text, pos)
                regions[label].append((i, text[pos: m.start() if m else len(text)]))
                if not m:
                    break
                label, pos = None, m.end()
    if label is not None:
        raise ValueError(f"solution of {label} has no solution-end")
    return regions


def answer_cell(nb: nbformat.NotebookNode, label: str):
    """The code cell tagged ``answer`` in ``label``'s solution (None if there is none)."""
    for i, _ in solution_regions(nb).get(label, []):
        cell = nb.cells[i]
        if cell.cell_type == "code" and ANSWER_TAG in cell.metadata.get("tags", []):
            return cell
    return None


EXERCISE_BLOCK = re.compile(r"^(`{3,})\{exercise\}[ \t]*([^\n]*)\n:label:\s*(\S+)\n(.*?)^\1[ \t]*$",
                            re.M | re.S)


def _markdown(text: str, numbers: dict[str, int]) -> nbformat.NotebookNode:
    """A markdown cell, its exercise directives as headings (Colab shows no directives)."""
    text = EXERCISE_BLOCK.sub(
        lambda m: f"### Exercise {numbers[m.group(3)]}: {m.group(2).strip()}\n\n{m.group(4).strip()}",
        text)
    return nbformat.v4.new_markdown_cell(text)


def student_notebook(nb: nbformat.NotebookNode, setup_source: str) -> nbformat.NotebookNode:
    """``nb`` (a chapter) with its solutions replaced by stubs and empty cells."""
    numbers = exercise_numbers()
    known = course.exercises()
    cells, label = [], None
    for cell in nb.cells:
        if cell.cell_type == "code" and "colab-setup" in cell.metadata.get("tags", []):
            cell = copy.deepcopy(cell)
            cell.source = setup_source
        if cell.cell_type != "markdown":
            if label is None:
                cells.append(cell)
            elif ANSWER_TAG in cell.metadata.get("tags", []):
                stub = known[label].stub.replace("{n}", str(numbers[label]))
                cells.append(nbformat.v4.new_code_cell(
                    f"# Exercise {numbers[label]}: your answer. Keep it in this cell, self-contained:\n"
                    f"# the check below (and an instructor's grader) runs this cell alone.\n{stub}",
                    metadata={"tags": [ANSWER_TAG], "exercise": label}))
            continue
        kept, pos, text = [], 0, cell.source
        while True:
            if label is None:
                m = START.search(text, pos)
                kept.append(text[pos: m.start() if m else len(text)])
                if not m:
                    break
                label, pos = m.group(2), m.end()
                flush = [c for c in [_markdown("".join(kept).strip("\n"), numbers)] if c.source.strip()]
                cells.extend(flush)
                kept = []
            else:
                m = END.search(text, pos)
                if not m:
                    break
                n = numbers[label]
                if known[label].coding:
                    cells.append(nbformat.v4.new_code_cell(
                        f"# Exercise {n}: the rest of your work (runs, plots, answers in comments)."))
                else:
                    cells.append(_markdown(f"**Your answer to Exercise {n}:** ...", numbers))
                label, pos = None, m.end()
        rest = "".join(kept).strip("\n")
        if rest.strip():
            cells.append(_markdown(rest, numbers))
    out = copy.deepcopy(nb)
    out.cells = cells
    out.metadata.pop("jupytext", None)
    return out


def install_setup(setup_source: str, url: str) -> str:
    """The set-up cell with the release tag in place of the branch."""
    return re.sub(rf"(git\+{re.escape(url)}(?:\.git)?)@[^\"]+", rf"\1@{release_tag()}", setup_source)


def exercise_titles(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {label: title.strip() for c in nb.cells if c.cell_type == "markdown"
            for title, label in re.findall(r"^`{3,}\{exercise\}([^\n]*)\n:label:\s*(\S+)", c.source, re.M)}


def instructor_tables(chapters: list[tuple[str, nbformat.NotebookNode]], url: str) -> str:
    """The instructor guide's generated part: student notebooks, exercises, grading guides."""
    known = course.exercises()
    out = [f"Pinned to the release tag `{release_tag()}`: a course's notebooks do not change "
           "under its students.", "", "| chapter | student notebook |", "|---|---|"]
    for name, _ in chapters:
        out.append(f"| [](../chapters/{name}.md) | [open in Colab]({colab_url(name, url)}) "
                   f"(`student/{name}.ipynb`) |")
    out += ["", "## Every exercise", "",
            "| exercise | objective | time | difficulty | runs on | graded by |",
            "|---|---|---|---|---|---|"]
    guides, numbers = [], exercise_numbers()
    for name, nb in chapters:
        titles = exercise_titles(nb)
        for label in exercise_labels(nb):
            e, n = known[label], numbers[label]
            how = f"`check` ({', '.join(e.names)}) + guide" if e.coding else "guide"
            out.append(f"| {n}: {{ref}}`{titles[label]} <{label}>` | {e.objective} | "
                       f"{e.minutes} min | {e.difficulty} | {e.device} | {how} |")
            guides.append(f"- **Exercise {n}, {titles[label]}** (`{label}`): {e.grading}")
    out += ["", "### Grading guides", "", *guides]
    return "\n".join(out) + "\n"
