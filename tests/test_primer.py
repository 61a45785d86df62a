"""The primer chapter's exercise solutions run as printed.

Each ```python block inside a ``{solution}`` of chapters/primer.md is executed
on its own (they are self-contained). The chapter itself is executed by
tests/test_notebooks.py.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "primer.md"


def solution_blocks() -> dict[str, str]:
    text = CHAPTER.read_text()
    blocks = {}
    for label, body in re.findall(r"^:::\{solution\} (\S+)\n(.*?)^:::$", text, flags=re.M | re.S):
        for i, code in enumerate(re.findall(r"^```python\n(.*?)^```$", body, flags=re.M | re.S)):
            blocks[f"{label}-{i}"] = code
    return blocks


BLOCKS = solution_blocks()


def test_solutions_have_code():
    assert {"ex-primer-corridor-0", "ex-primer-grid-0", "ex-primer-timing-0",
            "ex-primer-poles-0"} <= set(BLOCKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_solution_runs(name, capsys, monkeypatch):
    module = types.ModuleType("primer_solution")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(BLOCKS[name], f"primer.md:{name}", "exec"), module.__dict__)
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n{name}:\n{out}")
    assert out.strip(), "a solution should print its result"
    if name == "ex-primer-corridor-0":
        greedy = float(re.search(r"greedy return: ([\d.]+)", out).group(1))
        assert greedy == 1.0, out
