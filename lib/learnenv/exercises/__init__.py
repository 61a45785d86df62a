"""The book's exercises: what each asks, how to grade it, and checks for the code.

Every ``{exercise}`` of a chapter is registered here under its label, with what
an instructor needs (objective, time, difficulty, CPU or GPU, how to grade it).
An exercise that asks for code names the objects the student defines
(``names``), the stub a student notebook starts from, a ``check`` that runs the
student's objects against a reference on random inputs, and ``mutants``: edits
of the book's solution that the check must reject (CI tries each one)::

    from learnenv import exercises
    exercises.check("ex-primer-corridor", Corridor)   # prints what passed, or
                                                      # raises CheckFailed saying what is wrong

A check that meets a stub (``NotImplementedError``) says the exercise is not
done yet and returns, so a student notebook runs top to bottom. One module per
chapter registers its exercises; :func:`exercises` imports them all.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

import numpy as np

__all__ = ["Exercise", "CheckFailed", "register", "get", "exercises", "verdict", "check",
           "assert_close", "rounded"]


class CheckFailed(AssertionError):
    """A check found a difference from the reference; the message says which."""


@dataclasses.dataclass(frozen=True)
class Exercise:
    label: str  # the {exercise} label in the chapter, e.g. "ex-primer-corridor"
    chapter: str  # chapters/<chapter>.md
    objective: str  # what doing it teaches, one sentence
    minutes: int  # expected time for a student
    difficulty: str  # "easy", "medium" or "hard"
    grading: str  # what a correct answer contains (code: what the check does not test)
    device: str = "CPU"  # what a student needs to run it: "CPU" or "GPU"
    names: tuple[str, ...] = ()  # objects a coding exercise defines, checked in this order
    stub: str = ""  # the student notebook's answer cell: defines `names`, raising NotImplementedError
    check: Callable[..., str] | None = None  # check(*objects) -> summary, or raises CheckFailed
    mutants: tuple[tuple[str, str], ...] = ()  # (old, new) edits of the solution it must reject

    @property
    def coding(self) -> bool:
        return self.check is not None


_registry: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    if exercise.difficulty not in ("easy", "medium", "hard") or exercise.device not in ("CPU", "GPU"):
        raise ValueError(f"{exercise.label}: difficulty {exercise.difficulty!r} or device "
                         f"{exercise.device!r} is not one of easy/medium/hard, CPU/GPU.")
    if exercise.coding and not (exercise.names and exercise.stub and len(exercise.mutants) >= 2):
        raise ValueError(f"{exercise.label}: a coding exercise needs names, a stub and at least "
                         "two mutants.")
    _registry[exercise.label] = exercise
    return exercise


def exercises(chapter: str | None = None) -> dict[str, Exercise]:
    """Every registered exercise (of ``chapter``), by label."""
    for info in pkgutil.iter_modules(__path__, prefix=__name__ + "."):
        importlib.import_module(info.name)
    return {k: e for k, e in sorted(_registry.items()) if chapter in (None, e.chapter)}


def get(label: str) -> Exercise:
    known = exercises()
    if label not in known:
        raise KeyError(f"Unknown exercise {label!r}; known: {', '.join(known)}.")
    return known[label]


def verdict(label: str, *objects: Any) -> tuple[str, str]:
    """``("pass", what was checked)`` or ``("not done", why)`` for the student's
    ``objects``; any difference from the reference raises :class:`CheckFailed`."""
    exercise = get(label)
    if not exercise.coding:
        raise ValueError(f"{label} is open-ended: it has a grading guide, not a check.")
    if len(objects) != len(exercise.names):
        raise TypeError(f"check({label!r}, ...) takes {', '.join(exercise.names)}; "
                        f"got {len(objects)} object(s).")
    try:
        return "pass", exercise.check(*objects)
    except NotImplementedError as err:
        return "not done", str(err)
    except CheckFailed:
        raise
    except Exception as err:  # a crash in the student's code is a failed check, said plainly
        raise CheckFailed(f"{label}: calling your code raised {type(err).__name__}: {err}") from err


def check(label: str, *objects: Any) -> None:
    """Run the check of exercise ``label`` on the student's ``objects`` and print the
    verdict: passed, or not done yet (a stub); a difference raises :class:`CheckFailed`."""
    status, message = verdict(label, *objects)
    if status == "pass":
        print(f"{label}: passed ({message}).")
    else:
        names = ", ".join(get(label).names)
        print(f"{label}: not done yet ({message}); write {names} and run this again.")


def assert_close(what: str, got: Any, want: Any, inputs: str = "", atol: float = 1e-5,
                 rtol: float = 1e-4) -> None:
    """Raise :class:`CheckFailed` saying how ``got`` differs from ``want``: shape,
    sign, or the first entry that differs, with the inputs that produced it."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    where = f" for {inputs}" if inputs else ""
    if got.shape != want.shape:
        raise CheckFailed(f"{what} has shape {got.shape}, expected {want.shape}{where}.")
    if np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
        return
    if np.allclose(got, -want, atol=atol, rtol=rtol) and np.abs(want).max() > atol:
        raise CheckFailed(f"{what} has the wrong sign{where}: got {rounded(got.ravel()[:4])}, "
                          f"expected {rounded(want.ravel()[:4])}.")
    bad = np.argwhere(~np.isclose(got, want, atol=atol, rtol=rtol, equal_nan=True))[0]
    index = tuple(int(i) for i in bad)
    raise CheckFailed(f"{what}{list(index) if index else ''} is {got[index]:.6g}, expected "
                      f"{want[index]:.6g}{where}.")


def rounded(values: Any, digits: int = 3) -> list:
    """``values`` as a short list of Python floats, for messages."""
    return [round(float(v), digits) for v in np.ravel(values)]
