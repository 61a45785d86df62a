"""Does installing learnenv leave a pre-installed JAX alone, as on Colab?

Colab ships its own CUDA build of jax/jaxlib. The first cell of every chapter
installs learnenv there; if pip replaced Colab's jax with a PyPI one, the GPU
would be lost. This script imitates that situation on any machine:

1. create a fresh virtual environment and install ``jax==V jaxlib==V`` (the
   stand-in for Colab's pre-installed JAX);
2. install learnenv from this working tree, in one of two ways:
   ``plain``  - ``pip install <repo>``: do the version ranges alone keep JAX?
   ``pinned`` - exactly what the chapters' set-up cell runs on Colab:
               ``pip install <repo> jax==V jaxlib==V``;
3. report whether jax/jaxlib changed, which versions of gymnax, evosax and flax
   pip chose, and whether ``import learnenv, gymnax, evosax`` works.

Usage (needs network access to PyPI; a few minutes per run)::

    python scripts/check_colab_install.py --jax 0.6.2 --mode both \
        --out results/colab_install_check.json

The result recorded for the book is in results/colab_install_check.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import importlib.metadata as m, json\n"
    "out = {}\n"
    "for p in ('jax', 'jaxlib', 'gymnax', 'evosax', 'flax', 'optax', 'brax', 'numpy'):\n"
    "    try: out[p] = m.version(p)\n"
    "    except m.PackageNotFoundError: out[p] = None\n"
    "try:\n"
    "    import learnenv, learnenv.config, gymnax, evosax, jax\n"
    "    from evosax.algorithms import SNES  # the evosax>=0.3 API the book uses\n"
    "    env, params = gymnax.make('CartPole-v1')\n"
    "    key = jax.random.key(0)\n"
    "    obs, state = env.reset(key, params)\n"
    "    out['gymnax_step_values'] = len(env.step(key, state, 0, params))\n"
    "    out['import_ok'] = out['gymnax_step_values'] == 6  # gymnax>=1.0 API\n"
    "except Exception as e:\n"
    "    out['import_ok'] = False; out['import_error'] = f'{type(e).__name__}: {e}'[:500]\n"
    "print(json.dumps(out))\n"
)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def probe(python: Path) -> dict:
    res = run([str(python), "-c", PROBE])
    if res.returncode != 0:
        return {"probe_error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def check(mode: str, jax_version: str, python: str, source: Path, workdir: Path) -> dict:
    venv = workdir / f"venv-{mode}"
    result: dict = {"mode": mode, "jax_preinstalled": jax_version}
    start = time.perf_counter()
    res = run([python, "-m", "venv", str(venv)])
    if res.returncode != 0:
        return {**result, "ok": False, "error": res.stderr[-2000:]}
    py = venv / "bin" / "python"
    pins = [f"jax=={jax_version}", f"jaxlib=={jax_version}"]
    res = run([str(py), "-m", "pip", "install", "-q", *pins])
    if res.returncode != 0:
        return {**result, "ok": False, "error": "could not pre-install " + " ".join(pins) + "\n" + res.stderr[-2000:]}
    before = probe(py)
    cmd = [str(py), "-m", "pip", "install", "-q", str(source)]
    if mode == "pinned":
        cmd += pins
    res = run(cmd)
    after = probe(py)
    result.update(
        install_command=" ".join(["pip install", str(source)] + (pins if mode == "pinned" else [])),
        install_rc=res.returncode,
        install_stderr_tail=res.stderr[-1500:] if res.returncode else "",
        before={k: before.get(k) for k in ("jax", "jaxlib")},
        after=after,
        jax_unchanged=(after.get("jax"), after.get("jaxlib")) == (before.get("jax"), before.get("jaxlib")),
        seconds=round(time.perf_counter() - start, 1),
    )
    result["ok"] = bool(res.returncode == 0 and result["jax_unchanged"] and after.get("import_ok"))
    return result


def copy_source(tree: Path, dest: Path) -> Path:
    """Copy what a pip install from git would see, so nothing is built in the working tree."""
    if not (tree / "pyproject.toml").exists():
        return tree  # e.g. a git+https URL or a wheel: let pip fetch it
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "_build", "build", "runs")
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "lib", "LICENSE"):
        path = tree / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, dest / name)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jax", default="0.6.2", help="the pre-installed jax/jaxlib version (default 0.6.2)")
    parser.add_argument("--mode", choices=("plain", "pinned", "both"), default="both")
    parser.add_argument("--python", default=shutil.which("python3.11") or sys.executable)
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to pip install (default: this one)")
    parser.add_argument("--out", type=Path, help="append the result to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary venvs")
    args = parser.parse_args(argv)

    modes = ("plain", "pinned") if args.mode == "both" else (args.mode,)
    workdir = Path(tempfile.mkdtemp(prefix="colab-install-"))
    try:
        source = copy_source(args.source.resolve(), workdir / "src")
        results = [check(m, args.jax, args.python, source, workdir) for m in modes]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    python_version = run([args.python, "--version"]).stdout.strip()
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": python_version,
        "results": results,
    }
    print(json.dumps(record, indent=2))
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(existing + [record], indent=2) + "\n")
    # Success means: the install the chapters use on Colab keeps JAX and works.
    chosen = [r for r in results if r["mode"] == "pinned"] or results
    return 0 if all(r["ok"] for r in chosen) else 1


if __name__ == "__main__":
    raise SystemExit(main())
