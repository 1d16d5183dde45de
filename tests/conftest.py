"""Suite-wide settings: one torch thread (the CI machine has 2 cores; tiny models run faster
single-threaded) and a private molvae cache folder, so tests never touch ~/.cache/molvae.

``postgres_url`` (session scope, for tests marked ``postgres``): a PostgreSQL database URL.
``MOLVAE_TEST_POSTGRES_URL`` names one; otherwise a throw-away server is started for the
session (``initdb`` in a temporary folder, ``pg_ctl start`` on a free 127.0.0.1 port, trust
authentication, stopped and deleted at the end).  The server binaries are looked up in
``MOLVAE_TEST_POSTGRES_BINDIR`` when set, else on ``PATH``, else in Debian's
``/usr/lib/postgresql/VERSION/bin``; ``bash setup.sh --postgres`` installs them and psycopg2.
As root the server runs as the ``postgres`` system user (``nobody`` when there is none):
PostgreSQL refuses to run as root.  When no server can be had the tests are skipped with the
reason, except under ``CI=true``, where they fail: CI cannot pass without them.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _molvae_test_environment(tmp_path_factory):
    previous = os.environ.get("MOLVAE_CACHE_DIR")
    os.environ["MOLVAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("molvae-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if previous is None:
        os.environ.pop("MOLVAE_CACHE_DIR", None)
    else:
        os.environ["MOLVAE_CACHE_DIR"] = previous


# Property-based tests draw the same examples on every run, so CI results are reproducible;
# explore new examples locally with --hypothesis-seed=random.
try:
    from hypothesis import settings

    settings.register_profile("molvae", derandomize=True, database=None)
    settings.load_profile("molvae")
except ImportError:  # hypothesis is a dev extra
    pass


# =============================================================================== PostgreSQL
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _no_postgres(reason: str) -> None:
    """Skip (fail under CI=true) a test that needs PostgreSQL."""
    if _in_ci():
        pytest.fail(f"CI=true and no PostgreSQL server for the postgres tests: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path))


def _postgres_binaries() -> tuple[dict[str, str] | None, str]:
    """``({"initdb": path, "pg_ctl": path}, "")`` or ``(None, why not)``."""
    names = ("initdb", "pg_ctl")
    bindir = os.environ.get("MOLVAE_TEST_POSTGRES_BINDIR")
    if bindir is not None:
        found = {n: os.path.join(bindir, n) for n in names}
        if all(os.access(p, os.X_OK) for p in found.values()):
            return found, ""
        return None, f"MOLVAE_TEST_POSTGRES_BINDIR={bindir} holds no initdb and pg_ctl"
    on_path = {n: shutil.which(n) for n in names}
    if all(on_path.values()):
        return on_path, ""  # type: ignore[return-value]
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        found = {n: os.path.join(d, n) for n in names}
        if all(os.access(p, os.X_OK) for p in found.values()):
            return found, ""
    return None, "initdb and pg_ctl not found on PATH nor in /usr/lib/postgresql/*/bin (bash setup.sh --postgres installs them)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ThrowAwayPostgres:
    """A PostgreSQL server in a temporary folder, for one test session."""

    def __init__(self, binaries: dict[str, str]) -> None:
        self.bin = binaries
        # as root, in /tmp: the server's user must reach the folder (TMPDIR may be private to root)
        tmp = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
        self.base = Path(tempfile.mkdtemp(prefix="molvae-pg-", dir=tmp))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = 0
        self.started = False
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # postgres refuses root: hand the folder to an unprivileged user
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.user is None:
                raise RuntimeError("running as root and there is neither a postgres nor a nobody user to run the server")
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.base)}
        return subprocess.run(list(args), cwd=self.base, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False, **kwargs)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def start(self) -> str:
        r = self._run(self.bin["initdb"], "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-locale",
                      "-E", "UTF8", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}): {(r.stderr or r.stdout)[-1500:]}")
        conf = self.data / "postgresql.conf"
        base_conf = conf.read_text()
        for _attempt in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            conf.write_text(base_conf + (
                "\n# molvae test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\n"
                "max_connections = 60\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            ))
            r = self._run(self.bin["pg_ctl"], "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
            if r.returncode == 0:
                self.started = True
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"pg_ctl start failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}\n{self._log_tail()}")
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=30)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE molvae_test")
        finally:
            conn.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/molvae_test"

    def stop(self) -> None:
        try:
            if self.started:
                self._run(self.bin["pg_ctl"], "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL for the tests marked ``postgres`` (see the module docstring)."""
    url = os.environ.get("MOLVAE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _no_postgres("psycopg2 is not installed (bash setup.sh --postgres installs it)")
    binaries, reason = _postgres_binaries()
    if binaries is None:
        _no_postgres(reason)
    server = None
    try:
        server = _ThrowAwayPostgres(binaries)
        url = server.start()
    except Exception as exc:  # noqa: BLE001  (any failure to start: the reason goes to the report)
        if server is not None:
            server.stop()
        _no_postgres(f"could not start a throw-away server with {binaries['pg_ctl']}: {exc}")
    try:
        yield url
    finally:
        server.stop()
