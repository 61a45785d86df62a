"""Command line: run the book's experiments outside the notebooks.

    python -m learnenv list
    python -m learnenv run ppo-cartpole --preset quick --out runs/ppo [--seed 1]
    python -m learnenv run ppo-cartpole --set num_seeds=4 --set total_timesteps=50000
    python -m learnenv run se-cartpole --set "agent_variants=(((64,), 64), ((128,), 32))"
    python -m learnenv info runs/ppo/agents          # what a checkpoint holds
    python -m learnenv grade submissions/            # check students' exercises in bulk

``run`` writes ``OUT/results.json`` (results, config, provenance, wall-clock
time, command line) and the experiment's figures (PNG) into ``OUT``; run again
with the same arguments, an experiment that checkpoints resumes where it stopped.
A mistake in the arguments (an unknown experiment, preset or field, a value of
the wrong type or out of range) ends in one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from typing import Any, Sequence

from learnenv.config import PRESET_ENV_VAR, PRESETS, deep_tuple


class CLIError(Exception):
    """A usage error: printed without a traceback, exit status 2."""


def _parse_override(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` as the name and the value (see :func:`parse_value`)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise CLIError(f"--set expects NAME=VALUE, got {text!r}.")
    return name.strip(), parse_value(value)


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON (``4``, ``1e-3``, ``true``, ``[[64], 64]``), else a
    Python literal (``(64, 64)``, ``True``, ``'SNES'``), else the text itself
    (``CartPole-v1``). Lists become tuples, as a config holds them; whether the
    value suits the field is for the config to check."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue  # not this syntax (json.JSONDecodeError is a ValueError)
        return deep_tuple(value)
    return text


def _parser() -> argparse.ArgumentParser:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    parser = argparse.ArgumentParser(
        prog="learnenv" if script == "learnenv" else "python -m learnenv",
        description="Run the experiments of the book 'Learning Environments'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("list", help="list the experiments with one-line descriptions")
    run = sub.add_parser("run", help="run an experiment and write results.json and figures")
    run.add_argument("experiment", metavar="EXPERIMENT", help="a name from `list`")
    run.add_argument(
        "--preset",
        default=None,
        help=f"{' or '.join(PRESETS)} (default: ${PRESET_ENV_VAR}, else quick)",
    )
    run.add_argument("--out", default=None, help="output directory (default: runs/EXPERIMENT-PRESET)")
    run.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace a config field (a JSON or Python value, or a bare string), repeatable",
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    info = sub.add_parser("info", help="describe a checkpoint (kind, env, config, provenance)")
    info.add_argument("checkpoint", metavar="CHECKPOINT", help="path, with or without suffix")
    grade = sub.add_parser("grade", help="run every exercise check on a folder of student notebooks")
    grade.add_argument("folder", metavar="FOLDER", help="searched for *.ipynb, recursively")
    grade.add_argument("--timeout", type=float, default=300.0, help="seconds per answer (300)")
    return parser


def _list(out) -> int:
    from learnenv import experiments

    exps = experiments.experiments()
    width = max((len(n) for n in exps), default=0)
    for name, exp in exps.items():
        print(f"{name:<{width}}  {exp.description}", file=out)
    for module, err in experiments.discover().items():
        print(f"(could not import {module}: {err})", file=sys.stderr)
    if not exps:
        print("No experiments registered.", file=out)
    return 0


def _run(args: argparse.Namespace, argv: Sequence[str], out) -> int:
    import matplotlib

    matplotlib.use("Agg")  # figures go to files; no display needed

    from learnenv import experiments
    from learnenv.config import preset_name

    exp = experiments.get(args.experiment)  # unknown name: error listing valid ones
    try:
        preset = preset_name(args.preset)
    except ValueError as err:
        raise CLIError(str(err)) from None
    overrides = dict(_parse_override(o) for o in args.overrides)
    try:
        config = exp.config(preset).replace(**overrides) if overrides else exp.config(preset)
    except (TypeError, ValueError) as err:
        raise CLIError(f"Bad --set for {exp.name}: {err}") from None
    out_dir = args.out or os.path.join("runs", f"{exp.name}-{preset}")
    print(f"learnenv: running {exp.name} ({preset}) -> {out_dir}", file=out)
    print(f"  {config}", file=out)
    saved_env = os.environ.get("LEARNENV_PROGRESS")
    if args.no_progress:
        os.environ["LEARNENV_PROGRESS"] = "0"
    try:
        record = experiments.run_experiment(
            exp.name,
            out_dir,
            preset=preset,
            seed=args.seed,
            config=config,
            command=["python", "-m", "learnenv", *argv],
        )
    finally:
        if args.no_progress:
            if saved_env is None:
                os.environ.pop("LEARNENV_PROGRESS", None)
            else:
                os.environ["LEARNENV_PROGRESS"] = saved_env
    summary = {
        k: v for k, v in record["results"].items() if isinstance(v, (int, float, str, bool))
    }
    for k, v in summary.items():
        print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}", file=out)
    print(f"learnenv: wrote {os.path.join(out_dir, 'results.json')} and "
          f"{len(record['figures'])} figure(s) in {record['wall_clock_s']:.1f} s", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out=None) -> int:
    """Entry point; returns the exit status (0 ok, 2 usage error)."""
    from learnenv.experiments import UnknownExperimentError

    argv = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout if out is None else out
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list(out)
        if args.command == "info":
            from learnenv import io

            try:
                print(io.describe(args.checkpoint), file=out)
            except (FileNotFoundError, io.CheckpointError) as err:
                raise CLIError(str(err)) from None
            return 0
        if args.command == "grade":
            from learnenv.exercises import grading

            if not os.path.isdir(args.folder):
                raise CLIError(f"{args.folder} is not a folder of notebooks.")
            results = grading.grade_folder(args.folder, args.timeout,
                                           log=lambda line: print(line, file=sys.stderr))
            print(grading.format_table(results), file=out)
            return 0
        return _run(args, argv, out)
    except (CLIError, UnknownExperimentError) as err:
        print(f"learnenv: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
