"""Independent jobs in child processes: ``in_processes(fn, jobs, workers)`` is ``[fn(j) for j in jobs]``, in
order, with up to ``workers`` processes (forked, so ``fn`` and the data it closes over are inherited, not
sent; each job and result crosses a pipe). Ctrl-C and SIGTERM stop every child at once; a child's exception
is re-raised in the parent. Used by ``gpuplan sweep --workers`` (one plan per grid point) and
``gpuplan validate --workers`` (one leave-one-source-out fold per source)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

J = TypeVar("J")
R = TypeVar("R")


def worker_count(requested: int, jobs: int) -> int:
    """Processes actually started: never more than the jobs or the machine's cores."""
    return max(1, min(requested, jobs, os.cpu_count() or 1))


def in_processes(fn: Callable[[J], R], jobs: Sequence[J], workers: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> list[R]:
    """``[fn(j) for j in jobs]`` (in this process when one worker is enough, else in child processes);
    ``progress(done, total)`` after each job."""
    n = worker_count(workers, len(jobs))
    if n == 1:
        out = []
        for i, job in enumerate(jobs):
            out.append(fn(job))
            if progress:
                progress(i + 1, len(jobs))
        return out
    return _parallel(fn, list(jobs), n, progress)


def _worker(fn: Callable[[Any], Any], conn: Connection, parent: int) -> None:
    """In a child process: receive (index, job), send back (index, result or exception), until None; die at
    once on SIGTERM, leave Ctrl-C to the parent, stop if the parent is gone."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.getppid() == parent:
        message = conn.recv()
        if message is None:
            break
        index, job = message
        try:
            conn.send((index, fn(job)))
        except Exception as err:  # an input error of this job: the parent re-raises it
            conn.send((index, err))
    conn.close()


def _parallel(fn: Callable[[J], R], jobs: list[J], workers: int,
              progress: Callable[[int, int], None] | None) -> list[R]:
    """Results in order from ``workers`` child processes, each handed the next job when it returns one.
    The parent waits in short, interruptible slices; an exception or interrupt in the parent, or a child's
    error, kills every child, so Ctrl-C and SIGTERM stop the whole run at once (no pool whose locks a
    killed worker could hold)."""
    context = multiprocessing.get_context("fork")
    children: dict[Connection, BaseProcess] = {}
    results: dict[int, R] = {}
    pending = iter(enumerate(jobs))
    busy: set[Connection] = set()

    def hand_out(conn: Connection) -> None:
        """The next job, or None (the child ends) when all are handed out."""
        job = next(pending, None)
        conn.send(job)
        if job is None:
            busy.discard(conn)
        else:
            busy.add(conn)

    try:
        for _ in range(workers):
            mine, theirs = context.Pipe()
            child = context.Process(target=_worker, args=(fn, theirs, os.getpid()), daemon=True)
            child.start()
            theirs.close()
            children[mine] = child
            hand_out(mine)
        while len(results) < len(jobs):
            for conn in wait(list(busy), timeout=0.1):
                try:
                    index, result = conn.recv()  # type: ignore[union-attr]
                except EOFError:
                    code = children[conn].exitcode  # type: ignore[index]
                    raise RuntimeError(f"a worker process died (exit code {code})") from None
                if isinstance(result, BaseException):
                    raise result
                results[index] = result
                hand_out(conn)  # type: ignore[arg-type]
                if progress:
                    progress(len(results), len(jobs))
    finally:
        for conn, child in children.items():
            if child.is_alive():
                child.kill()
            child.join(1.0)
            conn.close()
    return [results[i] for i in range(len(jobs))]
