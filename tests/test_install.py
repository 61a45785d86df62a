"""Installing learnenv must leave a pre-installed JAX alone (Colab ships its own CUDA build).

Two layers:

* cheap checks of pyproject.toml: no upper bound on jax/jaxlib, and a lower
  bound no newer than the JAX version the install check below verified;
* ``scripts/check_colab_install.py``: a fresh venv with an older jax/jaxlib,
  then the exact install command of the chapters' Colab set-up cell, then a
  check that jax is unchanged and learnenv imports. It downloads every
  dependency into a temporary venv (75 s on the 2-core build machine), so it
  runs only with ``LEARNENV_CHECK_INSTALL=1`` and network access; its recorded
  results are in ``results/colab_install_check.json``;
* the same script's ``--mode chapter``: the introduction executed as on Colab,
  its own set-up cell installing a wheel of this tree, then shipped result
  files found in the installed package. It runs by default (with network
  access to PyPI or its mirror): 47 s on the idle 2-core build machine, 75 s
  under load (recorded in ``results/colab_install_check.json``).

What those recorded results show: with the version ranges alone (``pip install
learnenv``), pip *upgrades* a pre-installed jax 0.6.2, because the newest
flax requires a newer jax. That is why the set-up cell pins the installed
``jax==X jaxlib==X`` while installing: pip then picks compatible older
versions of the other dependencies, and JAX stays as it is. With jax 0.4.38
the pinned install fails (pip: ResolutionImpossible) and the set-up cell says
how to upgrade JAX; with jax 0.5.3 it picked gymnax 0.0.9 (five-value ``step``)
before pyproject.toml required gymnax>=1.0 and evosax>=0.3, which
``test_api_floors_match_what_learnenv_uses`` now guards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The oldest pre-installed JAX that scripts/check_colab_install.py verified
# works with the pinned install (gymnax>=1.0 itself needs jax>=0.6).
VERIFIED_OLD_JAX = Version("0.6.2")
RECORD = ROOT / "results" / "colab_install_check.json"


def requirements() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    return {r.name.lower(): r for r in reqs}


def jax_requirements() -> list[Requirement]:
    reqs = requirements()
    assert "jax" in reqs, "pyproject.toml must depend on jax"
    return [reqs[name] for name in ("jax", "jaxlib") if name in reqs]


def test_jax_has_no_upper_bound():
    for req in jax_requirements():
        for spec in req.specifier:
            assert spec.operator in (">=", ">", "!="), (
                f"{req}: an upper bound or pin would make pip replace Colab's own JAX build"
            )


def test_jax_lower_bound_is_old_enough():
    for req in jax_requirements():
        lower = [Version(s.version) for s in req.specifier if s.operator in (">=", ">")]
        assert lower, f"{req}: give a lower bound"
        assert max(lower) <= VERIFIED_OLD_JAX, (
            f"{req}: requiring a JAX newer than {VERIFIED_OLD_JAX} makes pip upgrade older runtimes"
        )


def test_api_floors_match_what_learnenv_uses():
    reqs = requirements()
    assert reqs["gymnax"].specifier.contains("1.0.1") and not reqs["gymnax"].specifier.contains("0.0.9")
    assert reqs["evosax"].specifier.contains("0.3.2") and not reqs["evosax"].specifier.contains("0.2.0")


def test_recorded_install_check_kept_jax():
    """The result of scripts/check_colab_install.py recorded with the book."""
    if not RECORD.exists():
        pytest.skip(f"no recorded result at {RECORD.relative_to(ROOT)}")
    records = json.loads(RECORD.read_text())
    pinned = [r for rec in records for r in rec["results"] if r["mode"] == "pinned"]
    verified = [r for r in pinned if Version(r["jax_preinstalled"]) == VERIFIED_OLD_JAX]
    assert verified and all(r["ok"] and r["jax_unchanged"] for r in verified)


def _online(host: str = "pypi.org", port: int = 443) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
        return True
    except OSError:
        return False


def run_check(tmp_path: Path, *args: str) -> dict:
    """The one result of ``scripts/check_colab_install.py ARGS``, with its output on failure."""
    out = tmp_path / "result.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_colab_install.py"),
         "--jax", str(VERIFIED_OLD_JAX), *args, "--out", str(out)],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    (record,) = json.loads(out.read_text())
    (result,) = record["results"]
    return result


@pytest.mark.slow
def test_pinned_install_keeps_preinstalled_jax(tmp_path):
    if os.environ.get("LEARNENV_CHECK_INSTALL") != "1":
        pytest.skip(
            "downloads every dependency into a temporary venv; set LEARNENV_CHECK_INSTALL=1 to run "
            f"(last recorded result: {RECORD.relative_to(ROOT)})"
        )
    if not _online():
        pytest.skip("offline: cannot reach pypi.org")
    result = run_check(tmp_path, "--mode", "pinned")
    assert result["jax_unchanged"] and result["after"]["import_ok"]


@pytest.mark.slow
def test_chapter_runs_as_on_colab(tmp_path):
    """The install check end to end: a chapter's own set-up cell, in a kernel that
    believes it is on Colab (next to jax 0.6.2, outside any checkout), installs a
    wheel of this tree and the chapter runs; learnenv.results then finds the shipped
    result files in the installed package, so chapters need not re-run experiments."""
    if not _online():
        pytest.skip("offline: cannot reach pypi.org")
    result = run_check(tmp_path, "--mode", "chapter", "--chapter", "introduction")
    assert result["learnenv_before"] is None, "learnenv must come from the set-up cell"
    assert result["installed_from"].endswith(".whl")
    assert result["execute_rc"] == 0 and result["cell_errors"] == []
    assert result["executed_cells"] == result["code_cells"] > 1
    assert f"JAX {VERIFIED_OLD_JAX} on CPU" in result["preset_line"]  # the runtime's JAX was kept
    assert result["result_path"].endswith("/share/learnenv/results/se/se-cartpole-quick.json")
    assert result["result_matches_source"] and result["outside_source"]
