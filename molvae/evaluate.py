"""The evaluation pipeline: sample a model (or read molecules), score them with the MOSES suite.

``molvae evaluate`` and ``benchmarks/moses.py`` call :func:`evaluate`.

>>> import molvae as mv
>>> report = mv.evaluate(mv.load_pretrained("moses-sampler"), n=1000, seeds=[0])   # doctest: +SKIP
>>> report["summary"]["FCD/Test"]["mean"]                                           # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from molvae.data.datasets import load_dataset
from molvae.metrics.suite import get_all_metrics, metrics_table
from molvae.training.diagnostics import latent_report
from molvae.vae.model import MolVAE

__all__ = ["evaluate"]


def evaluate(
    model=None,
    n: int = 30_000,
    seeds: Sequence[int] = (0,),
    smiles: Sequence[str] | None = None,
    reference: str | Sequence[str] = "test",
    train: str | Sequence[str] | None = "moses",
    max_reference: int | None = None,
    temperature: float = 1.0,
    faithful: bool = True,
    prior: str = "auto",
    n_reconstruct: int = 0,
    progress: bool = True,
) -> dict:
    """MOSES metrics of ``n`` samples per seed from ``model``, or of the molecules in ``smiles``.

    ``model`` is a :class:`~molvae.MolVAE` (or a checkpoint path); ``smiles`` scores given
    molecules instead (then ``model`` is only used for ``n_reconstruct``).  ``reference`` names
    the MOSES reference sets (``test``, ``test_scaffolds``) or is a SMILES list; ``train`` is the
    novelty reference.  Returns a dict: ``runs`` (one metrics dict per seed, with the sampler's
    acceptance rate), ``summary`` (mean and std of each metric over seeds) and, with
    ``n_reconstruct``, ``latent`` (active units, KL, mutual information and greedy
    reconstruction on that many MOSES test molecules).
    """

    if model is not None and isinstance(model, (str, os.PathLike)):

        model = MolVAE.load(model)
    if smiles is None and model is None:
        raise ValueError("evaluate needs a model to sample or a list of smiles to score")
    scores = dict(reference=reference, train=train, max_reference=max_reference)
    report: dict = {"n": n, "reference": reference}
    runs = []
    if smiles is not None:
        report["n"] = len(smiles)
        runs.append({"seed": None, "metrics": get_all_metrics(list(smiles), **scores)})
    else:
        report["faithful"] = faithful
        for seed in seeds:
            df = model.sample(n, seed=seed, temperature=temperature, progress=progress, faithful=faithful, prior=prior)
            report["prior"] = df.attrs["prior"]
            generated = [s if v else "" for s, v in zip(df.smiles, df.valid)]
            metrics = get_all_metrics(generated, **scores)
            metrics["acceptance"] = float(df.attrs["acceptance_rate"])
            runs.append({"seed": seed, "metrics": metrics, "n_drawn": int(df.attrs["n_drawn"])})
    if n_reconstruct and model is not None:

        report["latent"] = latent_report(model, load_dataset("moses", "test", limit=n_reconstruct))
    table = metrics_table([r["metrics"] for r in runs])
    report["runs"] = runs
    report["summary"] = {m: {"mean": row["mean"], "std": row["std"]} for m, row in table.iterrows()}
    return report
