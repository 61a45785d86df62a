"""Grade a folder of submitted student notebooks: every exercise's check, in bulk.

    python -m learnenv grade submissions/ [--timeout 300]

A student notebook marks each answer cell with its exercise's label (cell
metadata ``exercise``). For every notebook and every such cell, the cell runs
alone in a fresh Python process with a time limit, then the exercise's check
runs on the names it defined. The result is one table: a row per notebook, a
column per exercise, each entry ``pass``, ``FAIL``, ``not done`` (the stub is
still there), ``error`` (the cell itself crashed), ``timeout`` or ``-`` (no
such cell).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

__all__ = ["answer_cells", "grade_answer", "grade_folder", "format_table"]

# Exit statuses of the child process.
_PASSED, _NOT_DONE, _CELL_ERROR = 0, 3, 4
_RUNNER = """
import sys, traceback, __main__
label, source = sys.argv[1], sys.stdin.read()
try:
    exec(compile(source, "answer cell", "exec"), __main__.__dict__)
except Exception:
    traceback.print_exc()
    sys.exit(4)
from learnenv import exercises
exercise = exercises.get(label)
missing = [n for n in exercise.names if n not in __main__.__dict__]
if missing:
    print(f"the answer cell defines no {', '.join(missing)}")
    sys.exit(4)
status, message = exercises.verdict(label, *(__main__.__dict__[n] for n in exercise.names))
print(message)
sys.exit(0 if status == "pass" else 3)
"""


def answer_cells(notebook: str | Path) -> dict[str, str]:
    """``{exercise label: source}`` of a student notebook's answer cells."""
    nb = nbformat.read(notebook, as_version=4)
    return {c.metadata["exercise"]: c.source for c in nb.cells
            if c.cell_type == "code" and "exercise" in c.metadata}


def grade_answer(label: str, source: str, timeout: float = 300.0) -> tuple[str, str]:
    """``(status, last line of output)`` of one answer cell."""
    try:
        run = subprocess.run([sys.executable, "-c", _RUNNER, label], input=source, text=True,
                             capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no verdict within {timeout:g} s"
    lines = (run.stdout + run.stderr).strip().splitlines()
    status = {_PASSED: "pass", _NOT_DONE: "not done", _CELL_ERROR: "error"}.get(run.returncode, "FAIL")
    return status, lines[-1] if lines else ""


def grade_folder(folder: str | Path, timeout: float = 300.0, log=print) -> dict[str, dict]:
    """``{notebook: {label: (status, message)}}`` for every ``*.ipynb`` under ``folder``."""
    results = {}
    for path in sorted(Path(folder).rglob("*.ipynb")):
        results[str(path.relative_to(folder))] = row = {}
        for label, source in answer_cells(path).items():
            row[label] = grade_answer(label, source, timeout)
            log(f"{path.name} {label}: {row[label][0]} ({row[label][1]})")
    return results


def format_table(results: dict[str, dict]) -> str:
    """The results as a Markdown table (notebooks x exercises), then a count per exercise."""
    labels = sorted({label for row in results.values() for label in row})
    lines = ["| notebook | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(row.get(k, ("-",))[0] for k in labels) + " |")
    passed = [sum(row.get(k, ("-",))[0] == "pass" for row in results.values()) for k in labels]
    lines.append("| passed | " + " | ".join(f"{p}/{len(results)}" for p in passed) + " |")
    return "\n".join(lines)
