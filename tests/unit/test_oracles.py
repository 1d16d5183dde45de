"""molvae.oracles (PMO tasks scored by guacamol, PMO's AUC top-10) and benchmarks/pmo.py (slow)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import load_benchmark
from rdkit import Chem, DataStructs
from rdkit.Chem import QED, rdFingerprintGenerator

from molvae.data import load_dataset
from molvae.oracles import PMO_COMPARABLE, PMO_ORACLES, TDC_DIFFERS, get_oracle, pmo_auc, random_screening, top_n_curve

pytest.importorskip("guacamol")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "pmo.py"

CELECOXIB = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"
ALBUTEROL = "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1"
MESTRANOL = "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1"
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAMPHOR, MENTHOL = "CC1(C)C2CCC1(C)C(=O)C2", "CC(C)C1CCC(C)CC1O"
# the reference molecule of GuacaMol's deco_hop and scaffold_hop tasks
HOP_REFERENCE = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C"


@pytest.fixture(scope="module")
def zinc5():
    return load_dataset("zinc", "test")[:5]


# ----------------------------------------------------------------------------- the task list
def test_task_lists():
    assert len(PMO_ORACLES) == 20 == len(set(PMO_ORACLES))
    assert list(PMO_ORACLES) == sorted(PMO_ORACLES)  # PMO's tables list the tasks alphabetically
    assert set(TDC_DIFFERS) == {"isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "sitagliptin_mpo", "zaleplon_mpo"}
    assert len(PMO_COMPARABLE) == 16 and not set(PMO_COMPARABLE) & set(TDC_DIFFERS)
    assert {"drd2", "gsk3b", "jnk3"}.isdisjoint(PMO_ORACLES)
    with pytest.raises(ValueError, match="unknown PMO oracle"):
        get_oracle("drd2")


def test_every_oracle_scores_zinc_molecules_in_unit_interval(zinc5):
    for name in PMO_ORACLES:
        oracle = get_oracle(name)
        values = oracle(zinc5)
        assert values.shape == (5,), name
        assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all(), (name, values)
        assert oracle.__name__ == name and oracle.n_scored == 5 and oracle.seconds > 0


# ----------------------------------------------------------------------------- pinned values
@pytest.mark.parametrize(
    "name, smiles",
    [
        ("celecoxib_rediscovery", CELECOXIB),
        ("troglitazone_rediscovery", "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O"),
        ("thiothixene_rediscovery", "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1"),
        ("albuterol_similarity", ALBUTEROL),
        ("mestranol_similarity", MESTRANOL),
        ("isomers_c7h8n2o2", "Cc1ccc([N+](=O)[O-])cc1N"),  # 2-methyl-5-nitroaniline, C7H8N2O2
        ("isomers_c7h8n2o2", "Nc1ccc(C(N)=O)cc1O"),  # another C7H8N2O2
    ],
)
def test_target_molecules_score_one(name, smiles):
    assert get_oracle(name).score(smiles) == pytest.approx(1.0)


def test_similarity_tasks_use_guacamol_thresholds():
    # albuterol_similarity: Tanimoto of FCFP4 count fingerprints, divided by 0.75 and clipped at 1
    fcfp4 = rdFingerprintGenerator.GetMorganGenerator(
        radius=2, atomInvariantsGenerator=rdFingerprintGenerator.GetMorganFeatureAtomInvGen())

    def sim(smiles):
        return DataStructs.TanimotoSimilarity(fcfp4.GetSparseCountFingerprint(Chem.MolFromSmiles(smiles)),
                                              fcfp4.GetSparseCountFingerprint(Chem.MolFromSmiles(ALBUTEROL)))

    oracle = get_oracle("albuterol_similarity")
    far, close = "CC(C)NCC(O)c1ccc(O)c(O)c1", "CC(C)(C)NCC(O)c1ccc(O)c(C)c1"
    assert 0 < sim(far) < 0.75 < sim(close) < 1
    assert oracle.score(far) == pytest.approx(sim(far) / 0.75)
    assert oracle.score(close) == 1.0


def test_qed_is_rdkit_qed():
    assert get_oracle("qed").score(ASPIRIN) == pytest.approx(QED.qed(Chem.MolFromSmiles(ASPIRIN)))
    assert get_oracle("qed").score(ASPIRIN) == pytest.approx(0.5501, abs=1e-4)


def test_median1_is_geometric_mean_of_ecfp4_count_similarities():
    ecfp4 = rdFingerprintGenerator.GetMorganGenerator(radius=2)
    fp = lambda s: ecfp4.GetSparseCountFingerprint(Chem.MolFromSmiles(s))  # noqa: E731
    mol = "CC(C)C1CCC(C)(C)C(=O)C1"
    expected = math.sqrt(DataStructs.TanimotoSimilarity(fp(mol), fp(CAMPHOR))
                         * DataStructs.TanimotoSimilarity(fp(mol), fp(MENTHOL)))
    assert 0 < expected < 1
    assert get_oracle("median1").score(mol) == pytest.approx(expected)
    # camphor itself: similarity 1 to camphor, so the score is the square root of its similarity to menthol
    assert get_oracle("median1").score(CAMPHOR) == pytest.approx(
        math.sqrt(DataStructs.TanimotoSimilarity(fp(CAMPHOR), fp(MENTHOL))))


def test_hop_tasks_on_their_reference_molecule():
    # deco_hop: mean of (pharmacophore similarity, clipped: 1), no sulfone (0), no aminobenzothiazole (0),
    # the quinazoline scaffold (1) -> 0.5; scaffold_hop: similarity 1, decoration kept 1, scaffold absent 0 -> 2/3
    assert get_oracle("deco_hop").score(HOP_REFERENCE) == pytest.approx(0.5)
    assert get_oracle("scaffold_hop").score(HOP_REFERENCE) == pytest.approx(2 / 3)


def test_valsartan_smarts_is_zero_without_the_substructure():
    assert get_oracle("valsartan_smarts").score(ASPIRIN) == 0.0
    # with the SMARTS (N-formyl-N-methyl biphenylmethylamine) the score is the property terms' geometric mean
    assert get_oracle("valsartan_smarts").score("CN(C=O)Cc1ccc(-c2ccccc2)cc1") > 0.0


def test_phosphorus_free_molecules_are_capped_on_c9h10n2o2pf2cl():
    # C9H10BrClF2N2O2: every element and the total atom count of C9H10N2O2PF2Cl match except P (0 of 1),
    # whose term is exp(-1/2): the 8-term geometric mean is exp(-1/16), the most a P-free molecule can get
    oracle = get_oracle("isomers_c9h10n2o2pf2cl")
    assert oracle.score("O=C(NC1CC1)C(F)(F)C(Cl)(Br)C=CC(N)=O") == pytest.approx(math.exp(-1 / 16))
    assert oracle.score("NC(=O)C(F)(F)P(Cl)c1ccc(CO)cc1N") == pytest.approx(1.0)  # C9H10N2O2PF2Cl


def test_invalid_molecules_get_nan():
    oracle = get_oracle("scaffold_hop")
    values = oracle(["not a smiles", "", "C1CC", HOP_REFERENCE, "C(C)(C)(C)(C)C"])
    assert np.isnan(values[[0, 1, 2, 4]]).all()  # guacamol itself would give "" a score of 1/3
    assert values[3] == pytest.approx(2 / 3)
    assert oracle.n_scored == 1


def test_missing_guacamol_raises_a_helpful_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "guacamol", None)
    with pytest.raises(ImportError, match=r"bash setup.sh.*--no-deps guacamol"):
        get_oracle("qed")


def test_importing_guacamol_leaves_the_rdkit_log_alone():
    code = ("from rdkit import rdBase; before = rdBase.LogStatus(); import molvae.oracles as o; o.get_oracle('qed'); "
            "import sys; sys.exit(0 if rdBase.LogStatus() == before and 'guacamol' in sys.modules else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# ----------------------------------------------------------------------------- AUC top-10
def test_auc_full_run_two_checkpoints():
    # top-1 = 1 at 100 and 200 calls: trapezoids (0,0)-(100,1)-(200,1) = 50 + 100, over 200
    assert pmo_auc([1.0] * 200, budget=200, top_n=1) == pytest.approx(0.75)


def test_auc_early_stop_holds_the_last_value():
    # 100 calls of 0.5, budget 300: 100 * 0.25 + 200 * 0.5 = 125, over 300
    assert pmo_auc([0.5] * 100, budget=300, top_n=1) == pytest.approx(125 / 300)


def test_auc_top10_with_a_partial_last_segment():
    scores = np.arange(150) / 1000  # increasing: the top 10 are the 10 latest
    # at 100: mean(0.090..0.099) = 0.0945; at 150: mean(0.140..0.149) = 0.1445
    expected = (100 * 0.0945 / 2 + 50 * (0.0945 + 0.1445) / 2) / 150
    assert pmo_auc(scores, budget=150) == pytest.approx(expected)
    calls, values = top_n_curve(scores, budget=150)
    assert calls.tolist() == [100, 150] and values == pytest.approx([0.0945, 0.1445])


def test_auc_with_fewer_molecules_than_top_n_nan_as_zero_and_order_matters():
    # freq 2, top 3: at 2 calls mean(1, .5) = .75; at 3 calls mean(1, .5, .2); then held to 4
    top3 = (1 + 0.5 + 0.2) / 3
    expected = (2 * 0.75 / 2 + 1 * (0.75 + top3) / 2 + 1 * top3) / 4
    assert pmo_auc([1.0, 0.5, 0.2], budget=4, top_n=3, freq=2) == pytest.approx(expected)
    assert pmo_auc([1.0, 0.5, float("nan")], budget=4, top_n=3, freq=2) == pytest.approx(
        pmo_auc([1.0, 0.5, 0.0], budget=4, top_n=3, freq=2))
    # the same scores found late give a smaller area than found early
    assert pmo_auc([0.0] * 100 + [1.0] * 100, 200, top_n=1) == pytest.approx(50 / 200)
    assert pmo_auc([1.0] * 100 + [0.0] * 100, 200, top_n=1) == pytest.approx(0.75)


def test_auc_ignores_calls_beyond_the_budget_and_empty_runs():
    assert pmo_auc([0.2] * 100 + [1.0] * 100, budget=100, top_n=1) == pytest.approx(0.1)
    assert pmo_auc([], budget=100) == 0.0
    with pytest.raises(ValueError):
        pmo_auc([1.0], budget=0)


def test_auc_of_constant_scores_over_many_checkpoints():
    # constant c from the first call: area c * (budget - freq / 2), whatever the number of checkpoints
    assert pmo_auc([0.4] * 1000, budget=1000) == pytest.approx(0.4 * (1000 - 50) / 1000)


def test_random_screening_on_a_small_pool():
    pool = load_dataset("zinc", "test")[:300]
    (row,) = random_screening(["qed"], n=200, seed=1, pool=pool)
    rng = np.random.default_rng(1)
    picked = [pool[i] for i in rng.permutation(len(pool))[:200]]
    scores = get_oracle("qed")(picked)
    assert row["auc"] == pytest.approx(pmo_auc(scores, 200)) and row["n"] == 200
    assert row["top1"] == pytest.approx(scores.max()) and row["top10"] == pytest.approx(np.sort(scores)[-10:].mean())
    with pytest.raises(ValueError):
        random_screening(["qed"], n=301, pool=pool)


# ----------------------------------------------------------------------------- the benchmark script
@pytest.mark.slow
def test_pmo_script_quick_mode(tmp_path):
    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    table = tmp_path / "RESULTS.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path), "--results", str(table)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=ROOT,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results.read_bytes() if results.exists() else None) == before  # --results kept it

    runs = json.loads((tmp_path / "runs.json").read_text())["runs"]
    assert len(runs) == 2
    for rec in runs.values():
        name = rec["oracle"]
        curve = np.genfromtxt(tmp_path / f"{name}-seed0.csv", delimiter=",", names=True)
        assert curve["call"].tolist() == [100, 200, 300] and rec["n_calls"] == 300 == rec["budget"]
        assert (np.diff(curve["top10_mean"]) >= 0).all() and (np.diff(curve["best"]) >= 0).all()
        assert ((curve["best"] >= curve["top10_mean"]) & (curve["best"] <= 1)).all()
        # the AUC is the trapezoid area under the logged checkpoints
        area = np.trapezoid(np.r_[0, curve["top10_mean"]], np.r_[0, curve["call"]]) / 300
        assert rec["auc_top10"] == pytest.approx(area, rel=1e-5)
        assert rec["top10"] == pytest.approx(curve["top10_mean"][-1], rel=1e-5)
        # the best molecules really score what the record says
        oracle = get_oracle(name)
        for smiles, score in rec["best"]:
            assert oracle.score(smiles) == pytest.approx(score, abs=1e-4)
        assert rec["best"][0][1] == pytest.approx(curve["best"][-1], abs=1e-4)
        assert 0 < rec["oracle_s"] < rec["wall_s"]
    by_name = {r["oracle"]: r for r in runs.values()}
    assert by_name["qed"]["top10"] > 0.85  # QED is easy: random ZINC molecules reach 0.94
    text = table.read_text()
    assert "<!-- pmo -->" in text and "| qed | " in text and "| celecoxib_rediscovery | " in text
    assert "(2 of 16 oracles run)" in text and "| REINVENT | 9.73 |" in text
    assert "--quick" in text and "not comparable" in text
    assert (tmp_path / "curves.png").stat().st_size > 10_000 and "curves.png" in text


def _pmo_module():
    return load_benchmark("pmo")


def test_pmo_script_strategy_options_are_typed_and_part_of_the_setting():
    pmo = _pmo_module()
    args = type("A", (), {"set": ["crossover_fraction=0.25", "finetune-every=500", "surrogate=none", "scale=data"]})
    opts = pmo.strategy_options(args)
    assert opts == {"crossover_fraction": 0.25, "finetune_every": 500, "surrogate": None, "scale": "data"}
    assert pmo.setting_key(10, "trust_region", 32, "moses", opts).endswith(
        "model=moses crossover_fraction=0.25 finetune_every=500 scale=data surrogate=None")
    assert pmo.setting_key(10, "trust_region", 32, "moses") == "budget=10 strategy=trust_region batch_size=32 model=moses"
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        pmo.strategy_options(type("A", (), {"set": ["crossover_fraction"]}))


def test_pmo_curves_plot_one_panel_per_task_with_runs(tmp_path):
    pmo = _pmo_module()
    for seed in (0, 1):
        (tmp_path / f"qed-seed{seed}.csv").write_text("call,best,top10_mean\n100,0.9,0.8\n200,0.94,0.9\n")
    path = pmo.plot_curves(tmp_path, ["qed", "median1"], 200, {"rows": [{"oracle": "qed", "top10": 0.93}]})
    assert path == tmp_path / "curves.png" and path.stat().st_size > 5_000
    assert pmo.plot_curves(tmp_path, ["median1"], 200) is None  # no runs of it: no picture


def test_a_pmo_task_is_an_objective_by_name():
    from molvae.optimization.objectives import parse_objectives as _parse_objectives

    (obj,) = _parse_objectives("celecoxib_rediscovery", "maximize")
    values, err = obj(["Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1", "not a smiles"])
    assert err is None and values[0] == pytest.approx(1.0) and np.isnan(values[1])
    with pytest.raises(ValueError, match="PMO task"):
        _parse_objectives("no_such_task", "maximize")


def test_pmo_paired_script_pairs_runs_by_task_and_seed(tmp_path):
    paired = load_benchmark("pmo_paired")
    base = "budget=10000 strategy=trust_region batch_size=32 model=moses"

    def write(out_dir, option, aucs):
        out_dir.mkdir()
        runs = {}
        for (oracle, seed), auc in aucs.items():
            runs[f"{base}{option} oracle={oracle} seed={seed}"] = {"auc_top10": auc}
            (out_dir / f"{oracle}-seed{seed}.csv").write_text(f"call,best,top10_mean\n500,1,{auc / 2}\n1000,1,{auc}\n")
        # a run of another setting in the same file must be left out
        runs[f"{base} n_candidates=2048 oracle=qed seed=0"] = {"auc_top10": 0.0}
        (out_dir / "runs.json").write_text(json.dumps({"runs": runs, "screening": None}))

    write(tmp_path / "a", "", {("qed", 0): 0.90, ("median1", 0): 0.30, ("median1", 1): 0.34, ("deco_hop", 2): 0.6})
    write(tmp_path / "b", " n_start=100", {("qed", 0): 0.92, ("median1", 0): 0.36, ("median1", 1): 0.30})
    a = paired.select(tmp_path / "a", [], 10_000)
    b = paired.select(tmp_path / "b", ["n_start=100"], 10_000)
    assert set(a) == {("qed", 0), ("median1", 0), ("median1", 1), ("deco_hop", 2)} and len(b) == 3
    assert paired.select(tmp_path / "b", [], 10_000) == {}  # its runs all have an option
    text = paired.table(tmp_path / "a", a, tmp_path / "b", b, [500, 1000])
    assert "| median1 | 0,1 | 0.320 | 0.330 | +0.060 / -0.040 | 0.160 / 0.165 | 0.320 / 0.330 |" in text
    assert "| qed | 0 | 0.900 | 0.920 | +0.020 |" in text and "deco_hop" not in text  # no pair
    assert "seed 0: 2 of the 16 comparable tasks on both sides; sum a 1.200, b 1.280, b - a +0.080" in text
    assert "all 3 pairs: mean b - a +0.0133 a run" in text
