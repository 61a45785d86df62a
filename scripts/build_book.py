"""Build the book, executing each chapter at most once per change (``make book``, the tests).

    python scripts/build_book.py            # what `make book` and tests/test_notebooks.py run

Chapters execute through jupyter-cache (``_build/.jupyter_cache``, see
``_config.yml``): a chapter whose code has not changed since it last ran is not
run again, so ``make test`` (which builds the book and checks what it built)
followed by ``make book`` executes every chapter once in all. jupyter-cache
only looks at a chapter's own cells, so this script also fingerprints what the
chapters read: the library (``lib/``) and the result files (``results/``,
except the ledger this script writes). When that fingerprint changes, the cache
is emptied and every chapter runs again; the book never shows outputs of older
code.

After the build the chapter time ledger, ``results/book/chapter-times.json``,
records every chapter's execution time (from the cache records, i.e. the run
that produced the outputs the book shows) with the machine's provenance, and
``book/_chapter-times.md`` (included by the how-to-use page) shows it next to
each chapter's cap.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
# Chapters' run folders (checkpoints of live runs) live and die with the cache: a
# run resumed from a checkpoint of older code would show that code's results.
RUNS = CACHE / "runs"
FINGERPRINT = CACHE / "learnenv-inputs.sha256"
LEDGER = ROOT / "results" / "book" / "chapter-times.json"
TABLE = ROOT / "book" / "_chapter-times.md"

# The time budget of the whole book: each chapter's cap for the quick preset on a
# 2-core CPU, in minutes (9 chapters, about 40 minutes in all, so that CI stays
# under 50). Chapters not written yet keep their place in the budget.
CAPS_MIN = {
    "introduction": 1, "primer": 2, "imitating-nes": 4, "synthetic-bandits": 6,
    "model-learning": 6, "video-rewards": 6, "genie": 6, "interactive-simulators": 6,
    "practicalities": 3,
}
# No full (GPU) run of these chapters has been timed: rough estimates, labelled as such,
# from how much larger each full preset is than the quick one.
FULL_ESTIMATES = {
    "introduction": "estimate, not measured: minutes",
    "primer": "estimate, not measured: minutes (more seeds, longer training)",
    "imitating-nes": "estimate, not measured: about 1 h (up to 200 generations of 32 agents)",
    "synthetic-bandits": "estimate, not measured: hours (paper-scale SNES, 300 generations "
                         "of 128 members)",
    "model-learning": "estimate, not measured: about 30 min (the full presets' longer fits "
                      "and 32 seeds)",
    "video-rewards": "estimate, not measured: about 10 min (live fits at the full "
                     "preset's size; the agents come from the shipped quick run)",
    "interactive-simulators": "estimate, not measured: minutes (the live fit and the "
                              "rollouts on a GPU; the agents come from the shipped quick run)",
    "genie": "estimate, not measured: minutes (the live LAM fit and the rollouts on a GPU; "
             "the agents come from the shipped quick run)",
}
TITLES = {
    "introduction": "Why learn environments?", "primer": "Environments as functions",
    "imitating-nes": "Imitating environments with NES",
    "synthetic-bandits": "Discovering environments: synthetic contextual bandits",
    "model-learning": "Learning the parts of an environment",
    "video-rewards": "Rewards from video prediction",
    "genie": "Generative interactive environments",
    "interactive-simulators": "Interactive simulators from action-conditioned diffusion",
    "practicalities": "Practicalities and future directions (planned)",
}


def preset() -> str:
    return os.environ.get("LEARNENV_PRESET") or "quick"


def inputs_fingerprint() -> str:
    """SHA-256 over every file the chapters may read besides their own cells, and the
    preset (the same cells give other outputs in the full preset)."""
    from importlib import metadata

    h = hashlib.sha256(preset().encode())
    # The installed packages too: another jax or evosax may give other outputs.
    for line in sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()}):
        h.update(line.encode())
    files = [p for p in sorted((ROOT / "lib").rglob("*")) if p.is_file()
             and "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    files += [p for p in sorted((ROOT / "results").rglob("*")) if p.is_file()
              and p != LEDGER]
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def invalidate_stale_cache() -> bool:
    """Empty the execution cache if the library or the results changed; True if emptied."""
    now = inputs_fingerprint()
    if FINGERPRINT.is_file() and FINGERPRINT.read_text().strip() == now:
        return False
    if CACHE.exists():
        shutil.rmtree(CACHE)
    CACHE.mkdir(parents=True)
    FINGERPRINT.write_text(now + "\n")
    return True


def cached_times(since) -> dict[str, dict]:
    """Per chapter: execution seconds of the cache record this build's outputs came
    from (created or read since ``since``, a naive UTC datetime)."""
    from jupyter_cache import get_cache

    latest: dict[str, object] = {}
    for record in get_cache(str(CACHE)).list_cache_records():
        if record.accessed < since:
            continue
        name = Path(record.uri).stem
        if Path(record.uri).parent.name != "chapters":
            continue
        if name not in latest or record.accessed > latest[name].accessed:
            latest[name] = record
    return {name: {f"{preset()}_seconds": round(float(r.data.get("execution_seconds", float("nan"))), 1),
                   "executed": r.created.isoformat(timespec="seconds") + "Z"}
            for name, r in latest.items()}


def write_ledger(since) -> dict:
    from learnenv import io, provenance

    old = json.loads(LEDGER.read_text()) if LEDGER.is_file() else {}
    times = cached_times(since)
    chapters = {}
    for name, cap in CAPS_MIN.items():
        # A chapter this build did not produce (it failed) keeps no time of an older
        # run in this preset; times measured in the other preset stay.
        other = {k: v for k, v in old.get("chapters", {}).get(name, {}).items()
                 if k.startswith("full" if preset() == "quick" else "quick")}
        row = {"cap_minutes": cap, **other, **times.get(name, {})}
        if name in FULL_ESTIMATES and "full_seconds" not in row:
            row["full_estimate"] = FULL_ESTIMATES[name]
        chapters[name] = row
    ledger = {
        "what": "Execution time of each chapter in the quick preset, from the run whose "
                "outputs the built book shows (jupyter-cache records); caps from "
                "scripts/build_book.py. 'full_estimate' is a labelled estimate where no GPU "
                "run was measured.",
        "command": ["python", "scripts/build_book.py"],
        "chapters": chapters,
        "cpu_count": os.cpu_count(),
        "provenance": provenance.collect(),
    }
    io.write_json(LEDGER, ledger)
    return ledger


def write_table(ledger: dict) -> None:
    """The how-to-use page's table, from the ledger of the last build."""
    prov = ledger.get("provenance", {})
    device = prov.get("device", {})
    commit = (prov.get("git") or {}).get("commit", "")[:7] or "unknown"
    lines = ["| chapter | cap, quick (CPU) | measured, quick (CPU) | full (GPU) |",
             "|---|---|---|---|"]
    total_cap = total = 0.0
    for name, row in ledger["chapters"].items():
        seconds = row.get("quick_seconds")
        measured = f"{seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else "not built yet"
        total += seconds if isinstance(seconds, (int, float)) else 0.0
        total_cap += row["cap_minutes"]
        if isinstance(row.get("full_seconds"), (int, float)):
            full = f"{row['full_seconds'] / 60:.1f} min (measured)"
        else:
            full = row.get("full_estimate", "not measured")
        lines.append(f"| {TITLES[name]} | {row['cap_minutes']} min | {measured} | {full} |")
    lines.append(f"| **all chapters** | **{total_cap:g} min** | **{total / 60:.1f} min** | |")
    if prov:
        lines += ["", f"Measured on {device.get('platform', '?')} "
                  f"({ledger.get('cpu_count', '?')} cores), commit {commit}, "
                  f"{prov.get('timestamp', '?')}: the build that wrote "
                  "`results/book/chapter-times.json`."]
    else:
        lines += ["", "No build has recorded its times yet."]
    TABLE.write_text("\n".join(lines) + "\n")


def main() -> int:
    if invalidate_stale_cache():
        print("build_book: the library or results changed: every chapter executes again.")
    empty = {"chapters": {name: {"cap_minutes": cap} for name, cap in CAPS_MIN.items()}}
    write_table(json.loads(LEDGER.read_text()) if LEDGER.is_file() else empty)
    env = {**os.environ, "LEARNENV_PRESET": preset(), "LEARNENV_RUNS_DIR": str(RUNS),
           "LEARNENV_PROGRESS": "0"}
    book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    start = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    code = subprocess.call([book, "build", str(ROOT), "--all", "-W", "-n", "--keep-going"],
                           env=env, cwd=ROOT)
    if CACHE.exists():
        write_ledger(start)
        # The page table follows the ledger just written (this build's HTML shows the
        # table as it was when the build started; the next build shows this one).
        write_table(json.loads(LEDGER.read_text()))
    if FINGERPRINT.is_file() and inputs_fingerprint() != FINGERPRINT.read_text().strip():
        FINGERPRINT.unlink()  # the inputs changed during the build: trust none of it
    print(f"build_book: {'built' if code == 0 else 'FAILED'}: {ROOT / '_build/html/index.html'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
