"""How chapters show results: a list of rows as a Markdown table.

A Markdown output renders as a real table both in the built book (MyST) and in
Colab and Jupyter, and reads as text in a terminal, with no extra dependency.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["markdown_table", "say"]


def markdown_table(rows: Sequence[Mapping[str, Any]]):
    """``rows`` (dicts with the same keys, in column order) as an IPython Markdown table."""
    from IPython.display import Markdown

    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row[c] is None else str(row[c]) for c in columns) + " |"
              for row in rows]
    return Markdown("\n".join(lines))


def say(text: str, width: int = 88) -> None:
    """Print a computed sentence wrapped to ``width`` columns: notebook output
    boxes do not wrap, and a long line would hide its end off screen."""
    import textwrap

    print("\n".join(textwrap.fill(part, width) for part in str(text).split("\n")))
