"""Ctrl-C and SIGTERM during a CP-SAT solve: stop the search at once and unwind, never return a plan.

CP-SAT's own SIGINT handler (``catch_sigint_signal``) stops the search and returns the best solution
found, so an interrupted command would look like a finished one and write its plan. Instead the solve
runs in a helper thread while the main thread waits in short slices, where Python delivers signals: a
``KeyboardInterrupt`` there stops the search and propagates (the CLI exits 130 and writes nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ortools.sat.python import cp_model

WAIT_SLICE_S = 0.05
T = TypeVar("T")

STOP_GRACE_S = 5.0  # CP-SAT stops within milliseconds of StopSearch; this only bounds a stuck solver


def run_interruptibly(fn: Callable[[], T], stop: Callable[[], None], grace_s: float = STOP_GRACE_S) -> T:
    """``fn()`` in a helper thread while the main thread waits in ``WAIT_SLICE_S`` slices; on Ctrl-C or
    SIGTERM (delivered to the main thread) call ``stop()``, give the solver ``grace_s`` to unwind, re-raise."""
    if threading.current_thread() is not threading.main_thread():
        return fn()  # signals are only delivered to the main thread anyway
    outcome: dict[str, Any] = {}
    done = threading.Event()  # not Thread.join: an interrupted join() can leave is_alive() wrong

    def run() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as err:  # re-raised in the caller's thread
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=run, name="solver", daemon=True).start()
    try:
        while not done.wait(WAIT_SLICE_S):
            pass
    except BaseException:
        stop()
        done.wait(grace_s)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def solve_interruptibly(solver: cp_model.CpSolver, model: cp_model.CpModel) -> Any:
    """``solver.Solve(model)``, interruptible within ``WAIT_SLICE_S`` by Ctrl-C or SIGTERM."""
    if threading.current_thread() is threading.main_thread():
        solver.parameters.catch_sigint_signal = False
    return run_interruptibly(lambda: solver.Solve(model), solver.StopSearch)
