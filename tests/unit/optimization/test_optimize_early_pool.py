"""A larger candidate pool for the first calls of a run (``early_candidates``, ``early_calls``)."""

from __future__ import annotations

import pytest

from molvae.optimization.strategies.base import Strategy


def _pool_sizes(monkeypatch) -> list[tuple[int, int]]:
    """(calls so far, candidates ranked) of every round ranked by the surrogate."""
    sizes: list[tuple[int, int]] = []
    rank = Strategy._rank_and_evaluate

    def spy(self, cands, surrogate, u):
        if surrogate is not None:
            sizes.append((self.run.n_calls(), len(cands)))
        return rank(self, cands, surrogate, u)

    monkeypatch.setattr(Strategy, "_rank_and_evaluate", spy)
    return sizes


def test_the_pool_is_larger_until_early_calls_then_the_usual_size(search_model, monkeypatch):
    import molvae as mv

    sizes = _pool_sizes(monkeypatch)
    res = mv.optimize(search_model, "qed", budget=160, seed=0, progress=False, batch_size=16, n_candidates=48,
                      early_candidates=256, early_calls=80)
    assert res.n_oracle_calls == 160
    assert res.stats["n_candidates"] == 48 and res.stats["early_candidates"] == 256
    early = [n for calls, n in sizes if calls < 80]
    late = [n for calls, n in sizes if calls >= 80]
    assert early and late
    # a round never ranks more candidates than its pool size; the early rounds rank several times more
    assert max(late) <= 48
    assert min(early[1:]) > 2 * max(late)


def test_without_early_candidates_the_search_is_unchanged(search_model):
    import molvae as mv

    a = mv.optimize(search_model, "qed", budget=60, seed=3, progress=False)
    b = mv.optimize(search_model, "qed", budget=60, seed=3, progress=False, early_calls=30)
    assert list(a.history["smiles"]) == list(b.history["smiles"])
    assert "early_candidates" not in a.stats


@pytest.mark.parametrize("kwargs, match", [({"early_candidates": 0}, "early_candidates"),
                                           ({"early_candidates": 64, "early_calls": -1}, "early_calls")])
def test_bad_early_pool_options_are_clear_errors(search_model, kwargs, match):
    import molvae as mv

    with pytest.raises(ValueError, match=match):
        mv.optimize(search_model, "qed", budget=10, progress=False, **kwargs)
