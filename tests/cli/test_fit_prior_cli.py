"""``molvae fit-prior``: a learned prior fitted on a model's data, saved with the model, used by ``sample``."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from cli_helpers import cli

import molvae
from molvae.vae.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("cache_env")


def test_fit_prior_writes_a_model_that_samples_from_it(tiny_run, tmp_path):
    out = tmp_path / "with_prior.pt"
    argv = ["fit-prior", "--model", str(tiny_run["model"]), "--data", str(tiny_run["data"]), "--components", "2",
            "--covariance", "diag", "-o", str(out), "-q"]
    code, stdout, _ = cli(argv)
    assert code == 0
    assert "fitted on 40 molecules" in stdout  # the bad row is dropped by the reader
    model = molvae.MolVAE.load(out, device="cpu")
    assert model.prior is not None and model.prior.n_components == 2
    assert model.metadata["prior_n"] == 40 and model.metadata["prior_data"] == str(tiny_run["data"])
    learned, standard = tmp_path / "s.csv", tmp_path / "t.csv"
    assert cli(["sample", "--model", str(out), "-n", "10", "--seed", "0", "--no-faithful", "-o", str(learned),
                "-q"])[0] == 0
    assert cli(["sample", "--model", str(out), "-n", "10", "--seed", "0", "--no-faithful", "--prior", "standard",
                "-o", str(standard), "-q"])[0] == 0
    assert pd.read_csv(learned).smiles.tolist() != pd.read_csv(standard).smiles.tolist()
    code, _, err = cli([*argv[:-3], "--components", "500", "-o", str(out), "-q"])
    assert code == 2 and "needs at least 1000" in err


def test_fit_prior_on_a_random_subset(tiny_run, tmp_path):
    out = tmp_path / "with_prior.pt"
    code, stdout, _ = cli(["fit-prior", "--model", str(tiny_run["model"]), "--data", str(tiny_run["data"]), "-n", "25",
                           "--kind", "aggregate", "--components", "10", "--half", "-o", str(out), "-q"])
    assert code == 0 and "fitted on 25 molecules" in stdout
    model = molvae.MolVAE.load(out, device="cpu")
    assert model.metadata["prior_n"] == 25
    assert model.prior.kind == "aggregate" and model.prior.n_components == 10
    # an aggregate prior is the posteriors of molecules of the data: its means are latent means of them
    z = molvae.MolVAE.load(tiny_run["model"], device="cpu").encode(tiny_run["smiles"])
    dist = ((model.prior.means.numpy()[:, None, :] - z[None]) ** 2).sum(-1).min(axis=1)
    assert dist.max() < 1e-10
    assert all(v.dtype == torch.float16 for k, v in load_checkpoint(out)["state_dict"].items() if v.is_floating_point())


def test_fit_prior_with_conditions_lets_an_unconditional_model_sample_for_a_property(tiny_run, tmp_path):
    out = tmp_path / "joint.pt"
    code, stdout, _ = cli(["fit-prior", "--model", str(tiny_run["model"]), "--data", str(tiny_run["data"]),
                           "--components", "2", "--conditions", "logp,qed", "-o", str(out), "-q"])
    assert code == 0 and "conditions=['logp', 'qed']" in stdout
    model = molvae.MolVAE.load(out, device="cpu")
    assert model.prior.condition_names == ("logp", "qed") and model.prior.dim == model.latent_dim
    dest = tmp_path / "s.csv"
    assert cli(["sample", "--model", str(out), "-n", "6", "--seed", "0", "--no-faithful", "--condition", "logp=2",
                "-o", str(dest), "-q"])[0] == 0
    assert len(pd.read_csv(dest)) == 6
    code, _, err = cli(["sample", "--model", str(out), "-n", "2", "--condition", "sa=3", "-q"])
    assert code == 2 and "not fitted on ['sa']" in err
    code, _, err = cli(["fit-prior", "--model", str(tiny_run["model"]), "--data", str(tiny_run["data"]),
                        "--conditions", "logp,colour", "-o", str(out), "-q"])
    assert code == 2 and "unknown condition properties" in err
