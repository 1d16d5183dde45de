"""Candidates carried over rounds (``carry_rounds``): a deeper ranking pool for one round's generation cost."""

from __future__ import annotations

import pytest

from molvae.optimization.strategies.base import Strategy


def _pool_sizes(monkeypatch) -> list[int]:
    sizes: list[int] = []
    rank = Strategy._rank_and_evaluate

    def spy(self, cands, surrogate, u):
        if surrogate is not None:
            sizes.append(len(cands))
        return rank(self, cands, surrogate, u)

    monkeypatch.setattr(Strategy, "_rank_and_evaluate", spy)
    return sizes


def test_unscored_candidates_stay_in_the_ranking_for_later_rounds(search_model, monkeypatch):
    import molvae as mv

    sizes = _pool_sizes(monkeypatch)
    plain = mv.optimize(search_model, "qed", budget=160, seed=0, progress=False, n_candidates=128)
    plain_sizes, sizes[:] = list(sizes), []
    carried = mv.optimize(search_model, "qed", budget=160, seed=0, progress=False, n_candidates=128, carry_rounds=3)
    assert carried.n_oracle_calls == 160
    scored = carried.history.loc[carried.history.status == "scored", "smiles"]
    assert scored.is_unique  # a carried molecule is never scored twice
    assert carried.stats["carry_rounds"] == 3
    # some of the scored molecules were proposed in an earlier round than the one that scored them
    assert 0 < carried.stats["carried_scored"] <= len(scored)
    # from the fourth ranked round on, the pool holds several rounds' leftovers: far more than one round's
    assert min(sizes[3:]) > max(plain_sizes)
    assert "carry_rounds" not in plain.stats


def test_no_carry_is_the_search_as_before(search_model):
    import molvae as mv

    a = mv.optimize(search_model, "qed", budget=60, seed=3, progress=False)
    b = mv.optimize(search_model, "qed", budget=60, seed=3, progress=False, carry_rounds=0)
    assert list(a.history["smiles"]) == list(b.history["smiles"])


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_carry_rounds_must_be_a_non_negative_integer(search_model, bad):
    import molvae as mv

    with pytest.raises(ValueError, match="carry_rounds"):
        mv.optimize(search_model, "qed", budget=10, progress=False, carry_rounds=bad)
