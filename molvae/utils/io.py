"""The one atomic write: a temporary file beside the target, flushed to disk, renamed over it.

Readers (another process, a resumed run, a crash halfway) see the old file or the new one,
never half of one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to (by any library); renamed over ``path`` when the block succeeds.

    The temporary name keeps the suffix of ``path`` (``np.savez`` and ``to_parquet`` look at it).
    On an error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{''.join(path.suffixes)}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that replaces ``path`` only once the block has written all of it.

    >>> with atomic_write("out.csv") as fh:     # doctest: +SKIP
    ...     fh.write("smiles\\nCCO\\n")
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes whole files: mode must start with 'w', not {mode!r}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        fh.flush()
