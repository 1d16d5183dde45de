"""molvae.vae.likelihood (ELBO, importance-weighted log p(x), per-token NLL), its MolVAE methods and
``molvae score``, on real molecules with the shipped model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import sequence_log_prob  # noqa: F401
from sklearn.metrics import roc_auc_score

import molvae as mv
from molvae import likelihood
from molvae.cli.main import main
from molvae.cli.score import OUTPUT_COLUMNS

BAD_SMILES = "C1CC(not_a_smiles"
UNSPELLABLE = "CC[Se]CC"  # selenium is outside the shipped vocabulary


@pytest.fixture(scope="module")
def model():
    return mv.load_pretrained(device="cpu")


@pytest.fixture(scope="module")
def moses_mols() -> list[str]:
    return mv.load_dataset("moses", "test", limit=100)


# ----------------------------------------------------------------------------- the table
def test_columns_order_and_unscorable_rows_kept(model, moses_mols):
    good = moses_mols[:3]
    smiles = [good[0], BAD_SMILES, good[1], UNSPELLABLE, None, good[2]]
    df = model.score(smiles, k=4)
    assert list(df.columns) == list(likelihood.SCORE_COLUMNS)
    assert len(df) == len(smiles)
    assert df.smiles.tolist()[:4] == smiles[:4] and df.smiles.iloc[5] == smiles[5]
    ok = np.array([True, False, True, False, False, True])
    numbers = df[["elbo", "recon_nll", "kl", "log_px"]].to_numpy()
    assert np.isfinite(numbers[ok]).all() and np.isnan(numbers[~ok]).all()
    assert (df.reason[ok] == "").all()
    assert "invalid SMILES" in df.reason[1]
    assert "[Se]" in df.reason[3]
    assert df.reason[4] != ""
    assert df.n_tokens[ok].tolist() == (model.tokenizer.encode(good).lengths - 2).tolist()
    assert df.n_tokens[~ok].isna().all()
    # a molecule's scores depend neither on its neighbours, nor on their order, nor on the batch size
    alone = model.score(good[::-1], k=4, batch_size=1)
    pd.testing.assert_frame_equal(alone.iloc[::-1].reset_index(drop=True), df[ok].reset_index(drop=True),
                                  check_exact=False, rtol=1e-5)


def test_elbo_is_minus_recon_plus_analytic_kl(model, moses_mols, monkeypatch):
    monkeypatch.setattr(model, "prior", None, raising=False)  # N(0, I): the KL is analytic
    smiles = moses_mols[:20]
    df = likelihood.score(model, smiles, k=3)
    assert np.allclose(df.elbo, -(df.recon_nll + df.kl))
    mu, logvar = model.posterior(smiles)
    kl = 0.5 * (mu.astype(np.float64) ** 2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)
    assert np.allclose(df.kl, kl, rtol=1e-4)
    assert (df.kl > 0).all() and (df.recon_nll > 0).all()
    assert (df.log_px < 0).all()


def test_one_sample_log_px_is_the_elbo_in_expectation(model, moses_mols):
    """log w = log p(x|z) + log p(z) - log q(z|x) has mean log p(x|z) - KL = ELBO over z ~ q."""
    smiles = moses_mols[:40]
    runs = [likelihood.score(model, smiles, k=1, seed=s) for s in range(5)]
    log_px = np.mean([r.log_px.mean() for r in runs])
    elbo = np.mean([r.elbo.mean() for r in runs])
    assert log_px == pytest.approx(elbo, abs=1.5)


def test_importance_weighting_tightens_with_k(model, moses_mols):
    smiles = moses_mols[:30]
    means, elbo = [], None
    for k in (1, 10, 100):
        df = likelihood.score(model, smiles, k=k, seed=0)
        means.append(df.log_px.mean())
        elbo = df.elbo.mean()
    assert means[0] - 0.5 <= means[1] <= means[2] + 0.5, means
    assert means[2] > means[0] + 1.0, means
    assert means[2] > elbo + 1.0, (means, elbo)


def test_seeded_scores_are_deterministic(model, moses_mols, monkeypatch):
    monkeypatch.setattr(model, "prior", None, raising=False)  # N(0, I): the KL is analytic
    smiles = moses_mols[:10]
    a = likelihood.score(model, smiles, k=5, seed=3)
    b = likelihood.score(model, smiles, k=5, seed=3)
    c = likelihood.score(model, smiles, k=5, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.log_px, c.log_px)
    assert np.allclose(a.kl, c.kl)  # analytic: no noise
    assert np.array_equal(likelihood.nll(model, smiles, k=5, seed=3), -a.log_px.to_numpy())


def test_a_learned_prior_is_used_for_log_pz(model, moses_mols, monkeypatch):
    """A prior object with log_prob(z) replaces N(0, I): shifting its log density by c shifts log p(x) by c."""
    smiles = moses_mols[:8]
    monkeypatch.setattr(model, "prior", None, raising=False)
    base = likelihood.score(model, smiles, k=5)

    class ShiftedNormal:
        def log_prob(self, z: torch.Tensor) -> torch.Tensor:
            return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=-1) + 3.0

    monkeypatch.setattr(model, "prior", ShiftedNormal(), raising=False)
    shifted = likelihood.score(model, smiles, k=5)
    assert np.allclose(shifted.log_px, base.log_px + 3.0, atol=1e-4)
    assert np.allclose(shifted.recon_nll, base.recon_nll)
    # KL against the learned prior: the k-sample Monte Carlo estimate (here shifted by -3)
    assert np.allclose(shifted.elbo, -(shifted.recon_nll + shifted.kl))
    assert abs(float((shifted.kl + 3.0 - base.kl).mean())) < 1.5


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="k"):
        model.score(["CCO"], k=0)
    with pytest.raises(ValueError, match="seed"):
        model.score(["CCO"], seed=-1)
    empty = model.score([])
    assert list(empty.columns) == list(likelihood.SCORE_COLUMNS) and len(empty) == 0


# ----------------------------------------------------------------------------- per token
def test_token_nll_sums_to_the_reconstruction_at_the_mean(model, moses_mols):
    smiles = moses_mols[:5] + [BAD_SMILES]
    long = model.token_nll(smiles)
    assert list(long.columns) == ["row", "smiles", "position", "token", "nll"]
    assert sorted(long.row.unique()) == [0, 1, 2, 3, 4]
    last = long.groupby("row").tail(1)
    assert (last.token == "<eos>").all()
    arrays = model.token_nll(smiles, as_arrays=True)
    assert arrays[5] is None
    batch = model.tokenizer.encode(smiles[:5])
    mu, _ = model.posterior(smiles[:5])
    t = int(batch.lengths.max())
    ref = -sequence_log_prob(model, torch.as_tensor(mu), torch.as_tensor(batch.ids[:, :t])).numpy()
    assert np.allclose([a.sum() for a in arrays[:5]], ref, rtol=1e-4)
    assert [len(a) for a in arrays[:5]] == (batch.lengths - 1).tolist()
    assert np.allclose(long.groupby("row").nll.sum().to_numpy(), ref, rtol=1e-4)


# ----------------------------------------------------------------------------- anomaly ranking
def test_test_molecules_are_more_likely_than_random_selfies(model, moses_mols):
    lengths = model.tokenizer.encode(moses_mols).lengths - 2
    decoys = likelihood.random_selfies_decoys(model.tokenizer, lengths, seed=0, exclude=moses_mols)
    decoys = [d for d in decoys if d]
    assert len(decoys) >= 90 and len(set(decoys)) == len(decoys)
    assert not set(decoys) & set(moses_mols)
    real, fake = model.nll(moses_mols, k=10), model.nll(decoys, k=10)
    assert np.isfinite(real).all() and np.isfinite(fake).all()
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    assert roc_auc_score(y, np.r_[real, fake]) > 0.9


def test_edit_decoys_are_new_spellable_molecules(model, moses_mols):
    smiles = moses_mols[:20]
    decoys = likelihood.selfies_edit_decoys(model.tokenizer, smiles, seed=0)
    assert len(decoys) == len(smiles)
    found = [(s, d) for s, d in zip(smiles, decoys) if d]
    assert len(found) >= 18
    assert all(d != mv.chem.canonical(s) for s, d in found)
    assert len(model.tokenizer.encode([d for _, d in found]).failures) == 0
    assert likelihood.selfies_edit_decoys(model.tokenizer, smiles, seed=0) == decoys  # seeded


# ----------------------------------------------------------------------------- CLI
def _write(path, text: str):
    path.write_text(text)
    return path


def test_cli_writes_one_row_per_input_row_in_order(tmp_path, moses_mols, capsys):
    good = moses_mols[:4]
    rows = [good[0], BAD_SMILES, good[1], UNSPELLABLE, good[2], good[3]]
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": range(len(rows)), "structure": rows}).to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    assert main(["score", str(src), "-o", str(out), "-k", "3", "--seed", "1", "-q"]) == 0
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(df.columns[: len(OUTPUT_COLUMNS)]) == list(OUTPUT_COLUMNS)
    assert df.smiles.tolist() == rows
    assert df.log_px.isna().tolist() == [False, True, False, True, False, False]
    assert "invalid SMILES" in df.reason[1] and "[Se]" in df.reason[3]
    lib = mv.load_pretrained(device="cpu").score(rows, k=3, seed=1)
    assert np.allclose(df.log_px, lib.log_px, equal_nan=True)
    # chunked streaming gives the same file; a .smi input with a header works too
    smi = _write(tmp_path / "in.smi", "smiles name\n" + "".join(f"{s} m{i}\n" for i, s in enumerate(rows)))
    out2 = tmp_path / "scores2.csv"
    assert main(["score", str(smi), "-o", str(out2), "-k", "3", "--seed", "1", "--chunk-size", "2", "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out2), pd.read_csv(out))
    assert "scored 4 of 6" in capsys.readouterr().out


def test_cli_errors_exit_2(tmp_path, capsys):
    empty = _write(tmp_path / "empty.csv", "")
    header_only = _write(tmp_path / "header.csv", "smiles\n")
    table = _write(tmp_path / "mols.csv", "name,smiles\na,CCO\n")
    out = tmp_path / "out.csv"
    assert main(["score", str(empty), "-o", str(out)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["score", str(header_only), "-o", str(out)]) == 2
    assert "no data rows" in capsys.readouterr().err
    assert main(["score", str(table), "--column", "nope", "-o", str(out)]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "missing.csv"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()
