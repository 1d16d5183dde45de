"""The one process pool of the package: pure-Python / RDKit work on chunks, safe from plain scripts.

Worker processes are *forked* (Linux): they start as copies of the running process, so a user
script without an ``if __name__ == "__main__":`` guard, a notebook and the CLI all work
alike (a spawned pool re-runs the user's script in every worker).  Where fork is not
available (macOS, Windows), or inside a worker, or for small inputs, the work runs in the
calling process.  The pool is created on first use, kept for later calls (starting workers
costs more than a batch of work), and shut down at exit.  The workers never touch torch.
"""

from __future__ import annotations

import atexit
import functools
import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["chunked_map", "submit_chunks", "map_items", "default_jobs"]

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


def _plan(items: list, n_jobs: int | None, min_chunk: int, max_chunk: int | None):
    """The pool to use (None: the calling process) and the chunks to hand it."""
    n_jobs = default_jobs() if n_jobs is None else max(1, int(n_jobs))
    pool = _pool(n_jobs) if n_jobs > 1 and len(items) >= 2 * min_chunk else None
    size = max(min_chunk, -(-len(items) // n_jobs)) if pool is not None else max(len(items), 1)
    if max_chunk:
        size = max(1, min(size, max_chunk))
    return pool, [items[i : i + size] for i in range(0, len(items), size)]


def _collect(fn: Callable, chunks: list, futures: list | None, bar=None) -> list:
    """The results of ``futures`` (one per chunk) in order; a broken pool's chunks run here."""
    out: list = []
    finished = 0  # chunks whose results are in ``out``
    if futures is not None:
        try:
            for future in futures:
                part = future.result()
                out.extend(part)
                finished += 1
                if bar is not None:
                    bar.update(len(part))
        except BrokenProcessPool:
            logger.warning("a worker process died; running the rest of this batch in the calling process")
            _shutdown()
    for chunk in chunks[finished:]:
        part = fn(chunk)
        out.extend(part)
        if bar is not None:
            bar.update(len(part))
    return out


def chunked_map(
    fn: Callable[[list[T]], list[R]],
    items: Sequence[T],
    n_jobs: int | None = None,
    min_chunk: int = 256,
    max_chunk: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> list[R]:
    """``fn`` applied to consecutive chunks of ``items``, results concatenated in order.

    ``fn`` maps a list to a list of the same length and must be a module-level function
    (or a ``functools.partial`` of one).  Runs in the calling process when ``n_jobs`` is 1,
    when there are fewer than ``2 * min_chunk`` items, or where forked workers are not
    available; a pool that breaks (a worker killed) is replaced and the remaining chunks run
    in the calling process, with a warning.  ``max_chunk`` bounds the chunk size (finer
    progress, less memory per result); ``progress`` shows a bar over items.
    """
    items = list(items)
    if progress and not max_chunk:  # about 20 chunks per worker, so that the bar moves
        max_chunk = max(min_chunk, -(-len(items) // (20 * (n_jobs or default_jobs()))))
    pool, chunks = _plan(items, n_jobs, min_chunk, max_chunk)
    with tqdm(total=len(items), desc=desc, unit="mol", disable=not progress, leave=False, mininterval=1) as bar:
        futures = [pool.submit(fn, chunk) for chunk in chunks] if pool is not None else None
        return _collect(fn, chunks, futures, bar)


def submit_chunks(
    fn: Callable[[list[T]], list[R]], items: Sequence[T], n_jobs: int | None = None, min_chunk: int = 256
) -> Callable[[], list[R]]:
    """Start :func:`chunked_map`'s work on the pool and return a function that waits for its results.

    The calling process goes on meanwhile (e.g. runs the GRU on the next batch while the
    workers turn the last one into SMILES).  Without a pool the work runs when the results
    are asked for.
    """
    items = list(items)
    pool, chunks = _plan(items, n_jobs, min_chunk, None)
    futures = [pool.submit(fn, chunk) for chunk in chunks] if pool is not None else None
    return lambda: _collect(fn, chunks, futures)


def _each(func: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [func(x) for x in chunk]


def map_items(
    func: Callable[[T], R], items: Sequence[T], n_jobs: int | None = None, min_chunk: int = 256, **kwargs
) -> list[R]:
    """``[func(x) for x in items]`` on the pool, in order (``func`` module-level); as :func:`chunked_map`."""
    return chunked_map(functools.partial(_each, func), items, n_jobs=n_jobs, min_chunk=min_chunk, **kwargs)
