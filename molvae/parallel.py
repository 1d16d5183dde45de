"""A process pool for pure-Python / RDKit work on chunks of strings, safe from plain scripts.

Worker processes are *forked* (Linux): they start as copies of the running process, so a user
script without an ``if __name__ == "__main__":`` guard, a notebook and the CLI all work
alike (a spawned pool re-runs the user's script in every worker).  Where fork is not
available (macOS, Windows), or inside a worker, or for small inputs, the work runs in the
calling process.  The pool is created on first use, kept for later calls (starting workers
costs more than a batch of work), and shut down at exit.  The workers never touch torch.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

__all__ = ["chunked_map", "default_jobs"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_POOL: ProcessPoolExecutor | None = None
_POOL_JOBS = 0
_IN_WORKER = False


def default_jobs() -> int:
    """Worker processes to use: ``MOLVAE_JOBS`` when set, else the CPUs this process may run on."""
    env = os.environ.get("MOLVAE_JOBS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            logger.warning("MOLVAE_JOBS=%r is not an integer; using the CPU count", env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _mark_worker() -> None:
    global _IN_WORKER
    _IN_WORKER = True


def _shutdown() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)
        _POOL = None


def _pool(n_jobs: int) -> ProcessPoolExecutor | None:
    global _POOL, _POOL_JOBS
    if _IN_WORKER or sys.platform != "linux" or "fork" not in mp.get_all_start_methods():
        return None
    if _POOL is None or _POOL_JOBS != n_jobs:
        _shutdown()
        _POOL = ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("fork"), initializer=_mark_worker)
        _POOL_JOBS = n_jobs
        atexit.register(_shutdown)
    return _POOL


def chunked_map(
    fn: Callable[[list[T]], list[R]], items: Sequence[T], n_jobs: int | None = None, min_chunk: int = 256
) -> list[R]:
    """``fn`` applied to consecutive chunks of ``items``, results concatenated in order.

    ``fn`` maps a list to a list of the same length and must be a module-level function.
    Runs in the calling process when ``n_jobs`` is 1, when there are fewer than
    ``2 * min_chunk`` items, or where forked workers are not available; a pool that breaks
    (a worker killed) is replaced and the chunk run in the calling process, with a warning.
    """
    items = list(items)
    n_jobs = default_jobs() if n_jobs is None else max(1, int(n_jobs))
    if n_jobs == 1 or len(items) < 2 * min_chunk:
        return fn(items)
    pool = _pool(n_jobs)
    if pool is None:
        return fn(items)
    size = max(min_chunk, -(-len(items) // n_jobs))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    try:
        parts = list(pool.map(fn, chunks))
    except BrokenProcessPool:
        logger.warning("a worker process died; running this batch in the calling process")
        _shutdown()
        return fn(items)
    return [r for part in parts for r in part]
