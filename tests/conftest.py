"""Suite-wide settings and the fixtures shared by many test modules.

Settings: one torch thread (the CI machine has 2 cores; tiny models run faster
single-threaded) and a private molvae cache folder, so tests never touch ~/.cache/molvae.

Which tests run: the default run leaves out the tests marked ``slow``; ``--slow`` adds them,
``-m slow`` runs only them (any ``-m`` expression that names ``slow`` is taken as written).
``--no-notebooks`` (or ``-m "not notebooks"``) leaves out the notebook runs, which are part
of the default run.

Fixtures: ``cache_env`` (a fresh token-cache folder for one test), ``tiny_run`` (a tiny
model trained once per session through ``molvae train``, for the CLI tests), ``search_model_path`` /
``search_model`` (one small VAE trained once per session on 2,000 ZINC molecules, whose
decoder proposes many distinct molecules: the optimizer, study and prediction tests share it).

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


def pytest_addoption(parser):
    group = parser.getgroup("molvae")
    group.addoption("--slow", action="store_true", help="also run the tests marked slow (minutes each)")
    group.addoption("--no-notebooks", action="store_true", help="leave out the notebook runs")


def pytest_collection_modifyitems(config, items):
    markexpr = config.getoption("-m") or ""
    keep_slow = config.getoption("--slow") or "slow" in markexpr
    drop_notebooks = config.getoption("--no-notebooks")
    kept, dropped = [], []
    for item in items:
        if (not keep_slow and "slow" in item.keywords) or (drop_notebooks and "notebooks" in item.keywords):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    """Point the molvae cache (token caches, reference statistics) at a fresh folder."""
    path = tmp_path / "molvae-cache"
    monkeypatch.setenv("MOLVAE_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def search_model_path(tmp_path_factory):
    """Checkpoint of a small VAE (2,000 ZINC molecules, 3 epochs, about 30 s), trained once per session."""
    from molvae.config import ModelConfig, TrainConfig
    from molvae.data.datasets import load_dataset
    from molvae.training.loop import train

    root = tmp_path_factory.mktemp("search-model")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOLVAE_CACHE_DIR", str(root / "cache"))
        train(
            load_dataset("zinc", "valid")[:2000],
            root / "run",
            ModelConfig(latent_dim=16, embedding_dim=32, encoder_hidden_dim=128, decoder_hidden_dim=256, decoder_layers=1),
            TrainConfig(
                epochs=3, batch_size=32, lr=3e-3, beta=0.1, kl_warmup_steps=30, n_prior_samples=0, num_threads=1,
                device="cpu", val_fraction=0.05, max_val=100, early_stopping_patience=0, log_every=1000,
            ),
            progress=False,
        )
    return root / "run" / "best.pt"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny model trained through ``molvae train`` (40 ZINC molecules and one bad row), for the CLI tests."""
    import cli_helpers

    return cli_helpers.tiny_run(tmp_path_factory)


@pytest.fixture(scope="session")
def search_model(search_model_path):
    from molvae.vae.model import MolVAE

    return MolVAE.load(search_model_path, device="cpu")


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
