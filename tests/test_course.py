"""The book as course material: every chapter's anatomy, exercises and student notebook.

Chapters and exercises are discovered, so a new chapter without objectives, a
self-check or checked exercises fails here. For every coding exercise the
check must pass the book's solution (its answer cell) and reject the stub and
every seeded wrong solution (the exercise's mutants).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import student_notebooks as student  # noqa: E402
import sync_notebooks  # noqa: E402
from learnenv import exercises  # noqa: E402
from learnenv.exercises import CheckFailed, grading  # noqa: E402

CHAPTERS = {p.stem: p for p in sync_notebooks.chapter_sources()}
NOTEBOOKS = {name: jupytext.read(path) for name, path in CHAPTERS.items()}
LABELS = {name: student.exercise_labels(nb) for name, nb in NOTEBOOKS.items()}
CODING = sorted(label for label, e in exercises.exercises().items() if e.coding)
# The lecture's final slide, "My Understanding of Synthetic Environments".
LECTURE_OBJECTIVES = (
    "I understand why learning environments is useful",
    "I can contrast it with model-based RL",
    "I know an example of learning an environment",
    "I understand the current limitations",
    "I know 1-2 approaches in detail",
    "I can discuss some future directions",
)


def admonition(text: str, cls: str) -> str:
    m = re.search(rf"^:::\{{admonition\}}[^\n]*\n:class: {cls}\n(.*?)^:::$", text, re.M | re.S)
    return m.group(1) if m else ""


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_anatomy(chapter):
    text = CHAPTERS[chapter].read_text()
    objectives = re.findall(r"^- (.+)$", admonition(text, "objectives"), re.M)
    assert len(objectives) >= 3, f"{chapter}: a Learning objectives admonition with 3+ bullets"
    for line in objectives:
        mapped = re.search(r"\*\(lecture: (.+?)\)\*\s*$", line)
        assert mapped and mapped.group(1) in LECTURE_OBJECTIVES, \
            f"{chapter}: objective not mapped to the lecture's final slide: {line}"
    assert admonition(text, "prerequisites").strip(), f"{chapter}: no Prerequisites admonition"
    assert f'describe_preset(chapter="{chapter}")' in text, f"{chapter}: no measured run time"
    for heading in ("## Summary", "## Self-check", "## Exercises"):
        assert f"\n{heading}\n" in text, f"{chapter}: no {heading} section"
    assert admonition(text, "limitations").strip(), f"{chapter}: no Limitations admonition"
    selfcheck = text.split("\n## Self-check\n")[1].split("\n## ")[0]
    assert selfcheck.count("<details><summary>Answer</summary>") >= 3, \
        f"{chapter}: the self-check needs 3+ questions with hidden answers"
    assert text.index("## Summary") < text.index("## Self-check") < text.index("## Exercises")


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_exercise_is_registered_with_its_solution(chapter):
    nb = NOTEBOOKS[chapter]
    registered = exercises.exercises(chapter)
    assert LABELS[chapter], f"{chapter} has no exercises"
    assert set(LABELS[chapter]) == set(registered), \
        f"{chapter}: exercises in the chapter {LABELS[chapter]} vs registered {sorted(registered)}"
    regions = student.solution_regions(nb)
    for label, exercise in registered.items():
        assert label in regions, f"{label} has no solution-start/solution-end"
        assert exercise.grading and exercise.objective and exercise.minutes > 0
        answer = student.answer_cell(nb, label)
        assert (answer is not None) == exercise.coding, \
            f"{label}: a coding exercise has exactly one answer cell; an open one none"
        if exercise.coding:
            checks = [c.source for c in nb.cells if c.cell_type == "code"
                      and f'exercises.check("{label}"' in c.source]
            assert checks, f"{label}: no check cell after its solution"


def _run_answer(source: str, label: str):
    """Execute an answer cell in a module of its own and return its names."""
    module = types.ModuleType(f"answer_{label.replace('-', '_')}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, label, "exec"), module.__dict__)
    return [module.__dict__[n] for n in exercises.get(label).names]


@pytest.mark.slow
@pytest.mark.parametrize("label", CODING)
def test_check_passes_solution_and_rejects_stub_and_mutants(label, capsys):
    exercise = exercises.get(label)
    nb = NOTEBOOKS[exercise.chapter]
    solution = student.answer_cell(nb, label).source
    assert exercises.verdict(label, *_run_answer(solution, label))[0] == "pass"
    assert exercises.verdict(label, *_run_answer(exercise.stub, label))[0] == "not done"
    exercises.check(label, *_run_answer(exercise.stub, label))
    assert f"{label}: not done yet (Exercise " in capsys.readouterr().out
    assert len(exercise.mutants) >= 2
    for old, new in exercise.mutants:
        assert old in solution, f"{label}: mutant {old!r} does not occur in the solution"
        with pytest.raises(CheckFailed) as failure:
            exercises.verdict(label, *_run_answer(solution.replace(old, new), label))
        assert len(str(failure.value)) > 30, "a failed check says what is wrong"


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_student_notebook_is_current_and_leaks_no_solution(chapter):
    setup = student.install_setup(sync_notebooks.setup_cell_source(),
                                  sync_notebooks.repository()[0])
    wanted = sync_notebooks.as_ipynb(student.student_notebook(NOTEBOOKS[chapter], setup))
    path = student.STUDENT / f"{chapter}.ipynb"
    assert path.exists() and jupytext.writes(nbformat.read(path, as_version=4), fmt="ipynb") \
        == jupytext.writes(wanted, fmt="ipynb"), f"{path.name} is out of date: run `make sync`"
    text = "\n".join(c.source for c in wanted.cells)
    outside = "\n".join(c.source for c in NOTEBOOKS[chapter].cells)
    for label, parts in student.solution_regions(NOTEBOOKS[chapter]).items():
        given = exercises.get(label).stub  # the signature a stub gives away on purpose
        for _, part in parts:
            for line in part.splitlines():
                line = line.strip()
                if len(line) > 24 and outside.count(line) == 1 and line not in given:
                    assert line not in text, f"{path.name} leaks {label}'s solution: {line!r}"
    assert f"@{student.release_tag()}" in text, "the set-up cell must pin the release tag"
    answers = grading.answer_cells(path)
    assert sorted(answers) == sorted(e for e in LABELS[chapter] if exercises.get(e).coding)
    assert all("NotImplementedError(\"Exercise " in s for s in answers.values())


def test_instructor_guide_tables_are_current():
    assert sync_notebooks.write_instructor_tables(check=True) == [], "run `make sync`"


CHECK = "exercises.check("  # a check cell: gets the student's names (stubs, in a student notebook)


def _names(source: str) -> tuple[set[str], set[str]]:
    """The names a code cell binds anywhere in it, and the other names it reads."""
    from IPython.core.inputtransformer2 import TransformerManager

    bound, read = set(), set()
    for node in ast.walk(ast.parse(TransformerManager().transform_cell(source))):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound, read - bound


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_no_chapter_cell_needs_a_solution(chapter):
    """A student notebook has no solutions: no cell outside them may read a name that
    only a solution binds (the check cells read the stubs' names, on purpose)."""
    nb = NOTEBOOKS[chapter]
    inside = {i for parts in student.solution_regions(nb).values() for i, _ in parts}
    code = {i: (c.source, *_names(c.source)) for i, c in enumerate(nb.cells)
            if c.cell_type == "code"}  # index: (source, bound, read), each cell parsed once
    only = (set().union(*[b for i, (_, b, _) in code.items() if i in inside])
            - set().union(*[b for i, (_, b, _) in code.items() if i not in inside]))
    for i, (source, _, read) in code.items():
        if i not in inside and CHECK not in source:
            needs = read & only
            assert not needs, f"{chapter}: cell {i} reads {sorted(needs)}, bound only in a solution"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_student_notebook_runs_top_to_bottom(chapter, tmp_path, monkeypatch):
    """Only the stubs may raise, and they raise only when called: checks say 'not done'.

    A student notebook is its chapter's code cells with each solution replaced by a
    stub and an empty cell. The chapter's cells run in the book build, which this
    test suite executes once; here run the cells whose behaviour differs: the set-up,
    the stubs, the empty cells and the check cells (now given the stubs), in order, in
    a fresh kernel. With the test above (no chapter cell needs a solution), that
    covers a student's run from top to bottom without executing every chapter twice."""
    from nbclient import NotebookClient

    monkeypatch.setenv("LEARNENV_RUNS_DIR", str(tmp_path))  # no resuming of other runs

    nb = nbformat.read(student.STUDENT / f"{chapter}.ipynb", as_version=4)
    book = {c.source for c in NOTEBOOKS[chapter].cells if c.cell_type == "code"}
    nb.cells = [c for c in nb.cells
                if c.cell_type == "code" and (c.source not in book or CHECK in c.source)]
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(CHAPTERS[chapter].parent)}}).execute()
    outputs = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    for label in LABELS[chapter]:
        if exercises.get(label).coding:
            assert f"{label}: not done yet (Exercise " in outputs


@pytest.mark.slow
def test_grade_command_on_a_folder_of_submissions(tmp_path):
    """Three submissions of the NES notebook: untouched, solved, and wrong."""
    nb = nbformat.read(student.STUDENT / "imitating-nes.ipynb", as_version=4)
    solution = student.answer_cell(NOTEBOOKS["imitating-nes"], "ex-nes-update").source
    old, new = exercises.get("ex-nes-update").mutants[0]
    for name, source in (("untouched", None), ("solved", solution),
                         ("wrong", solution.replace(old, new))):
        copy = nbformat.from_dict(nb)
        for cell in copy.cells:
            if cell.metadata.get("exercise") == "ex-nes-update" and source is not None:
                cell.source = source
        nbformat.write(copy, tmp_path / f"{name}.ipynb")
    run = subprocess.run([sys.executable, "-m", "learnenv", "grade", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in run.stdout.splitlines() if line.startswith("| ") and ".ipynb" in line}
    assert rows == {"solved.ipynb": "pass", "untouched.ipynb": "not done", "wrong.ipynb": "FAIL"}
    assert "| passed | 1/3 |" in run.stdout
