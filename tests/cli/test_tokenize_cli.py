"""``molvae tokenize`` on a small CSV with one bad row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import BAD, cli, write_smiles_csv
from helpers import zinc

from molvae.tokenizer import SelfiesTokenizer

pytestmark = pytest.mark.usefixtures("cache_env")


def test_tokenize_writes_a_vocabulary(tmp_path):
    smiles = zinc(15)
    data = tmp_path / "small.csv"
    write_smiles_csv(data, smiles[:7] + [BAD] + smiles[7:])
    vocab = tmp_path / "v.json"
    code, out, _ = cli(["tokenize", str(data), "--save-vocab", str(vocab), "-q"])
    assert code == 0
    assert "molecules read: 16; invalid rows dropped: 1" in out
    assert "tokenized: 15; rejected by the tokenizer: 0" in out
    tok = SelfiesTokenizer.load(vocab)
    assert tok == SelfiesTokenizer.fit(smiles, progress=False)
    assert json.loads(vocab.read_text())["format"] == "molvae-selfies-tokenizer"
    assert f"vocabulary: {tok.vocab_size} tokens" in out
    # the saved vocabulary can be used again
    assert cli(["tokenize", str(data), "--vocab", str(vocab), "-q"])[0] == 0


def test_tokenize_cache_and_rejects(tmp_path, cache_env):
    smiles = zinc(12)
    data = tmp_path / "small.csv"
    write_smiles_csv(data, smiles[:3] + [BAD] + smiles[3:])
    rejects = tmp_path / "rejects.csv"
    code, out, _ = cli(["tokenize", str(data), "--cache", "--rejects", str(rejects), "--jobs", "1", "-q"])
    assert code == 0
    bad = pd.read_csv(rejects)
    assert bad.smiles.tolist() == [BAD] and bad.line.tolist() == [5]  # header, 3 rows, then the bad one
    (line,) = [s for s in out.splitlines() if s.startswith("token cache: ")]
    folder = line.removeprefix("token cache: ")
    assert folder.startswith(str(cache_env))
    ids = np.load(f"{folder}/ids.npy")
    assert len(ids) == 12
    tok = SelfiesTokenizer.fit(smiles, progress=False)
    assert tok.decode(ids) == tok.decode(tok.encode(smiles).ids)
