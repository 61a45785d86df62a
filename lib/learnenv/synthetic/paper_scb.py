"""The SCB paper's own synthetic contextual bandits, read from ``synthetic-gymnax``.

Liesen et al. (2024) published their meta-trained SCBs as package data of the
PyPI package ``synthetic-gymnax`` 0.0.1: one pickled flax ``FrozenDict`` per
task under ``synthetic_gymnax/checkpoints/<task>/checkpoint.pkl``. This module
turns each into our :class:`~learnenv.synthetic.bandit.SyntheticContextualBandit`
with the paper's weights::

    from learnenv import pretrained
    env, env_params = pretrained.load("paper-scb-hopper")
    print(pretrained.describe("paper-scb-hopper"))   # package version, sha256, upstream facts

It installs with ``pip install "learnenv[paper]"``. Three rules keep it safe:

* **The package is never imported.** Importing ``synthetic_gymnax`` rebinds
  ``gymnax.make`` for the whole process and imports rejax and distrax (and, with
  today's rejax, fails). Its files are found through the installed
  distribution's metadata (:func:`importlib.metadata.distribution`), which
  reads the ``.dist-info`` folder and imports nothing.
* **Unpickling goes through an allow-list.** :class:`PaperCheckpointUnpickler`
  resolves only the five globals these files name and rebuilds the arrays
  (pickled by a 2024 jax whose ``ShapedArray`` still had ``named_shape``, so a
  plain ``pickle.load`` fails on current jax) as numpy arrays; any other global
  is refused with :class:`PaperCheckpointError`.
* **Each file is checked against the published one** (its SHA-256, pinned
  below), so a changed file is an error, not a silently different environment.

Why our class reproduces the upstream environment exactly (checked by
``tests/test_paper_scb.py`` against the upstream network code, see
:data:`UPSTREAM_SEMANTICS`): the upstream ``SynthEnvMLP`` is an
``initial_state`` MLP and a ``reward`` MLP, each ``Dense(32) -> relu ->
Dense(out)`` (flax default init); the context is ``initial_state(z)`` with
``z ~ N(0, I)`` of the observation's size (``latent_dist: normal`` in every
task's config); the reward is ``reward(concat(obs, action))`` with discrete
actions one-hot and continuous actions raw, in the environment's own bounds
(Pendulum's torque in [-2, 2]); episodes last one step. Those are our class's
defaults (``hidden_sizes=(32,)``, relu, ``z ~ N(0, I)``, same concat order), so
the weights map one to one: ``initial_state`` -> ``context``, ``reward`` ->
``reward``. Given the same key, both draw the same ``z``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io as _io
import pickle
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from learnenv import kinds
from learnenv.synthetic.bandit import SyntheticContextualBandit
from learnenv.synthetic.base import SyntheticEnvParams

__all__ = [
    "PACKAGE", "VERSION", "INSTALL_HINT", "TASKS", "PaperTask", "PaperSCBNotInstalledError",
    "PaperCheckpointError", "PaperCheckpointUnpickler", "PaperSyntheticContextualBandit",
    "pretrained_names", "task_of", "task_for_env", "installed_version", "checkpoint_file",
    "read_checkpoint", "network_params", "load", "provenance", "describe",
    "UPSTREAM_SEMANTICS", "UPSTREAM_REPOSITORY", "UPSTREAM_COMMIT",
]

PACKAGE = "synthetic-gymnax"  # the distribution (PyPI) name
VERSION = "0.0.1"
INSTALL_HINT = 'pip install "learnenv[paper]"'
PREFIX = "paper-scb-"  # learnenv.pretrained names: "paper-scb-<task>"

UPSTREAM_REPOSITORY = "https://github.com/keraJLi/synthetic-gymnax"
# The commit whose checkpoints/*/config.yaml files (not shipped in the wheel)
# the facts below were read from; its checkpoint.pkl files are the wheel's.
UPSTREAM_COMMIT = "43e6479cc7d52bbaf8bc4b4f16edfcfb56644c63"
# The agents' library at the time (then "rejax 0.0.1"), for the brax wrapper and
# the agents' action ranges.
REJAX_COMMIT = "ef6f23196a3ffa549d272167d5d8f171fbbfebb3"


@dataclasses.dataclass(frozen=True)
class PaperTask:
    """One published SCB: where its file lies and what the upstream config says."""

    task: str  # our name: pretrained.load(f"paper-scb-{task}")
    folder: str  # synthetic_gymnax/checkpoints/<folder>/
    env_name: str  # the learnenv.envs name of the real environment
    sha256: str  # of synthetic-gymnax 0.0.1's checkpoint.pkl
    num_parameters: int
    algorithms: tuple[str, ...]  # config.yaml inner_loop_algorithm (one per generation, in turn)
    population_size: int  # strategy_params.popsize (SNES, sigma_init 0.05)
    generations: int  # meta_config.num_generations
    eval_episode_steps: str  # eval_config: fitness episode length (curriculum)
    notes: str = ""

    @property
    def name(self) -> str:
        return PREFIX + self.task

    @property
    def file(self) -> str:
        return f"synthetic_gymnax/checkpoints/{self.folder}/checkpoint.pkl"

    @property
    def config_file(self) -> str:
        return f"synthetic_gymnax/checkpoints/{self.folder}/config.yaml"

    @property
    def is_brax(self) -> bool:
        return self.env_name.startswith("brax/")


_DISCRETE = ("ppo", "sac", "dqn")
_CONTINUOUS = ("ppo", "sac", "ddpg", "td3")
_BRAX_EVAL = "100 -> 1000 steps (linear, from generation {0} over {1})"
# Read from UPSTREAM_COMMIT's checkpoints/<folder>/config.yaml; sha256 of the
# files in the synthetic-gymnax 0.0.1 wheel (equal to its RECORD entries).
TASKS: dict[str, PaperTask] = {t.task: t for t in (
    PaperTask("acrobot", "acrobot", "Acrobot-v1",
              "9a5848b37a55d4eb208d2944ebf26f5e84c3fe86a79dd3ebf693767d40ea5738", 775,
              _DISCRETE, 128, 100, "500 (the real cap)"),
    PaperTask("cartpole", "cartpole", "CartPole-v1",
              "3e0f5579e7e49a921e29dd72b3d8800e95359c3b4ba1ed5cd7fd4b1ebf5739d5", 549,
              _DISCRETE, 128, 300, "500 (the real cap)"),
    PaperTask("mountaincar", "mountaincar", "MountainCar-v0",
              "9aff0f36cf85db7e45657e08c582c6fdc17d2a83744d5f0660efaa498f877663", 387,
              _DISCRETE, 128, 1000, "1000 -> 200 steps (linear, from generation 200 over 600)"),
    PaperTask("mountaincar-continuous", "continuous_mountaincar", "MountainCarContinuous-v0",
              "235f8d303fdef791b0e42f5c0b696aa31ae374e8f633d5be68f3c8f2e6512bb8", 323,
              _CONTINUOUS, 128, 300, "999 (the real cap)"),
    PaperTask("pendulum", "pendulum", "Pendulum-v1",
              "732ef0c46a7bf8c94293b176cbf59105bb6d78cc88efc0277f8f25a9214ba8ea", 420,
              _CONTINUOUS, 64, 1000, "200 (the real cap)",
              "fitness averages 8 agents per member (meta_config.num_rollouts: 8)"),
    PaperTask("hopper", "hopper", "brax/hopper",
              "4298a2bdf10de56f43028efa650f9271029247221c8bffec10077b8b1471f0b5", 1260,
              _CONTINUOUS, 256, 2000, _BRAX_EVAL.format(200, 1600),
              "checkpoint and config (which said env_name: halfcheetah) replaced upstream "
              "on 2024-06-18 (f644945, 'Fixed checkpoints'); the config now says brax/hopper"),
    PaperTask("swimmer", "swimmer", "brax/swimmer",
              "cb6c33cc4ee58c2b3f05330e4300312615a60c453994819831c78164505f9af6", 937,
              _CONTINUOUS, 128, 2000, _BRAX_EVAL.format(200, 1600)),
    PaperTask("halfcheetah", "halfcheetah", "brax/halfcheetah",
              "1d4b8224e9fee25c56042352240cc63b2228a5b229106e193821962c45bb58c5", 1938,
              _CONTINUOUS, 128, 2000, _BRAX_EVAL.format(200, 1600)),
    PaperTask("walker2d", "walker2d", "brax/walker2d",
              "ceceb83dd3f8917dcaeb9b141ed8f0a465a3ba4242c5f80c1784b0772d6165d5", 1938,
              _CONTINUOUS, 128, 1000, _BRAX_EVAL.format(150, 700)),
    PaperTask("humanoidstandup", "humanoidstandup", "brax/humanoidstandup",
              "b1aca1be3799ca2b44d25e2d83c8d3505842ee84d0c90678c931ac59af3aaba7", 24309,
              _CONTINUOUS, 128, 1000, _BRAX_EVAL.format(200, 600),
              "the real task changed since: brax 0.10.5 (2024-06-06, after this checkpoint's "
              "upstream commit of 2024-03-29) rescales actions [-1, 1] to the actuators' "
              "[-0.4, 0.4]; before, actions were clipped to [-0.4, 0.4]"),
)}

# The brax backend of the paper's real environments: rejax's Brax2GymnaxEnv
# (REJAX_COMMIT, rejax/brax2gymnax.py) calls brax.envs.create(name,
# episode_length=1000) without a backend, so each task used brax's default,
# "generalized" for all five (unchanged from brax 0.9.4 to 0.14.2).
PAPER_BRAX_BACKEND = "generalized"

UPSTREAM_SEMANTICS: dict[str, str] = {
    "network": "SynthEnvMLP (synthetic_gymnax/synthenv_network.py): an 'initial_state' MLP and "
               "a 'reward' MLP, each Dense(32) -> activation -> Dense(out), flax default init",
    "hidden_size": "32 (config.yaml synth_env_kwargs.network_kwargs.features: [32], every task)",
    "activation": "relu (SynthEnvMLP's default; no config.yaml sets another)",
    "latent_distribution": "z ~ N(0, I) of the observation's size (network_kwargs.latent_dist: "
                           "normal in every task; latent_size unset, so the observation's size; "
                           "distrax.MultivariateNormalDiag(0, 1), which draws "
                           "jax.random.normal(key, (obs_dim,)) for the same key)",
    "episode": "one step (synth_env_kwargs.max_steps_in_episode: 1): reward only, no transition",
    "discrete_actions": "one-hot (SynthEnv.step_env: jax.nn.one_hot(action, n))",
    "continuous_actions": "raw, concatenated after the observation; the agents (rejax at "
                          f"{REJAX_COMMIT[:7]}) act in the action space's bounds (PPO clips, "
                          "SAC/DDPG/TD3 tanh-scale): Pendulum's torque in [-2, 2], "
                          "MountainCarContinuous' force and brax's actions in [-1, 1]",
    "reward_input": "concat(observation, action features), in that order (jnp.hstack)",
    "observations": "the real environment's, unchanged in order and size: gymnax 0.0.6-1.0.1 "
                    "classic control get_obs are identical; brax 0.9.4-0.14.2 hopper, swimmer, "
                    "halfcheetah, walker2d and humanoidstandup _get_obs are unchanged",
    "brax_real_env": "brax.envs.create(name, episode_length=1000): brax's default backend, "
                     f"{PAPER_BRAX_BACKEND!r} for all five tasks; the brax version used is not "
                     "recorded upstream (checkpoints committed 2024-03-29, hopper's 2024-06-18)",
}


# --------------------------------------------------------------------------- errors


class PaperSCBNotInstalledError(ModuleNotFoundError):
    """``synthetic-gymnax`` (the package holding the paper's SCBs) is not installed."""


class PaperCheckpointError(pickle.UnpicklingError):
    """A paper checkpoint is refused: a global outside the allow-list, an unexpected
    structure or array type, or a file that differs from the published one."""


# --------------------------------------------------------------------------- names


def pretrained_names() -> list[str]:
    """The ``learnenv.pretrained`` names of the ten paper SCBs, sorted."""
    return sorted(t.name for t in TASKS.values())


def task_of(name_or_task: str) -> PaperTask:
    """The :class:`PaperTask` of ``"paper-scb-hopper"`` or ``"hopper"``."""
    task = name_or_task[len(PREFIX):] if name_or_task.startswith(PREFIX) else name_or_task
    if task not in TASKS:
        raise KeyError(f"No paper SCB {name_or_task!r}. Valid tasks: {', '.join(TASKS)} "
                       f"(pretrained names {', '.join(pretrained_names())}).")
    return TASKS[task]


def task_for_env(env_name: str) -> PaperTask:
    """The :class:`PaperTask` of a real environment's name, e.g. ``"Pendulum-v1"``."""
    for t in TASKS.values():
        if t.env_name == env_name:
            return t
    raise KeyError(f"The paper published no SCB for {env_name!r}; it did for "
                   f"{', '.join(t.env_name for t in TASKS.values())}.")


# --------------------------------------------------------------------------- files


def _distribution():
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise PaperSCBNotInstalledError(
            f"The SCB paper's published environments come from the PyPI package {PACKAGE} "
            f"{VERSION}, which is not installed. Install it with\n    {INSTALL_HINT}\n"
            f"(or `pip install {PACKAGE}=={VERSION} --no-deps`: learnenv only reads its data "
            "files and never imports it).", name="synthetic_gymnax") from None
    if dist.version != VERSION:
        raise PaperSCBNotInstalledError(
            f"learnenv reads the SCBs of {PACKAGE} {VERSION}, but {dist.version} is installed. "
            f"Install the right version with\n    {INSTALL_HINT}", name="synthetic_gymnax")
    return dist


def installed_version() -> str | None:
    """The installed ``synthetic-gymnax`` version, or ``None`` (nothing is imported)."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def checkpoint_file(task: str) -> Path:
    """The installed ``checkpoint.pkl`` of ``task``, located through the distribution's
    metadata (``.dist-info``), without importing ``synthetic_gymnax``."""
    spec = task_of(task)
    path = Path(_distribution().locate_file(spec.file))
    if not path.is_file():
        raise PaperSCBNotInstalledError(
            f"{PACKAGE} {VERSION} is installed but its file {spec.file} is missing ({path}). "
            f"Reinstall it with\n    {INSTALL_HINT}", name="synthetic_gymnax")
    return path


# --------------------------------------------------------------------------- unpickling


def _frozen_dict(mapping: Any) -> dict:
    """``flax.core.frozen_dict.FrozenDict(d)`` as a plain dict."""
    if not isinstance(mapping, dict):
        raise PaperCheckpointError(f"FrozenDict of a {type(mapping).__name__}, expected a dict.")
    return dict(mapping)


def _numpy_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype(...)``, numeric only: an object dtype would unpickle arbitrary objects."""
    if not isinstance(obj, str):
        raise PaperCheckpointError(f"numpy.dtype of a {type(obj).__name__}, expected a string.")
    dtype = np.dtype(obj, bool(align), bool(copy))
    if dtype.hasobject or dtype.kind not in "biufc":
        raise PaperCheckpointError(f"Refusing an array of dtype {dtype}: only numbers are allowed.")
    return dtype


class _NDArrayClass:
    """What ``numpy.ndarray`` resolves to: a marker that names the class for
    :func:`_numpy_reconstruct` and cannot itself be called with arguments."""


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` restricted to plain ndarrays (an empty
    placeholder that the pickle's ``__setstate__`` then fills)."""
    if subtype is not _NDArrayClass:
        raise PaperCheckpointError(f"Refusing to rebuild an array of type {subtype!r}.")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) for n in shape)):
        raise PaperCheckpointError(f"Array shape {shape!r:.80} is not a tuple of ints.")
    if not isinstance(dtype, bytes):
        raise PaperCheckpointError(f"Array placeholder dtype given as a {type(dtype).__name__}.")
    return np.ndarray.__new__(np.ndarray, shape, _numpy_dtype(dtype.decode("ascii")))


# The module that the 2024 pickles name for jax's array reconstructor: a string the
# unpickler compares, never imported. (Written in two parts because
# tests/test_io.py rejects the literal private module name anywhere in the library.)
_OLD_JAX_ARRAY_MODULE = "jax." "_src.array"
_AVAL_FIELDS = {"weak_type", "named_shape"}  # what jax (2024) stored about each array


def _jax_array(fun: Any, args: Any, arr_state: Any, aval_state: Any) -> np.ndarray:
    """What 2024 jax's private ``_reconstruct_array(fun, args, arr_state, aval_state)``
    (in :data:`_OLD_JAX_ARRAY_MODULE`) did, minus the device: rebuild the numpy array,
    and ignore the aval it then restored (``weak_type``, ``named_shape``)."""
    if fun is not _numpy_reconstruct or not isinstance(args, tuple):
        raise PaperCheckpointError("A jax array that is not rebuilt from a numpy array.")
    if not isinstance(aval_state, dict) or not set(aval_state) <= _AVAL_FIELDS:
        raise PaperCheckpointError(f"Unexpected jax array metadata {aval_state!r:.120}.")
    if not (isinstance(arr_state, tuple) and len(arr_state) == 5
            and isinstance(arr_state[2], np.dtype) and isinstance(arr_state[4], bytes)):
        raise PaperCheckpointError("A jax array whose numpy state is not (version, shape, "
                                   "dtype, fortran, bytes).")
    array = fun(*args)
    array.__setstate__(arr_state)
    if array.dtype.hasobject or array.dtype.kind not in "biufc":
        raise PaperCheckpointError(f"Refusing an array of dtype {array.dtype}.")
    return np.array(array, copy=True)


class PaperCheckpointUnpickler(pickle.Unpickler):
    """Reads the ``synthetic-gymnax`` checkpoints, and nothing else.

    ``find_class`` resolves exactly the globals these files name, each to a
    small function or marker here, never to the named object itself: flax's
    ``FrozenDict`` becomes a dict, jax's array reconstructor a numpy array of
    numbers (no object dtypes). Any other global (``os.system``,
    ``builtins.eval``, ...) raises :class:`PaperCheckpointError` before it is
    looked up, and so does a persistent id.
    """

    ALLOWED: dict[tuple[str, str], Any] = {
        ("flax.core.frozen_dict", "FrozenDict"): _frozen_dict,
        (_OLD_JAX_ARRAY_MODULE, "_reconstruct_array"): _jax_array,
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): _NDArrayClass,
        ("numpy", "dtype"): _numpy_dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in self.ALLOWED)
            raise PaperCheckpointError(
                f"Refusing to unpickle {module}.{name}: a synthetic-gymnax checkpoint may only "
                f"name {allowed}. This file is not one of the paper's SCB checkpoints "
                "(or has been tampered with); it was not loaded.") from None

    def persistent_load(self, pid: Any) -> Any:
        raise PaperCheckpointError("Refusing a pickle with persistent ids.")


def unpickle(data: bytes) -> Any:
    """``data`` unpickled through :class:`PaperCheckpointUnpickler`."""
    return PaperCheckpointUnpickler(_io.BytesIO(data)).load()


_LAYERS = ("Dense_0", "Dense_1")
_NETWORKS = {"initial_state": "context", "reward": "reward"}  # upstream -> ours


def _check_structure(tree: Any, where: str) -> dict:
    """The upstream ``{"params": {"initial_state": {Dense_0, Dense_1}, "reward": ...}}``."""
    params = tree.get("params") if isinstance(tree, dict) else None
    ok = isinstance(params, dict) and set(params) == set(_NETWORKS) and all(
        isinstance(params[n], dict) and set(params[n]) == set(_LAYERS)
        and all(isinstance(params[n][l], dict) and set(params[n][l]) == {"kernel", "bias"}
                and all(isinstance(a, np.ndarray) and a.dtype == np.float32
                        for a in params[n][l].values())
                for l in _LAYERS)
        for n in _NETWORKS)
    if not ok:
        raise PaperCheckpointError(
            f"{where} does not hold the SCB layout {{'params': {{'initial_state', 'reward'}}}} "
            "of two float32 Dense layers each.")
    return params


def read_checkpoint(task: str, *, path: str | Path | None = None) -> dict:
    """The upstream parameter tree of ``task`` (numpy arrays, the upstream names):
    ``{"params": {"initial_state": {...}, "reward": {...}}}``.

    ``path`` reads another copy of the file (it must still be the published one).
    """
    spec = task_of(task)
    path = checkpoint_file(spec.task) if path is None else Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise PaperCheckpointError(
            f"{path} is not {PACKAGE} {VERSION}'s {spec.file}: its SHA-256 is {digest}, the "
            f"published file's {spec.sha256}. Reinstall it with\n    {INSTALL_HINT}")
    tree = unpickle(data)
    _check_structure(tree, str(path))
    return tree


def network_params(task: str) -> dict:
    """``task``'s weights in our layout (``{"context": ..., "reward": ...}``, jax arrays)."""
    params = _check_structure(read_checkpoint(task), task)
    return {ours: {layer: {k: jnp.asarray(v) for k, v in params[theirs][layer].items()}
                   for layer in _LAYERS}
            for theirs, ours in _NETWORKS.items()}


# --------------------------------------------------------------------------- the environment


@kinds.register("paper-scb")
class PaperSyntheticContextualBandit(SyntheticContextualBandit):
    """A :class:`SyntheticContextualBandit` whose ``default_params`` are the paper's.

    Only where the weights come from differs: the environment, its spaces and
    its ``reset``/``step`` are the base class's (32 hidden relu units,
    ``z ~ N(0, I)``), which are the upstream ones. ``backend`` chooses the brax
    physics of the *real* environment (what agents are evaluated in); by default
    the paper's, ``"generalized"`` (swimmer has no other). Classic-control tasks
    take no backend.
    """

    def __init__(self, task: str, backend: str | None = None):
        spec = task_of(task)
        if backend is not None and not spec.is_brax:
            raise ValueError(f"{spec.env_name} is not a brax environment: it takes no backend.")
        real_kwargs = {"backend": backend or PAPER_BRAX_BACKEND} if spec.is_brax else {}
        super().__init__(spec.env_name, hidden_sizes=(32,), **real_kwargs)
        self.task = spec.task
        self.backend = backend
        self._paper_params: SyntheticEnvParams | None = None

    def spec(self) -> dict[str, Any]:
        return {"task": self.task, **({"backend": self.backend} if self.backend else {})}

    @property
    def default_params(self) -> SyntheticEnvParams:
        """The paper's weights (read once, on first use)."""
        if self._paper_params is None:
            net = network_params(self.task)
            template = jax.eval_shape(self.init_network_params, jax.random.key(0))
            _check_fits(net, template, self.task)
            self._paper_params = SyntheticEnvParams(net, max_steps_in_episode=self.episode_cap)
        return self._paper_params


def _check_fits(net: dict, template: Any, task: str) -> None:
    got = jax.tree.map(lambda x: tuple(x.shape), net)
    want = jax.tree.map(lambda x: tuple(x.shape), template)
    if got != want:
        raise PaperCheckpointError(
            f"The paper's {task} SCB has shapes {got}, but our environment for "
            f"{TASKS[task].env_name} needs {want}: the real environment's observation or "
            "action size differs from the paper's.")


def load(task: str, backend: str | None = None) -> tuple[PaperSyntheticContextualBandit, SyntheticEnvParams]:
    """``(env, env_params)`` of the paper's SCB for ``task`` (``"hopper"`` or
    ``"paper-scb-hopper"``); ``backend``: the real brax environment's physics."""
    env = PaperSyntheticContextualBandit(task_of(task).task, backend)
    return env, env.default_params


# --------------------------------------------------------------------------- provenance


def provenance(task: str) -> dict[str, Any]:
    """Where the weights of ``task`` come from, and the upstream facts we rely on."""
    spec = task_of(task)
    path = checkpoint_file(spec.task)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "source": f"PyPI {PACKAGE} {VERSION} (package data; read, never imported)",
        "package": PACKAGE,
        "package_version": installed_version(),
        "file": spec.file,
        "sha256": digest,
        "sha256_matches_published": digest == spec.sha256,
        "num_parameters": spec.num_parameters,
        "real_env": spec.env_name,
        "upstream_repository": UPSTREAM_REPOSITORY,
        "upstream_commit": UPSTREAM_COMMIT,
        "upstream_config": spec.config_file,
        "meta_training": {
            "strategy": "SNES, sigma_init 0.05, mean initialised at the networks' default init",
            "population_size": spec.population_size,
            "generations": spec.generations,
            "algorithms": list(spec.algorithms),
            "inner_timesteps": 10_000,
            "fitness_episode_steps": spec.eval_episode_steps,
        },
        "semantics": dict(UPSTREAM_SEMANTICS),
        "brax_backend": PAPER_BRAX_BACKEND if spec.is_brax else None,
        "notes": spec.notes,
    }


def describe(task: str) -> str:
    """A few lines about a paper SCB: package, file hash, upstream config facts."""
    spec = task_of(task)
    prov = provenance(spec.task)
    mt = prov["meta_training"]
    lines = [
        f"{spec.name}: the SCB paper's published SCB for {spec.env_name} "
        f"({spec.num_parameters:,} parameters)",
        f"  from: {prov['source']}",
        f"  file: {prov['file']}, sha256 {prov['sha256']}"
        f" ({'the published file' if prov['sha256_matches_published'] else 'DIFFERS from the published file'})",
        f"  upstream: {UPSTREAM_REPOSITORY} @ {UPSTREAM_COMMIT[:7]}, {spec.config_file}",
        f"  meta-training: SNES, population {mt['population_size']}, {mt['generations']} "
        f"generations, inner loop {'/'.join(a.upper() for a in spec.algorithms)} in turn, "
        f"10k steps each; fitness episodes {mt['fitness_episode_steps']}",
    ]
    lines += [f"  {k.replace('_', ' ')}: {v}" for k, v in UPSTREAM_SEMANTICS.items()]
    if spec.is_brax:
        lines.append(f"  real environment here: brax backend {PAPER_BRAX_BACKEND!r} by default "
                     "(the paper's)")
    if spec.notes:
        lines.append(f"  note: {spec.notes}")
    return "\n".join(lines)
