"""Execute every chapter's committed .ipynb (what Colab opens) in the quick preset."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
CELL_TIMEOUT_S = 1200  # the same per-cell limit as the book build (_config.yml)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_executes_in_quick_preset(path, monkeypatch):
    monkeypatch.setenv("LEARNENV_PRESET", "quick")  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # cwd: the chapter's folder
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} failed after {time.perf_counter() - start:.0f} s:\n{err}")
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "learnenv preset: 'quick'" in outputs, "chapters must print describe_preset() at the top"
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
