"""Several trust regions at once (``n_regions``, TuRBO-m): distinct centers, one shared budget."""

from __future__ import annotations

import numpy as np
import pytest

from molvae.optimization.strategies.trust_region import TrustRegion


def test_three_regions_search_around_distinct_molecules_and_spend_the_budget(search_model, monkeypatch):
    import molvae as mv

    rounds: list[set[bytes]] = []
    box_points = TrustRegion._box_points

    def spy(self, zc, length, n):
        if self.regions:
            if not rounds or len(rounds[-1]) >= len(self.regions):
                rounds.append(set())
            rounds[-1].add(np.asarray(zc, np.float32).tobytes())
        return box_points(self, zc, length, n)

    monkeypatch.setattr(TrustRegion, "_box_points", spy)
    res = mv.optimize(search_model, "qed", budget=200, seed=0, progress=False, n_regions=3)
    assert res.n_oracle_calls == 200
    assert res.stats["n_regions"] == 3
    centers = res.stats["region_centers"]
    assert len(centers) == 3 and None not in centers and len(set(centers)) == 3
    scored = set(res.history.loc[res.history.status == "scored", "smiles"])
    assert set(centers) <= scored  # every box is centered on a molecule the oracle scored
    assert all(0.1 <= length <= 4.0 for length in res.stats["final_length"])
    # the latent candidates of a round come from three boxes around three different points
    assert rounds and max(len(r) for r in rounds) == 3


def test_one_region_is_the_single_box_search(search_model):
    import molvae as mv

    a = mv.optimize(search_model, "qed", budget=60, seed=3, progress=False)
    b = mv.optimize(search_model, "qed", budget=60, seed=3, progress=False, n_regions=1)
    assert a.history.smiles.tolist() == b.history.smiles.tolist()
    assert "n_regions" not in a.stats


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_n_regions_must_be_a_positive_integer(search_model, bad):
    import molvae as mv

    with pytest.raises(ValueError, match="n_regions"):
        mv.optimize(search_model, "qed", budget=10, progress=False, n_regions=bad)


def test_regions_never_center_on_a_molecule_the_model_cannot_encode(search_model):
    """Edits and crossovers of a start outside the vocabulary (Si) keep the Si; here they score
    best, so they beat every box's center: a box that moved onto one would have no latent
    point to search around."""
    import molvae as mv

    start = "CC(C)(C)c1ccc(cc1)C(=O)NCC[Si](C)(C)C"

    def si_first(smiles):
        return [1.0 + 0.01 * len(s) if "Si" in s else 0.01 * len(s) for s in smiles]

    res = mv.optimize(search_model, si_first, budget=150, seed=0, progress=False, start=[start], n_regions=3)
    assert res.n_oracle_calls == 150
    centers = [c for c in res.stats["region_centers"] if c is not None]
    assert centers and not any("Si" in c for c in centers)
