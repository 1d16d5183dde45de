"""The ``molvae`` entry point (molvae.cli.main): version, help, dispatch and the one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import cli

import molvae
from molvae.cli.main import COMMANDS, main

pytestmark = pytest.mark.usefixtures("cache_env")

COMMAND_NAMES = [name.replace("_", "-") for name, _ in COMMANDS]


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"molvae {molvae.__version__}"


def _imported_after(code: str) -> list[str]:
    """Which heavy libraries a fresh interpreter has imported after running ``code``."""
    probe = code + "\nprint(sorted(m for m in ('torch', 'rdkit', 'numpy', 'pandas', 'sklearn') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", "import sys\n" + probe], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return eval(res.stdout.strip().splitlines()[-1])


def test_version_imports_nothing_heavy():
    res = subprocess.run([sys.executable, "-m", "molvae", "--version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == f"molvae {molvae.__version__}"
    code = "from molvae.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    assert _imported_after(code) == []


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS if n != "optimize"])
def test_registering_a_command_imports_nothing_heavy(name):
    """The parsers of the subcommands load neither torch nor RDKit nor pandas: `molvae --help` answers at once."""
    uses_model = dict(COMMANDS)[name]
    code = (f"import argparse, importlib\nfrom molvae.cli.common import common_parents\n"
            f"sub = argparse.ArgumentParser().add_subparsers()\nverbosity, model = common_parents()\n"
            f"importlib.import_module('molvae.cli.{name}').add_parser(sub, [verbosity, model][:{1 + uses_model}])")
    assert _imported_after(code) == []


def test_help_lists_every_command_and_each_command_has_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMAND_NAMES)
    assert COMMAND_NAMES == ["tokenize", "train", "sample", "fit-prior", "encode", "reconstruct", "evaluate",
                             "optimize", "score", "decode"]
    for name in COMMAND_NAMES:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert f"usage: molvae {name}" in capsys.readouterr().out


def test_missing_model_is_a_usage_error(tmp_path):
    missing = tmp_path / "nowhere" / "best.pt"
    for argv in (["sample", "-n", "3"], ["encode", "CCO"], ["reconstruct", "CCO"], ["decode", "z.npy"],
                 ["score", "x.smi"]):
        if argv[0] == "score":
            (tmp_path / "x.smi").write_text("CCO\n")
            argv = ["score", str(tmp_path / "x.smi")]
        code, _, err = cli([*argv, "--model", str(missing), "-q"])
        assert code == 2, (argv, err)
        assert err.startswith(f"molvae {argv[0]}: error:") and str(missing) in err and "no such checkpoint" in err
        assert "Traceback" not in err


def test_corrupt_model_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"")
    code, _, err = cli(["sample", "-n", "3", "--model", str(bad), "-q"])
    assert code == 2 and "empty" in err


def test_verbose_shows_the_traceback_and_ctrl_c_exits_130(tmp_path, monkeypatch):
    missing = str(tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        main(["encode", "CCO", "--model", missing, "-v"])
    import molvae.cli.encode

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(molvae.cli.encode, "cmd_encode", interrupted)
    code, _, err = cli(["encode", "CCO", "-q"])
    assert code == 130 and err.strip() == "interrupted"
