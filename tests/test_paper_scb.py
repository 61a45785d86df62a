"""The SCB paper's published SCBs (synthetic-gymnax 0.0.1), read without importing it.

Tests that need the package skip with a message where it is not installed
(``pip install "learnenv[paper]"``); the comparison with the upstream network
code runs in a subprocess, because importing ``synthetic_gymnax`` rebinds
``gymnax.make`` for the whole process.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from learnenv import io, kinds, pretrained
from learnenv.synthetic import SyntheticContextualBandit
from learnenv.synthetic import paper_scb

# Parameter counts of the published checkpoints (Liesen et al. 2024; issue #14).
PAPER_COUNTS = {
    "acrobot": 775, "cartpole": 549, "mountaincar": 387, "mountaincar-continuous": 323,
    "pendulum": 420, "hopper": 1260, "swimmer": 937, "halfcheetah": 1938, "walker2d": 1938,
    "humanoidstandup": 24309,
}
ROOT = Path(__file__).resolve().parents[1]

needs_package = pytest.mark.skipif(
    paper_scb.installed_version() != paper_scb.VERSION,
    reason=f"synthetic-gymnax {paper_scb.VERSION} is not installed "
           f"({paper_scb.INSTALL_HINT} installs it)")


def _run_python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def _last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- names


def test_ten_paper_scbs_are_listed_with_the_shipped_ones():
    paper = pretrained.paper_names()
    assert paper == sorted(f"paper-scb-{t}" for t in PAPER_COUNTS)
    assert set(paper) <= set(pretrained.names())
    assert set(pretrained.shipped_names()) <= set(pretrained.names())
    assert not set(paper) & set(pretrained.shipped_names())
    assert {t.task: t.num_parameters for t in paper_scb.TASKS.values()} == PAPER_COUNTS
    with pytest.raises(KeyError, match="Valid names"):
        pretrained.load("paper-scb-ant")  # the paper published no ant SCB
    assert paper_scb.task_for_env("Pendulum-v1").task == "pendulum"


def test_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(paper_scb, "PACKAGE", "synthetic-gymnax-not-installed")
    with pytest.raises(paper_scb.PaperSCBNotInstalledError,
                       match=r'pip install "learnenv\[paper\]"'):
        pretrained.load("paper-scb-cartpole")
    with pytest.raises(ModuleNotFoundError, match="never imports it"):
        pretrained.describe("paper-scb-hopper")


# --------------------------------------------------------------------------- the files


@needs_package
@pytest.mark.parametrize("task", sorted(PAPER_COUNTS))
def test_checkpoint_has_the_papers_layout_and_parameter_count(task):
    tree = paper_scb.read_checkpoint(task)
    assert set(tree) == {"params"} and set(tree["params"]) == {"initial_state", "reward"}
    leaves = jax.tree.leaves(tree)
    assert all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in leaves)
    assert sum(x.size for x in leaves) == PAPER_COUNTS[task]
    hidden = {tree["params"][n][l]["bias"].shape for n in ("initial_state", "reward")
              for l in ("Dense_0",)}
    assert hidden == {(32,)}


@needs_package
def test_unpickler_refuses_any_other_global(tmp_path):
    flag = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    with pytest.raises(paper_scb.PaperCheckpointError, match=r"Refusing to unpickle .*system"):
        paper_scb.unpickle(pickle.dumps(Exploit()))
    assert not flag.exists()
    with pytest.raises(paper_scb.PaperCheckpointError, match="Refusing to unpickle builtins.eval"):
        paper_scb.unpickle(pickle.dumps(eval))
    with pytest.raises(paper_scb.PaperCheckpointError, match="dtype object"):
        paper_scb.unpickle(pickle.dumps(np.array([1, None], dtype=object)))
    with pytest.raises(paper_scb.PaperCheckpointError, match="Refusing to unpickle"):
        paper_scb.unpickle(pickle.dumps(SyntheticContextualBandit))  # any other class


@needs_package
def test_a_changed_file_is_refused(tmp_path):
    data = bytearray(paper_scb.checkpoint_file("cartpole").read_bytes())
    data[-40] ^= 1  # one bit of one weight
    copy = tmp_path / "checkpoint.pkl"
    copy.write_bytes(bytes(data))
    with pytest.raises(paper_scb.PaperCheckpointError, match="SHA-256"):
        paper_scb.read_checkpoint("cartpole", path=copy)


# --------------------------------------------------------------------------- the environments


@needs_package
def test_all_ten_load_in_one_call_without_importing_synthetic_gymnax():
    out = _last_json(_run_python("""
        import json, sys
        import gymnax
        make = gymnax.make
        import jax
        from learnenv import pretrained
        from learnenv.synthetic import SyntheticContextualBandit
        rows = {}
        for name in pretrained.paper_names():
            env, params = pretrained.load(name)
            obs, state = env.reset(jax.random.key(0), params)
            action = env.action_space(params).sample(jax.random.key(1))
            done = env.step(jax.random.key(2), state, action, params)[3]
            rows[name] = {"scb": isinstance(env, SyntheticContextualBandit),
                          "parameters": env.num_parameters(params), "kind": env.kind,
                          "obs": list(obs.shape), "obs_dim": env.obs_dim, "done": bool(done),
                          "real_env": env.real_env_name, "cap": int(params.max_steps_in_episode)}
        upstream = sorted(m for m in sys.modules
                          if m.split(".")[0] in ("synthetic_gymnax", "rejax", "distrax"))
        print(json.dumps({"rows": rows, "upstream_modules": upstream,
                          "gymnax_make_unchanged": gymnax.make is make
                                                   and make.__module__.startswith("gymnax")}))
    """))
    assert out["upstream_modules"] == [] and out["gymnax_make_unchanged"]
    rows = out["rows"]
    assert sorted(rows) == pretrained.paper_names()
    for name, row in rows.items():
        task = name[len("paper-scb-"):]
        assert row["scb"] and row["kind"] == "paper-scb" and row["done"] and row["cap"] == 1
        assert row["parameters"] == PAPER_COUNTS[task], name
        assert row["obs"] == [row["obs_dim"]] and row["real_env"] == paper_scb.TASKS[task].env_name


@needs_package
def test_loaded_weights_are_the_files_and_provenance_names_them():
    env, params = pretrained.load("paper-scb-cartpole")
    tree = paper_scb.read_checkpoint("cartpole")["params"]
    for theirs, ours in (("initial_state", "context"), ("reward", "reward")):
        for layer in ("Dense_0", "Dense_1"):
            for k in ("kernel", "bias"):
                np.testing.assert_array_equal(params.network_params[ours][layer][k],
                                              tree[theirs][layer][k])
    text = pretrained.describe("paper-scb-hopper")
    sha = paper_scb.TASKS["hopper"].sha256
    for fact in ("synthetic-gymnax 0.0.1", sha, "N(0, I)", "relu", "32", "one-hot",
                 "generalized", "[-2, 2]", paper_scb.UPSTREAM_COMMIT[:7]):
        assert fact in text, fact
    ckpt = pretrained.load_checkpoint("paper-scb-pendulum")
    assert ckpt.kind == "paper-scb" and ckpt.extra["num_parameters"] == 420
    assert ckpt.provenance["package_version"] == "0.0.1"
    assert ckpt.provenance["sha256_matches_published"]
    assert ckpt.provenance["semantics"]["latent_distribution"].startswith("z ~ N(0, I)")
    assert pretrained.path("paper-scb-pendulum").name == "checkpoint.pkl"


@needs_package
def test_paper_kind_builds_and_round_trips_through_io(tmp_path):
    env = kinds.build("paper-scb", {"task": "pendulum"})
    assert type(env) is paper_scb.PaperSyntheticContextualBandit
    assert env.spec() == {"task": "pendulum"} and env.real_env_name == "Pendulum-v1"
    params = jax.tree.map(lambda x: x * 2, env.default_params)
    io.save_environment(tmp_path / "scb", env, params)
    loaded_env, loaded = io.load_environment(tmp_path / "scb")
    assert loaded_env.kind == "paper-scb"
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not a brax environment"):
        paper_scb.PaperSyntheticContextualBandit("pendulum", backend="positional")


# --------------------------------------------------------------------------- against upstream

_UPSTREAM = """
import json, sys, types
import numpy as np
data = np.load(sys.argv[1], allow_pickle=False)
spec = json.loads(str(data["spec"]))
try:
    import jax
    import distrax  # noqa: F401  (the upstream network's latent distribution)
    # synthetic-gymnax 0.0.1 was written for 2024's libraries: jax.tree_map has
    # since been removed, and rejax moved its brax wrapper. The networks and the
    # environment logic below are the upstream code; brax physics is not needed
    # to compare them, so the wrapper is a stand-in that only gives the spaces.
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree_util.tree_map
    from gymnax.environments import spaces
    class Brax2GymnaxEnv:
        def __init__(self, env_id, **kwargs):
            self.obs_dim, self.act_dim = spec["brax_sizes"][env_id]
            self.default_params = None
        def observation_space(self, params):
            return spaces.Box(-np.inf, np.inf, (self.obs_dim,))
        def action_space(self, params):
            return spaces.Box(-1.0, 1.0, (self.act_dim,))
    rejax = types.ModuleType("rejax"); wrapper = types.ModuleType("rejax.brax2gymnax")
    wrapper.Brax2GymnaxEnv = Brax2GymnaxEnv; rejax.brax2gymnax = wrapper
    sys.modules.setdefault("rejax", rejax); sys.modules["rejax.brax2gymnax"] = wrapper
    import synthetic_gymnax
    from synthetic_gymnax.synthetic_environment import SynthEnv, SynthEnvParams, SynthEnvState
except Exception as err:
    print(json.dumps({"skip": f"cannot import synthetic_gymnax here: {type(err).__name__}: {err}"}))
    sys.exit(0)

out = {}
for task, upstream_id in spec["tasks"].items():
    env = SynthEnv(upstream_id)  # the package's own defaults, as its Synthetic-* envs use
    raw = {}
    for key in data.files:
        if key.startswith(task + "/"):
            node = raw
            *path, leaf = key.split("/")[1:]
            for p in path:
                node = node.setdefault(p, {})
            node[leaf] = jax.numpy.asarray(data[key])
    params = SynthEnvParams(network_params=raw, max_steps_in_episode=1)  # {"params": ...}
    keys = jax.numpy.asarray(data[task + ":keys"])
    contexts = jax.vmap(lambda k: env.reset_env(k, params)[0])(keys)
    def reward(obs, action):
        state = SynthEnvState(obs=obs, done=False, time=0)
        return env.step_env(keys[0], state, action, params)[2]
    rewards = jax.vmap(reward)(jax.numpy.asarray(data[task + ":obs"]),
                               jax.numpy.asarray(data[task + ":actions"]))
    out[task] = {"contexts": np.asarray(contexts).tolist(), "rewards": np.asarray(rewards).tolist()}
print(json.dumps({"results": out}))
"""


@needs_package
def test_our_environment_computes_what_the_upstream_network_computes(tmp_path):
    """Contexts for the same keys and rewards for the same (obs, action), ours against
    synthetic-gymnax's SynthEnv (the package's defaults: latent N(0, I), relu, 32
    units, one-hot discrete actions), run in a subprocess that imports it."""
    n = 64
    arrays, tasks, brax_sizes, ours = {}, {}, {}, {}
    for i, (task, spec) in enumerate(paper_scb.TASKS.items()):
        env, params = paper_scb.load(task)
        tasks[task] = spec.env_name[len("brax/"):] if spec.is_brax else spec.env_name
        if spec.is_brax:
            brax_sizes[tasks[task]] = [env.obs_dim, env.action_size]
        for key, value in jax.tree_util.tree_flatten_with_path(paper_scb.read_checkpoint(task))[0]:
            arrays[task + "/" + "/".join(k.key for k in key)] = value
        k_key, k_obs, k_act = jax.random.split(jax.random.key(i), 3)
        keys = jax.random.key_data(jax.random.split(k_key, n))  # raw uint32 keys, as upstream
        obs = 2.0 * jax.random.normal(k_obs, (n, env.obs_dim))
        space = env.action_space(params)
        if env.discrete:
            actions = jax.random.randint(k_act, (n,), 0, env.action_size)
        else:  # the whole range the agents use: Pendulum's [-2, 2], else [-1, 1]
            actions = jax.random.uniform(k_act, (n, env.action_size), minval=space.low,
                                         maxval=space.high)
        contexts = jax.vmap(lambda k: env.reset_env(k, params)[0])(keys)
        rewards = jax.vmap(lambda o, a: env.reward(params.network_params, o, a))(obs, actions)
        arrays.update({f"{task}:keys": np.asarray(keys), f"{task}:obs": np.asarray(obs),
                       f"{task}:actions": np.asarray(actions)})
        ours[task] = (np.asarray(contexts), np.asarray(rewards))
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, spec=json.dumps({"tasks": tasks, "brax_sizes": brax_sizes}), **arrays)
    proc = subprocess.run([sys.executable, "-c", _UPSTREAM, str(inputs)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    out = _last_json(proc)
    if "skip" in out:
        pytest.skip(out["skip"])
    assert sorted(out["results"]) == sorted(paper_scb.TASKS)
    for task, (contexts, rewards) in ours.items():
        theirs = out["results"][task]
        np.testing.assert_allclose(contexts, theirs["contexts"], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{task}: contexts")
        np.testing.assert_allclose(rewards, theirs["rewards"], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{task}: rewards")
        assert np.std(rewards) > 0 and np.std(contexts) > 0  # not a trivial agreement


# --------------------------------------------------------------------------- the experiments


def test_transfer_experiments_cover_the_papers_tasks_and_algorithms():
    from learnenv import experiments
    from learnenv.experiments import paper_scb as exp

    assert set(exp.ALL_TASKS) == set(paper_scb.TASKS)
    classic = experiments.get("paper-scb-transfer").config("quick")
    assert classic.tasks == exp.CLASSIC_TASKS and classic.num_agents >= 20
    assert classic.inner_timesteps == 10_000 and classic.inner_structure == "paper"
    brax = experiments.get("paper-scb-transfer-brax").config("quick")
    assert {"hopper", "swimmer", "halfcheetah"} <= set(brax.tasks) and brax.num_agents >= 5
    assert set(brax.algorithms) >= {"ppo", "sac", "ddpg"} and brax.brax_backend == "generalized"
    assert exp.task_algorithms("cartpole") == ("ppo", "sac", "dqn")
    assert exp.task_algorithms("pendulum") == ("ppo", "sac", "ddpg", "td3")
    assert exp.task_algorithms("hopper", ("ppo", "dqn", "ddpg")) == ("ppo", "ddpg")
    # evaluation as the paper's rejax agents acted: PPO/SAC sample, DQN epsilon 0.05,
    # DDPG/TD3 deterministic
    from learnenv.synthetic.meta import inner_config

    assert [exp.greedy_evaluation(classic, a) for a in exp.ALGORITHMS] == [
        False, False, False, True, True]
    assert inner_config("dqn", True).eps_end == 0.05
    assert all(exp.greedy_evaluation(classic.replace(eval_policy="greedy"), a)
               for a in exp.ALGORITHMS)
    with pytest.raises(ValueError, match="tasks"):
        exp.PaperSCBTransfer(tasks=("ant",))
    x = np.array([5.0, -100.0, 1.0, 2.0, 3.0, 4.0, 1e6, 0.0])
    assert exp.iqm(x) == pytest.approx(np.mean([1.0, 2.0, 3.0, 4.0]))
    assert exp.criterion(95.0, 100.0, 50.0) == {"threshold": 95.0, "reached": True}
    # Pendulum-like: paper -200, random -1200, so the bar is -300
    assert exp.criterion(-290.0, -200.0, -1200.0) == {"threshold": -300.0, "reached": True}
    assert exp.criterion(-310.0, -200.0, -1200.0)["reached"] is False


@needs_package
@pytest.mark.slow
def test_a_small_transfer_row_runs_and_resumes(tmp_path):
    from learnenv.experiments import run_experiment

    overrides = dict(tasks=("cartpole",), algorithms=("ppo",), num_agents=2, eval_episodes=2,
                     random_episodes=2, inner_timesteps=2_000)
    first = run_experiment("paper-scb-transfer", tmp_path, overrides=overrides)["results"]
    cell = first["cells"]["cartpole"]["algorithms"]["ppo"]
    assert len(cell["returns"]) == 2 and len(cell["hyperparameters"]["learning_rate"]) == 2
    assert cell["paper"] == {"readme_synthetic": 500.0} and "threshold" in cell["criterion_readme"]
    assert first["paper_scb_files"]["cartpole"]["sha256"] == paper_scb.TASKS["cartpole"].sha256
    assert (tmp_path / "cells" / "cartpole-ppo.json").is_file()
    assert (tmp_path / "transfer.png").is_file()
    again = run_experiment("paper-scb-transfer", tmp_path, overrides=overrides)["results"]
    assert again["cells"]["cartpole"]["algorithms"]["ppo"] == cell  # reused, not retrained
