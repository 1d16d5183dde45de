"""The shape of the package: data flows one way, files stay small, the top level stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "molvae"

# upstream first: a module may import from its own layer and from the layers before it
LAYERS = ["_version", "utils", "config", "chem", "properties", "tokenizer", "data", "vae", "training",
          "metrics", "evaluate", "predictors", "oracles", "optimization", "sklearn", "cli", "__main__"]


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _molvae_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("molvae."):
            yield node.lineno, node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("molvae."):
                    yield node.lineno, alias.name.split(".")[1]


def test_no_module_imports_one_downstream_of_it():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        me = _layer(path)
        if me == "__init__":  # the lazy public face maps names onto every layer
            continue
        assert me in rank, f"{path}: a new top-level module or subpackage: give it a place in LAYERS"
        for lineno, target in _molvae_imports(path):
            if rank.get(target, len(LAYERS)) > rank[me]:
                upward.append(f"{path.relative_to(PACKAGE)}:{lineno} imports molvae.{target}")
    assert not upward, "\n".join(upward)


def test_no_file_is_over_450_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long


def test_importing_molvae_loads_neither_torch_nor_rdkit():
    code = "import sys, molvae; print(molvae.__version__, 'torch' in sys.modules, 'rdkit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"]


def test_public_names_resolve_lazily_to_their_modules():
    import molvae as mv

    assert mv.optimize.__module__ == "molvae.optimization.run"
    assert mv.train.__module__ == "molvae.training.loop"
    assert mv.MolVAE.__module__ == "molvae.vae.model"
    assert mv.properties.__name__ == "molvae.properties"
    assert set(mv.__all__) <= set(dir(mv))
    with pytest.raises(AttributeError, match="no_such_name"):
        mv.no_such_name  # noqa: B018
