"""Optuna storages for the ledger: in memory, RDB URLs (SQLite, PostgreSQL, MySQL), journal files.

``sqlalchemy`` is imported inside the RDB helpers only when an RDB URL needs it (it is slow to
import, and in-memory and journal storages never use it).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

__all__ = ["open_storage", "quiet_optuna"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna at WARNING inside the block (no "A new study created" lines for internal studies)."""
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(min(max(old, optuna.logging.WARNING), optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


def open_storage(storage: Any, heartbeat_interval: int = 30, grace_period: int = 120):
    """An Optuna storage from ``None`` (in memory), an RDB URL, ``journal:///path`` or a storage object.

    RDB URLs get heartbeats (``heartbeat_interval``/``grace_period`` seconds) so that the
    reservations of a dead worker are freed; SQLite files are opened in WAL mode with a
    60 s lock timeout so that several processes can share them.
    """
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise TypeError(f"storage must be None, a URL or an optuna storage, got {type(storage).__name__}")
    if storage.startswith("journal://"):
        path = storage[len("journal://") :]
        if not path:
            raise ValueError("journal storage needs a file: journal:///path/to/file.log")
        return JournalStorage(JournalFileBackend(path))
    rdb = _open_rdb(storage, heartbeat_interval, grace_period)
    if storage.startswith("sqlite"):
        _sqlite_pragmas(rdb)
    return rdb


def _open_rdb(url: str, heartbeat_interval: int, grace_period: int):
    """``RDBStorage(url)``, retried when workers starting together race to create the tables."""
    import sqlalchemy.exc

    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    racy = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, optuna.exceptions.StorageInternalError)
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat is "experimental"
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period
                )
        except Exception as exc:
            # PostgreSQL: CREATE TYPE of an enum another worker has just created (DuplicateObject)
            raced = isinstance(exc, sqlalchemy.exc.ProgrammingError) and "already exists" in str(exc)
            if attempt == 5 or not (isinstance(exc, racy) or raced):
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def _sqlite_pragmas(rdb) -> None:
    """WAL (readers do not block the writer) and NORMAL sync (one fsync per checkpoint) on every connection."""
    import sqlalchemy

    def _pragmas(conn, _record) -> None:
        cur = conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        except Exception as exc:  # another process holds a lock: keep the defaults
            logger.debug("SQLite pragmas not applied: %s", exc)
        finally:
            cur.close()

    sqlalchemy.event.listen(rdb.engine, "connect", _pragmas)
    rdb.engine.dispose()  # connections opened so far did not get the pragmas
