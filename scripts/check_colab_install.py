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

``--mode chapter`` goes one step further and runs a chapter as Colab would: it
builds a wheel of this working tree (the repository URL of the set-up cell is
not reachable from a test), creates the venv with ``jax==V jaxlib==V`` and the
notebook runtime Colab ships (ipykernel, nbclient), puts a fake
``google.colab`` module on the kernel's path and imports it at kernel start,
and executes ``chapters/NAME.ipynb`` with nbclient in a folder outside the
repository. The chapter's own set-up cell then installs learnenv, with its
exact pinned command, from the wheel (named by $LEARNENV_INSTALL_SPEC, which
the cell honours). Last, ``learnenv.results.path`` must find a shipped result
file in the installed package, not in a checkout.

Usage (needs PyPI or a mirror; a few minutes per run)::

    python scripts/check_colab_install.py --jax 0.6.2 --mode both \
        --out results/colab_install_check.json
    python scripts/check_colab_install.py --mode chapter --chapter introduction \
        --out results/colab_install_check.json

The result recorded for the book is in results/colab_install_check.json.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from learnenv import provenance
from sync_notebooks import INSTALL_SPEC_ENV

ROOT = Path(__file__).resolve().parents[1]
# What Colab's runtime has installed next to its JAX, and the chapter check needs.
NOTEBOOK_RUNTIME = ("ipykernel", "nbclient", "nbformat")
# The shipped result file the chapter check asks learnenv.results for.
RESULT_FILE = "se/se-cartpole-quick.json"
PROBE = (
    "import importlib.metadata as m, json\n"
    "out = {}\n"
    "for p in ('learnenv', 'jax', 'jaxlib', 'gymnax', 'evosax', 'flax', 'optax', 'brax', 'numpy'):\n"
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
# Runs in the venv, in the folder outside the repository: argv = notebook in, notebook out.
# Colab's kernel has google.colab imported before the first cell; so does this one.
EXECUTE = (
    "import sys, nbformat\n"
    "from nbclient import NotebookClient\n"
    "nb = nbformat.read(sys.argv[1], as_version=4)\n"
    "client = NotebookClient(nb, timeout=900, kernel_name='python3',\n"
    "    extra_arguments=['--IPKernelApp.exec_lines=import google.colab'])\n"
    "try:\n"
    "    client.execute()\n"
    "finally:\n"
    "    nbformat.write(nb, sys.argv[2])\n"
)
# Runs in the venv after the chapter: where learnenv.results finds argv[1], and what was installed.
FIND_RESULT = (
    "import json, sys, importlib.metadata as m\n"
    "from learnenv import results\n"
    "url = json.loads(m.distribution('learnenv').read_text('direct_url.json') or '{}').get('url')\n"
    "out = {'installed_from': url, 'checkout': str(results.checkout_results())}\n"
    "try: out['path'] = str(results.path(sys.argv[1]))\n"
    "except FileNotFoundError as e: out['error'] = str(e)\n"
    "print(json.dumps(out))\n"
)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def probe(python: Path, code: str = PROBE, *args: str, **kw) -> dict:
    """The JSON that ``code`` prints last when run by ``python``."""
    res = run([str(python), "-c", code, *args], **kw)
    if res.returncode != 0:
        return {"probe_error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def jax_pins(jax_version: str) -> list[str]:
    return [f"jax=={jax_version}", f"jaxlib=={jax_version}"]


def colab_like_venv(venv: Path, python: str, jax_version: str, extra: tuple[str, ...] = ()) -> tuple[Path, str]:
    """A fresh venv with ``jax==V jaxlib==V`` (and ``extra``) pre-installed, as on Colab:
    its python, or an error message instead of the path."""
    res = run([python, "-m", "venv", str(venv)])
    if res.returncode != 0:
        return venv, res.stderr[-2000:]
    py = venv / "bin" / "python"
    pins = [*jax_pins(jax_version), *extra]
    res = run([str(py), "-m", "pip", "install", "-q", *pins])
    if res.returncode != 0:
        return venv, "could not pre-install " + " ".join(pins) + "\n" + res.stderr[-2000:]
    return py, ""


def check(mode: str, jax_version: str, python: str, source: Path, workdir: Path) -> dict:
    result: dict = {"mode": mode, "jax_preinstalled": jax_version}
    start = time.perf_counter()
    py, error = colab_like_venv(workdir / f"venv-{mode}", python, jax_version)
    if error:
        return {**result, "ok": False, "error": error}
    pins = jax_pins(jax_version)
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


def build_wheel(python: str, source: Path, dest: Path) -> Path:
    """The wheel of ``source`` (what pip builds from the repository URL on Colab)."""
    res = run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(source)])
    wheels = sorted(dest.glob("learnenv-*.whl"))
    if res.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(f"pip wheel failed:\n{res.stderr[-2000:]}")
    return wheels[0]


def fake_colab(folder: Path) -> Path:
    """A folder holding a stand-in ``google.colab`` package: the modules libraries
    import once they see it (jax: ``google.colab.output``), empty but for the set-up
    cell's ``output.enable_custom_widget_manager``.
    ``google`` stays a namespace package, so a real google.protobuf still imports."""
    package = folder / "google" / "colab"
    package.mkdir(parents=True)
    for module in ("__init__", "output"):
        (package / f"{module}.py").write_text('"""Stand-in for Colab\'s module, for the install check."""\n')
    # The set-up cell enables Colab's widget manager (the chapters' play panels).
    (package / "output.py").write_text(
        '"""Stand-in for Colab\'s module, for the install check."""\n\n\n'
        'def enable_custom_widget_manager():\n    """Colab\'s switch for ipywidgets; nothing to do here."""\n')
    return folder


def output_text(nb: dict) -> str:
    """Every stream and text/plain output of the executed notebook, joined."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def check_chapter(chapter: str, jax_version: str, python: str, source: Path, workdir: Path) -> dict:
    """Execute chapters/CHAPTER.ipynb as on Colab, from a wheel of ``source`` (see the module doc)."""
    result: dict = {"mode": "chapter", "chapter": chapter, "jax_preinstalled": jax_version}
    seconds = result["seconds"] = {}
    start = time.perf_counter()
    wheel = build_wheel(python, source, workdir / "wheel")
    seconds["wheel"] = round(time.perf_counter() - start, 1)
    py, error = colab_like_venv(workdir / "venv-chapter", python, jax_version, NOTEBOOK_RUNTIME)
    seconds["venv"] = round(time.perf_counter() - start - seconds["wheel"], 1)
    if error:
        return {**result, "ok": False, "error": error}
    content = workdir / "content"  # Colab's working folder: no checkout anywhere above it
    content.mkdir()
    notebook = content / f"{chapter}.ipynb"
    shutil.copy2(ROOT / "chapters" / notebook.name, notebook)
    env = {**os.environ, "PYTHONPATH": str(fake_colab(workdir / "colab")), INSTALL_SPEC_ENV: str(wheel)}
    before = probe(py)
    t0 = time.perf_counter()
    executed = content / f"{chapter}.executed.ipynb"
    res = run([str(py), "-c", EXECUTE, str(notebook), str(executed)], cwd=content, env=env)
    seconds["notebook"] = round(time.perf_counter() - t0, 1)
    nb = json.loads(executed.read_text()) if executed.exists() else {"cells": []}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    found = probe(py, FIND_RESULT, RESULT_FILE, cwd=content)
    after = probe(py)
    shipped = found.get("path")
    result.update(
        install_command=(f"pip install -q {wheel.name} {' '.join(jax_pins(jax_version))} (the set-up cell, "
                         f"with {INSTALL_SPEC_ENV}={wheel.name})"),
        learnenv_before=before.get("learnenv"),
        installed_from=found.get("installed_from"),
        code_cells=len(code),
        executed_cells=sum(c.get("execution_count") is not None for c in code),
        cell_errors=[f"{e['ename']}: {e['evalue']}"[:500] for e in errors],
        execute_rc=res.returncode,
        execute_stderr_tail=res.stderr[-2000:] if res.returncode else "",
        # describe_preset's header: the preset line and the JAX line after it.
        preset_line=next((" ".join(lines[i:i + 2]) for lines in [output_text(nb).splitlines()]
                          for i, line in enumerate(lines) if line.startswith("learnenv preset:")),
                         None),
        before={k: before.get(k) for k in ("jax", "jaxlib")},
        after={k: after.get(k) for k in ("jax", "jaxlib", "flax", "gymnax", "evosax")},
        result_file=RESULT_FILE,
        result_path=shipped,
        result_error=found.get("error") or found.get("probe_error"),
        result_matches_source=bool(shipped) and _sha(Path(shipped)) == _sha(source / "results" / RESULT_FILE),
        outside_source=bool(shipped) and not Path(shipped).is_relative_to(source) and not Path(shipped).is_relative_to(ROOT),
    )
    result["jax_unchanged"] = result["after"]["jax"] == before.get("jax") and result["after"]["jaxlib"] == before.get("jaxlib")
    seconds["total"] = round(time.perf_counter() - start, 1)
    result["ok"] = bool(
        res.returncode == 0 and not errors and result["executed_cells"] == len(code) > 0
        and result["learnenv_before"] is None and str(result["installed_from"]).endswith(wheel.name)
        and result["jax_unchanged"] and result["result_matches_source"] and result["outside_source"]
    )
    return result


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def copy_source(tree: Path, dest: Path) -> Path:
    """Copy what a pip install from git would see (the wheel carries results/ too),
    so nothing is built in the working tree."""
    if not (tree / "pyproject.toml").exists():
        return tree  # e.g. a git+https URL or a wheel: let pip fetch it
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv", "_build", "build", "runs")
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "lib", "results", "LICENSE"):
        path = tree / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, dest / name)
    return dest


def hardware() -> dict:
    """The machine the check ran on (its times depend on it)."""
    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")), None) if cpuinfo.exists() else None
    return {"os": f"{platform.system()} {platform.machine()}", "cpu": model or platform.processor(),
            "cpu_count": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jax", default="0.6.2", help="the pre-installed jax/jaxlib version (default 0.6.2)")
    parser.add_argument("--mode", choices=("plain", "pinned", "both", "chapter"), default="both")
    parser.add_argument("--chapter", default="introduction", help="the chapter --mode chapter executes")
    parser.add_argument("--python", default=shutil.which("python3.11") or sys.executable)
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to pip install (default: this one)")
    parser.add_argument("--out", type=Path, help="append the result to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary venvs")
    args = parser.parse_args(argv)

    modes = ("plain", "pinned") if args.mode == "both" else (args.mode,)
    workdir = Path(tempfile.mkdtemp(prefix="colab-install-"))
    start = time.perf_counter()
    try:
        source = copy_source(args.source.resolve(), workdir / "src")
        if args.mode == "chapter":
            results = [check_chapter(args.chapter, args.jax, args.python, source, workdir)]
        else:
            results = [check(m, args.jax, args.python, source, workdir) for m in modes]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    python_version = run([args.python, "--version"]).stdout.strip()
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "scripts/check_colab_install.py", *(sys.argv[1:] if argv is None else argv)],
        "git": provenance.git_info(ROOT),
        "hardware": hardware(),
        "python": python_version,
        "wall_clock_s": round(time.perf_counter() - start, 1),
        "results": results,
    }
    print(json.dumps(record, indent=2))
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(existing + [record], indent=2) + "\n")
    # Success means: the install the chapters use on Colab keeps JAX and works
    # (and, for --mode chapter, the chapter runs and finds the shipped results).
    chosen = [r for r in results if r["mode"] in ("pinned", "chapter")] or results
    return 0 if all(r["ok"] for r in chosen) else 1


if __name__ == "__main__":
    raise SystemExit(main())
