"""Plain helpers of the optimizer tests (fixtures live in ``tests/conftest.py``: ``search_model``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from molvae.optimization import LEDGER_KEY, OptimizationResult
from molvae.properties import compute

# 16 ZINC test molecules with QED in (0.45, 0.6): room to improve
LOW_QED_STARTS = [
    "Cc1c(/C=N/c2cc(Br)ccn2)c(O)n2c(nc3ccccc32)c1C#N",
    "CCOc1ccc(OCC)c([C@H]2C(C#N)=C(N)N(c3ccccc3C(F)(F)F)C3=C2C(=O)CCC3)c1",
    "CC(C)Cc1nc(SCC(=O)NC[C@@H]2CCCO2)c2c(=O)n(C)c(=O)n(C)c2n1",
    "COC(=O)[C@](NC(=O)c1cccc(Cl)c1)(Nc1ccc(Br)c[nH+]1)C(F)(F)F",
    "Cc1[nH]c2ccc(C(=O)Nc3cc(C(C)(C)C)nn3-c3ncccn3)cc2c1C",
    "C[C@H]1CCCN(c2ccc(C(=O)Nc3ccc(N4CCOCC4)cc3)cc2[N+](=O)[O-])C1",
    "Cc1occc1C(=O)/C(C#N)=C\\c1cccc(C(F)(F)F)c1",
    "CCC[C@]1(C(=O)N[C@@H]2CONC2=O)CC[NH2+]C1",
    "C=CCn1c(S[C@H](C)C(=O)N2CCC(C)CC2)nnc1-c1ccc(Cl)cc1",
    "C[C@H](CNC(=O)[C@H]1CC[NH2+][C@@H]1C)C[NH+]1CCCC1",
    "CN(C)c1ccc([C@H](CNC(=O)C(=O)Nc2ccccc2C#N)N2CC[NH+](C)CC2)cc1",
    "O=C(Nc1ccc(-c2nc3ccccc3o2)cc1)[C@H]1CCCN1S(=O)(=O)c1ccc(F)cc1",
    "C[C@H](OC(=O)c1nc(C2CC2)n2ccccc12)c1cnc2ccccc2c1",
    "Cc1nn(-c2nncc(-c3ccc(Cl)cc3)n2)c2c1[C@H](c1ccccc1)CC(=O)N2",
    "Cc1ccc2ncc(C(=O)Nc3ncccc3OCc3ccncc3)n2c1",
    "C=CCN1C(=O)/C(=C/c2ccccc2F)S/C1=N\\S(=O)(=O)c1cccs1",
]


class Counting:
    """An objective (QED) that records every molecule it is asked to score."""

    def __init__(self, interrupt_after: int | None = None):
        self.seen: list[str] = []
        self.interrupt_after = interrupt_after

    def __call__(self, smiles: list[str]) -> np.ndarray:
        if self.interrupt_after is not None and len(self.seen) >= self.interrupt_after:
            raise KeyboardInterrupt("simulated kill")
        self.seen.extend(smiles)
        return compute(smiles, ["qed"])["qed"].to_numpy()


def scored(res: OptimizationResult) -> pd.DataFrame:
    return res.history[res.history["status"] == "scored"]


def study_scored_smiles(study) -> list[str]:
    out = []
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get(LEDGER_KEY)
        if rec and rec.get("status") == "scored":
            out.append(rec["smiles"])
    return out
