"""OptimizationResult (molvae.optimization.result): Pareto ranks, the two top-10 areas, the history table.

No model: results are built from ledger records as :func:`optimize` builds them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from molvae.optimization import OptimizationResult
from molvae.optimization.result import history_frame, pareto_ranks
from molvae.oracles import pmo_auc


def _record(call: int, smiles: str, score: float | None, feasible: bool = True, status: str = "scored") -> dict:
    return {"smiles": smiles, "status": status, "call": call, "values": [score], "score": score,
            "feasible": feasible, "reasons": "" if feasible else "similarity 0.1 < 0.4", "props": {"similarity": 0.5},
            "source": "trust_region", "strategy": "trust_region", "round": 1, "worker": "w", "z": "none",
            "time": 1000.0 + call, "trial": call - 1}


def _result(records: list[dict], budget: int, direction: str = "maximize") -> OptimizationResult:
    return OptimizationResult(
        history=history_frame(records, ["qed"], t0=1000.0), objectives=["qed"], directions=[direction],
        budget=budget, n_oracle_calls=sum(r["status"] == "scored" for r in records),
        n_oracle_calls_this_run=0, strategy="trust_region", elapsed_s=1.0,
    )


def test_pareto_ranks():
    v = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0], [0.5, 0.5], [np.nan, 3.0]])
    ranks = pareto_ranks(v, ["maximize", "maximize"])
    assert ranks.tolist()[:4] == [0, 0, 0, 1]
    assert ranks[4] == len(v)  # NaN last
    assert pareto_ranks(v[:4], ["minimize", "minimize"]).tolist() == [1, 0, 0, 0]


def test_history_frame_columns_types_and_order():
    recs = [_record(2, "CCN", 0.4), _record(1, "CCO", None, feasible=False),
            dict(_record(0, "CCC", None, feasible=False, status="infeasible"), call=None, trial=None, time=999.0)]
    h = history_frame(recs, ["qed"], t0=1000.0)
    assert h["smiles"].tolist() == ["CCC", "CCO", "CCN"]  # by time
    assert h["time_s"].tolist() == [-1.0, 1.0, 2.0]
    assert str(h["call"].dtype) == "Int64" and h["call"].isna().tolist() == [True, False, False]
    assert h["score"].dtype == float and np.isnan(h["score"].iloc[1])
    assert {"round", "call", "smiles", "score", "qed", "similarity", "feasible", "status", "reasons", "strategy",
            "source", "worker", "trial", "time_s"} <= set(h.columns)
    empty = history_frame([], ["qed", "sa"], t0=0.0)
    assert empty.empty and {"score", "qed", "sa", "status"} <= set(empty.columns)


def test_pmo_auc_is_pmos_number_and_differs_from_the_per_call_curve():
    # calls 1-100 score 1.0 but are infeasible (a constraint on objective values), 101-200 feasible at 0.5
    recs = [_record(i, f"C{'C' * i}O", 1.0, feasible=False) for i in range(1, 101)]
    recs += [_record(i, f"C{'C' * i}N", 0.5) for i in range(101, 201)]
    res = _result(recs, budget=200)
    scores = [1.0] * 100 + [0.5] * 100
    # PMO: every scored molecule, feasible or not, top-10 every 100 calls: (100 * 1/2 + 100 * 1) / 200
    assert res.pmo_auc() == pytest.approx(pmo_auc(scores, 200)) == pytest.approx(0.75)
    assert res.pmo_auc(top_n=1, freq=50) == pytest.approx(pmo_auc(scores, 200, top_n=1, freq=50))
    # per call over feasible molecules: 0 until the 10th feasible one (call 110), then 0.5
    assert res.top10_curve_auc() == pytest.approx(91 * 0.5 / 200)
    assert not hasattr(res, "auc_top10")  # the old, ambiguous name is gone


def test_pmo_auc_counts_failed_calls_as_zero_and_holds_the_last_value():
    recs = [_record(i, "C" * i, None if i % 2 else 0.8, feasible=not i % 2) for i in range(1, 51)]
    res = _result(recs, budget=100)  # half the budget used
    scores = [np.nan if i % 2 else 0.8 for i in range(1, 51)]
    assert res.pmo_auc() == pytest.approx(pmo_auc(scores, 100))
    # top-10 of 25 scores of 0.8 at call 50, held to call 100: (50 * 0.8 / 2 + 50 * 0.8) / 100
    assert res.pmo_auc() == pytest.approx(0.6)
    assert _result([], budget=10).pmo_auc() == 0.0


def test_pmo_auc_refuses_a_minimized_objective():
    res = _result([_record(1, "CCO", 2.0)], budget=10, direction="minimize")
    with pytest.raises(ValueError, match="maximized"):
        res.pmo_auc()


def test_curve_top_and_best_follow_the_direction():
    recs = [_record(i, "C" * i, float(i)) for i in range(1, 13)]
    res = _result(recs, budget=12, direction="minimize")
    c = res.curve()
    assert c["best"].tolist() == [1.0] * 12
    assert c["top10_mean"].isna().sum() == 9 and c["top10_mean"].iloc[-1] == pytest.approx(5.5)
    assert res.top(3)["score"].tolist() == [1.0, 2.0, 3.0] and res.best_smiles == "C"


def test_to_csv_replaces_the_file_whole(tmp_path):
    res = _result([_record(i, "C" * i, 0.1 * i) for i in range(1, 6)], budget=5)
    path = tmp_path / "deep" / "history.csv"
    res.to_csv(path)
    path.write_text("old")
    res.to_csv(path)
    back = pd.read_csv(path)
    assert back["smiles"].tolist() == ["C" * i for i in range(1, 6)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.csv"]  # no temporary file left
