"""Re-run the transfer tests recorded with the shipped environments, and compare.

    python scripts/check_shipped_transfer.py [--out results/library/shipped-transfer.json]

Each shipped environment records the returns of the fresh agents its experiment
trained on it, and the seed that drew them. This script loads each one with
``learnenv.pretrained.load``, draws the same agents with the same keys, and
reports, per agent, whether the returns are bit-identical to the recorded ones,
or else how far they moved against the spread the file records. It is how a
change to the library (the checkpoint format, the evolution loop, the agents'
declarations) is shown not to change what the shipped environments teach.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from learnenv import io, pretrained, provenance
from learnenv.experiments.se_learning import SEExperiment
from learnenv.synthetic import scb_eval
from learnenv.synthetic import se_training as st
from learnenv.synthetic.meta import SCBMetaConfig

ROOT = Path(__file__).resolve().parents[1]

# name -> the seed of the command that made it (its results file records the command)
SCB_SEEDS = {"scb-cartpole-v1": 1, "scb-acrobot-v1": 1}
SE_SEEDS = {"se-cartpole": 0, "se-acrobot": 0}


def compare(recorded, now) -> dict:
    recorded, now = np.asarray(recorded, float), np.asarray(now, float)
    return {
        "agents": int(len(recorded)),
        "bit_identical": bool(np.array_equal(recorded, now)),
        "max_abs_difference": float(np.max(np.abs(recorded - now))),
        "recorded_mean": float(recorded.mean()), "now_mean": float(now.mean()),
        "recorded_std": float(recorded.std()),
        "now_returns": now.tolist(),
    }


def check_scb(name: str, seed: int) -> dict:
    ckpt = pretrained.load_checkpoint(name, config_cls=SCBMetaConfig)
    _, params = pretrained.load(name)
    recorded = ckpt.extra["transfer"]
    num_configs = len(next(iter(recorded.values()))["returns"])
    # the experiment's run(): transfer(..., jax.random.fold_in(key, 1)), key = key(seed)
    tests = scb_eval.transfer(ckpt.config.env_name, params,
                              jax.random.fold_in(jax.random.key(seed), 1),
                              algorithms=tuple(recorded), num_configs=num_configs)
    return {alg: compare(recorded[alg]["returns"], tests[alg]["returns"]) for alg in recorded}


def check_se(name: str, seed: int) -> dict:
    ckpt = pretrained.load_checkpoint(name, config_cls=SEExperiment)
    _, params = pretrained.load(name)
    recorded = ckpt.extra["test"]
    # the experiment's run(): train_key, test_key = split(key(seed))
    _, test_key = jax.random.split(jax.random.key(seed))
    test = st.test_se(ckpt.config, params, test_key, recorded["test_agents"])
    return {"ddqn": compare(recorded["test_returns"], test["returns"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "results/library/shipped-transfer.json"))
    parser.add_argument("--names", nargs="*", default=[*SCB_SEEDS, *SE_SEEDS])
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = {}
    for name in args.names:
        t0 = time.perf_counter()
        rows = check_scb(name, SCB_SEEDS[name]) if name in SCB_SEEDS else check_se(name, SE_SEEDS[name])
        report[name] = {"algorithms": rows, "seconds": time.perf_counter() - t0}
        for alg, row in rows.items():
            print(f"{name:>16} {alg:>5}: {'bit-identical' if row['bit_identical'] else 'differs'}"
                  f" (max |diff| {row['max_abs_difference']:.3g}; mean {row['recorded_mean']:.1f}"
                  f" recorded, {row['now_mean']:.1f} now, recorded std {row['recorded_std']:.1f})")
    io.write_json(args.out, {
        "what": __doc__.split("\n\n")[0].strip(),
        "command": ["python", "scripts/check_shipped_transfer.py", *argv],
        "results": report,
        "wall_clock_s": time.perf_counter() - start,
        "provenance": provenance.collect(),
    })
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
