"""Where a result came from: code version, package versions, device.

Every checkpoint and every ``results.json`` carries this record, so a number in
the book can be traced to the commit and the hardware that produced it. It
deliberately holds no host name, user name or path.
"""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("learnenv", "jax", "jaxlib", "flax", "optax", "evosax", "gymnax", "brax", "numpy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (``None`` where a package is missing), without importing them."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding learnenv, else ``None``.

    ``dirty`` is true when tracked files have uncommitted changes. An installed
    (non-editable) learnenv is not tracked by any repository, so it gives
    ``None`` even when its site-packages lies inside some other checkout.
    """
    here = Path(path) if path is not None else Path(__file__).resolve().parent
    if _git(["ls-files", "--error-unmatch", "__init__.py"], here) is None and path is None:
        return None
    commit = _git(["rev-parse", "HEAD"], here)
    if commit is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], here)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@functools.lru_cache(maxsize=1)
def device_info() -> dict[str, Any]:
    """The accelerator JAX uses (kind and platform of the first device, and the count)."""
    try:
        import jax

        devices = jax.devices()
        return {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
                "count": len(devices)}
    except Exception as err:  # a broken backend must not stop a save
        return {"platform": None, "device_kind": None, "count": 0, "error": str(err)}


def collect(wall_clock_s: float | None = None) -> dict[str, Any]:
    """The full provenance record (JSON-serialisable)."""
    record: dict[str, Any] = {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.machine()}",
        "device": device_info(),
    }
    if wall_clock_s is not None:
        record["wall_clock_s"] = float(wall_clock_s)
    return record
