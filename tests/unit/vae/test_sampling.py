"""Faithful decoding and learned latent priors, on real molecules and the shipped models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import selfies as sf
from rdkit import Chem
import torch
from helpers import TINY_MODEL, zinc

import molvae as mv
from molvae.tokenizer import SelfiesTokenizer, decode_strings, element_sequence, is_faithful, selfies_to_smiles
from molvae.vae.checkpoint import CheckpointError
from molvae.vae.model import MolVAE
from molvae.vae.prior import GaussianMixturePrior, fit_prior
from molvae.vae.sampling import SamplingError


@pytest.fixture(scope="module")
def shipped():
    """The shipped sampling model (it carries no learned prior)."""
    torch.set_num_threads(1)
    return mv.load_pretrained("moses-sampler", device="cpu")


@pytest.fixture(scope="module")
def with_prior(shipped):
    model = mv.load_pretrained("moses-sampler", device="cpu")
    model.prior = fit_prior(model, mv.load_dataset("moses", "test", limit=600), n_components=4, seed=0)
    return model


# ----------------------------------------------------------------------------- the rule
def test_a_string_selfies_had_to_repair_is_not_faithful():
    # [O] has no valence left for the double bond: SELFIES drops [=C] and gives acetaldehyde
    repaired = "[C][C][=O][=C]"
    assert selfies_to_smiles(repaired) == "CC=O"
    assert not is_faithful(repaired, "CC=O")
    # a ring whose size token reaches past the first atom: SELFIES closes it on the first atom
    ring = "[C][C][C][Ring1][Ring2]"
    assert selfies_to_smiles(ring) == "C1CC1"
    assert not is_faithful(ring, "C1CC1")


def test_the_canonical_spelling_is_faithful():
    for smiles in ["CC(=O)Nc1ccc(O)cc1", "O=C(O)c1ccccc1OC(C)=O", "C[C@H](N)C(=O)O"]:
        canonical = mv.chem.canonical(smiles)
        spelled = sf.encoder(canonical)
        assert selfies_to_smiles(spelled) == canonical
        assert is_faithful(spelled, canonical)


def test_the_same_molecule_in_another_atom_order_is_not_faithful():
    # paracetamol written from the hydroxyl end: a valid spelling, not the tokenizer's
    other_order = sf.encoder("Oc1ccc(NC(C)=O)cc1")
    canonical = selfies_to_smiles(other_order)
    assert canonical == mv.chem.canonical("CC(=O)Nc1ccc(O)cc1")
    assert other_order != sf.encoder(canonical)
    assert not is_faithful(other_order, canonical)
    assert not is_faithful("[C]", None)


def test_element_sequences_read_aromatic_kekule_and_bracket_atoms_alike():
    assert element_sequence("c1ccncc1Cl") == ["C", "C", "C", "N", "C", "C", "CL"]
    assert element_sequence("C1=CC=NC=C1Cl") == element_sequence("c1ccncc1Cl")
    assert element_sequence("[nH]1cc[se]c1[C@@H](Br)[13CH3]") == ["N", "C", "C", "SE", "C", "C", "BR", "C"]
    assert element_sequence("C[N+](C)(C)[O-]") == ["C", "N", "C", "C", "O"]


def test_decoding_many_strings_agrees_with_the_rule_on_real_samples_and_spellings(shipped):
    """decode_strings rejects most unfaithful strings by their atom order before re-encoding
    them: its answers must be those of is_faithful, string for string."""
    z = torch.randn(1500, shipped.latent_dim, generator=torch.Generator().manual_seed(5))
    ids, _ = shipped.generate(z, method="sample", temperature=1.3, generator=torch.Generator().manual_seed(5))
    strings = shipped.tokenizer.decode_selfies(ids.numpy())
    # real molecules with charges, halogens, stereo and aromatic NH: the canonical spelling
    # (faithful) and spellings in other atom orders (not)
    for smiles in zinc(60):
        canonical = mv.chem.canonical(smiles)
        strings.append(sf.encoder(canonical))
        for other in Chem.MolToRandomSmilesVect(mv.chem.to_mol(canonical), 2, randomSeed=7):
            strings.append(sf.encoder(other))
    strings += ["[C][C][=O][=C]", "[C][C][C][Ring1][Ring2]", "[O][C][C]", "[C][C][O]", "[F][=C]", "[Branch1][C]"]
    got = decode_strings(strings)
    want = [(smi, is_faithful(s, smi)) for s, smi in zip(strings, map(selfies_to_smiles, strings))]
    assert got == want
    n_faithful = sum(f for _, f in want)
    assert 300 < n_faithful < len(strings) - 300  # both kinds are well represented


def test_decoding_without_the_check_gives_the_same_molecules_and_checks_later_when_asked(shipped):
    strings = ["[C][C][O]", "[O][C][C]", "[C][C][=O][=C]"]
    assert decode_strings(strings, faithful=False) == [("CCO", None), ("CCO", None), ("CC=O", None)]
    assert decode_strings(strings) == [("CCO", True), ("CCO", False), ("CC=O", False)]
    # the optimizer's greedy decode (model.decode) skips the check; decode_z then still gives
    # every string's verdict, also for strings the cache holds without one
    z = torch.randn(64, shipped.latent_dim, generator=torch.Generator().manual_seed(11)).numpy()
    shipped.__dict__.pop("_smiles_cache", None)
    smiles = shipped.decode(z)
    assert all(hit[1] is None for hit in shipped.__dict__["_smiles_cache"].values())
    df = shipped.decode_z(z)
    assert df["smiles"].tolist() == smiles
    assert df["faithful"].map(type).eq(bool).all()
    assert df["faithful"].tolist() == [is_faithful(s, smi or None) for s, smi in zip(df["selfies"], df["smiles"])]
    assert shipped.decode_z(z, check_faithful=False)["faithful"].tolist() == df["faithful"].tolist()  # cached


# ----------------------------------------------------------------------------- sampling
def test_faithful_sampling_returns_n_faithful_molecules(shipped):
    df = shipped.sample(300, seed=0, progress=False)
    assert len(df) == 300
    assert list(df.columns) == ["smiles", "selfies", "valid", "faithful", "nll"]
    assert df.valid.all() and df.faithful.all()
    # the rule, recomputed from the strings themselves
    assert all(sf.encoder(s) == t for s, t in zip(df.smiles, df.selfies))
    assert df.attrs["n_drawn"] > 300
    assert 0.1 < df.attrs["acceptance_rate"] < 1.0
    assert df.attrs["prior"] == "standard"  # the sampling model ships without a learned prior
    again = shipped.sample(300, seed=0, progress=False)
    pd.testing.assert_frame_equal(df, again)


def test_unfaithful_sampling_keeps_every_row_and_reports_the_rate(shipped):
    df = shipped.sample(400, seed=1, progress=False, faithful=False)
    assert len(df) == 400 and df.valid.all()
    assert 0 < (~df.faithful).sum() < 400
    assert df.attrs["acceptance_rate"] == pytest.approx(df.faithful.mean())
    assert df.attrs["n_drawn"] == 400


def test_a_model_that_is_never_faithful_fails_clearly_within_the_bound():
    tok = SelfiesTokenizer.fit(zinc(60))
    torch.manual_seed(0)
    untrained = MolVAE(tok, TINY_MODEL)
    with pytest.raises(SamplingError, match="faithful molecules after decoding 200 latent points"):
        untrained.sample(100, seed=0, progress=False, max_draws=200)
    df = untrained.sample(50, seed=0, progress=False, faithful=False)
    assert len(df) == 50 and df.valid.all()


def test_streamed_chunks_are_faithful_too(shipped):
    chunks = list(shipped.sample_iter(120, chunk_size=50, seed=3))
    assert [len(c) for c in chunks] == [50, 50, 20]
    assert all(c.faithful.all() for c in chunks)


# ----------------------------------------------------------------------------- learned prior
def test_learned_prior_changes_the_samples_and_is_used_by_default(shipped, with_prior):
    learned = with_prior.sample(100, seed=0, progress=False)
    assert learned.attrs["prior"] == "learned"
    standard = with_prior.sample(100, seed=0, progress=False, prior="standard")
    assert standard.attrs["prior"] == "standard"
    pd.testing.assert_frame_equal(standard, shipped.sample(100, seed=0, progress=False))
    assert learned.smiles.tolist() != standard.smiles.tolist()
    with pytest.raises(ValueError, match="no learned prior"):
        shipped.sample(5, prior="learned")
    with pytest.raises(ValueError, match="unknown prior"):
        shipped.sample(5, prior="gaussian")


def test_learned_prior_survives_save_and_load_with_weights_only(with_prior, tmp_path):
    path = tmp_path / "m.pt"
    with_prior.save(path, half=True)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["prior"]["kind"] == "gmm" and raw["prior"]["scale_tril"].shape == (4, 64, 64)
    loaded = MolVAE.load(path, device="cpu")
    for name in ("log_weights", "means", "scale_tril"):
        assert torch.equal(getattr(loaded.prior, name), getattr(with_prior.prior, name))
    pd.testing.assert_frame_equal(loaded.sample(50, seed=5, progress=False, prior="learned"),
                                  with_prior.sample(50, seed=5, progress=False, prior="learned"))


def test_prior_log_prob_matches_scikit_learn(with_prior):
    from sklearn.mixture import GaussianMixture

    p = with_prior.prior
    gmm = GaussianMixture(p.n_components, covariance_type="full")
    gmm.weights_ = p.log_weights.exp().double().numpy()
    gmm.means_ = p.means.double().numpy()
    gmm.precisions_cholesky_ = np.linalg.inv(p.scale_tril.double().numpy()).transpose(0, 2, 1)
    z = with_prior.encode(mv.load_dataset("moses", "test", limit=1000)[-40:])
    np.testing.assert_allclose(p.log_prob(torch.as_tensor(z)).numpy(), gmm.score_samples(z), rtol=1e-4, atol=1e-3)
    # real molecules' latent means are far more likely under the fitted prior than random far-away points
    assert p.log_prob(torch.as_tensor(z)).mean() > p.log_prob(3 * torch.randn(40, 64)).mean() + 50


def test_diagonal_and_aggregate_priors(shipped):
    mols = mv.load_dataset("moses", "test", limit=300)
    agg = fit_prior(shipped, mols, kind="aggregate", n_components=50, seed=0)
    assert agg.kind == "aggregate" and agg.covariance == "diag" and agg.n_components == 50
    mu, logvar = shipped.posterior(mols)
    # every component is one molecule's posterior
    rows = [int(np.argmin(np.abs(mu - m).sum(1))) for m in agg.means.numpy()[:5]]
    np.testing.assert_allclose(agg.scales.numpy()[:5], np.exp(0.5 * logvar[rows]), rtol=1e-5)
    z = torch.as_tensor(mu[:10])
    ref = torch.distributions.Normal(agg.means[None], agg.scales[None]).log_prob(z[:, None]).sum(-1)
    torch.testing.assert_close(agg.log_prob(z), torch.logsumexp(ref, 1) - np.log(50), rtol=1e-4, atol=1e-3)
    diag = fit_prior(shipped, mols, covariance="diag", n_components=3, seed=0)
    assert diag.scales.shape == (3, 64) and diag.sample(7).shape == (7, 64)
    with pytest.raises(ValueError, match="needs at least"):
        fit_prior(shipped, mols[:5], n_components=4)


def test_a_damaged_prior_in_a_checkpoint_is_refused(with_prior, tmp_path):
    ckpt = with_prior.checkpoint_dict()
    ckpt["prior"]["means"] = ckpt["prior"]["means"][:, :10]
    with pytest.raises(CheckpointError, match="prior"):
        MolVAE.from_checkpoint(ckpt, device="cpu")
    ckpt = with_prior.checkpoint_dict()
    ckpt["prior"]["kind"] = "flow-from-elsewhere"
    with pytest.raises(CheckpointError, match="unknown prior kind"):
        MolVAE.from_checkpoint(ckpt, device="cpu")
    with pytest.raises(ValueError, match="positive scales"):
        GaussianMixturePrior(torch.zeros(1), torch.zeros(1, 2), scales=torch.tensor([[1.0, -1.0]]))


# ----------------------------------------------------------------------------- worker processes
UNGUARDED_SCRIPT = """
import sys, torch
import molvae as mv
torch.set_num_threads(1)
model = mv.load_pretrained(device="cpu")
df = model.sample(1500, seed=7, progress=False, faithful=False, batch_size=1500)
df[["smiles", "faithful"]].to_csv(sys.argv[1], index=False)
"""


def test_an_unguarded_script_decodes_large_batches_in_worker_processes(tmp_path):
    """A plain script (no ``if __name__ == "__main__":``) that decodes a batch big enough for the
    worker pool runs to the end, and the pool gives what the calling process alone gives."""
    import os
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text(UNGUARDED_SCRIPT)
    frames = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}.csv"
        env = dict(os.environ, MOLVAE_JOBS=jobs, OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        frames[jobs] = pd.read_csv(out)
    assert len(frames["2"]) == 1500 and frames["2"].smiles.notna().all()
    assert 0 < frames["2"].faithful.sum() < 1500
    pd.testing.assert_frame_equal(frames["1"], frames["2"])


def test_the_pool_splits_work_in_order_and_falls_back_in_process(monkeypatch):
    from molvae.utils import parallel

    items = [f"[C]{'[C]' * (i % 7)}" for i in range(3000)]
    expected = [(selfies_to_smiles(s), is_faithful(s, selfies_to_smiles(s))) for s in items]
    from molvae.tokenizer import decode_strings

    assert parallel.chunked_map(decode_strings, items, n_jobs=2, min_chunk=256) == expected
    assert parallel.chunked_map(decode_strings, items, n_jobs=1) == expected
    monkeypatch.setattr(parallel.sys, "platform", "darwin")  # no fork: in the calling process
    assert parallel.chunked_map(decode_strings, items, n_jobs=2) == expected
    monkeypatch.setenv("MOLVAE_JOBS", "3")
    assert parallel.default_jobs() == 3
