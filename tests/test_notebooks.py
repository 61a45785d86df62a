"""Build the book (executing every chapter once, quick preset) and check what it shows.

The build is ``scripts/build_book.py``, the same as ``make book``: chapters run
through jupyter-cache, so a ``make book`` after ``make test`` executes nothing
again. The tests then read the built HTML the way a reader sees it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.md"))
HTML = ROOT / "_build" / "html" / "chapters"

# What must never stand, as output text, where a reader expects a figure, a table
# or a value.
REPRS = {
    "a matplotlib figure's repr instead of the figure":
        re.compile(r"<Figure size \d+|\bFigure\(\d+x\d+\)"),
    "a Python object's repr": re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-f]+>"),
    "a markdown table printed as text": re.compile(r"^\s*\|[^\n]*\|\s*\n\s*\|[\s:|-]+\|\s*$",
                                                  re.MULTILINE),
}


@pytest.fixture(scope="session")
def built_book():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=4800)
    seconds = time.perf_counter() - start
    if out.returncode:
        log = (out.stdout + out.stderr)[-6000:]
        pytest.fail(f"the book build failed after {seconds:.0f} s:\n{log}")
    print(f"book built in {seconds:.0f} s")
    return json.loads((ROOT / "results" / "book" / "chapter-times.json").read_text())


def outputs(name: str) -> list[str]:
    """The text of every cell output on a built chapter page (what the run showed)."""
    from bs4 import BeautifulSoup

    page = BeautifulSoup((HTML / f"{name}.html").read_text(encoding="utf-8"), "html.parser")
    return [div.get_text() for div in page.select("div.cell_output")]


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_executes_in_quick_preset_within_its_cap(name, built_book):
    row = built_book["chapters"].get(name)
    assert row and "quick_seconds" in row, f"{name} has no execution record in the ledger"
    print(f"{name}: {row['quick_seconds']:.0f} s (cap {row['cap_minutes']} min)")
    assert row["quick_seconds"] <= 60 * row["cap_minutes"], (
        f"{name} took {row['quick_seconds']:.0f} s, over its cap of {row['cap_minutes']} min "
        "(book/how-to-use.md): move expensive parts into shipped results")
    assert any("learnenv preset: 'quick'" in text for text in outputs(name)), \
        "chapters must print describe_preset() at the top"


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAPTERS)
def test_built_chapter_shows_figures_and_tables_not_reprs(name, built_book):
    for text in outputs(name):
        for what, pattern in REPRS.items():
            hit = pattern.search(text)
            assert not hit, f"{name}: {what}: {text[max(0, hit.start() - 80):hit.end() + 80]!r}"


def test_the_repr_scan_catches_what_it_looks_for():
    """The scan above must fail on the defects it was written for."""
    figure = "<Figure size 650x340 with 2 Axes>"
    obj = "<learnenv.synthetic.bandit.SyntheticContextualBandit object at 0x7f12ab>"
    table = "| agent | trained on |\n|---|---|\n| DDQN | SE |"
    assert REPRS["a matplotlib figure's repr instead of the figure"].search(figure)
    assert REPRS["a Python object's repr"].search(obj)
    assert REPRS["a markdown table printed as text"].search(table)
    assert not REPRS["a markdown table printed as text"].search("a | b and c | d")
    # the other forms they take: print(fig), and IPython's repr of a cell's last value
    assert REPRS["a matplotlib figure's repr instead of the figure"].search("Figure(650x360)")
    assert REPRS["a Python object's repr"].search("[<matplotlib.lines.Line2D at 0x7f3a2b>]")
