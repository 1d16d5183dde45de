"""Plumbing shared by the metric modules: input checks, NaN, progress and pool thresholds,
the torch thread count of small workloads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

__all__ = ["PARALLEL_MIN", "PROGRESS_MIN", "as_list", "nan", "torch_threads"]

PARALLEL_MIN = 2000  # below this many molecules, per-molecule work runs in the calling process
PROGRESS_MIN = 5000  # show a progress bar from this many items


def nan() -> float:
    return float("nan")


def as_list(smiles: Iterable) -> list:
    """``smiles`` as a list; a single string is refused (a common slip: ``gen="CCO"``)."""
    if isinstance(smiles, (str, bytes)):
        raise TypeError("expected a list of SMILES, got a single string")
    return list(smiles)


@contextlib.contextmanager
def torch_threads(small: bool) -> Iterator[None]:
    """One torch thread for small workloads (thread start-up and barriers dominate there)."""
    import torch  # heavy: only the Tanimoto and ChemNet code paths need it

    prev = torch.get_num_threads()
    if small and prev != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small and prev != 1:
            torch.set_num_threads(prev)
