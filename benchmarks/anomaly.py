"""Anomaly detection with -log p(x): AUROC between MOSES test molecules and three decoy sets.

    python benchmarks/anomaly.py [--n 1000] [--k 1 100] [--threads 2] [--out benchmarks/anomaly.csv] [--results]

The score is ``-log p(x)`` (:func:`molvae.vae.likelihood.nll`, importance-weighted with ``k``
posterior samples; higher = more anomalous), computed with the shipped model for ``n``
random MOSES test molecules and for each decoy set:

* ``zinc_outside_moses``: ZINC250k molecules (the bundled valid + test subsets) that the
  vocabulary can spell but that MOSES's selection would have excluded: molecular weight
  outside 250-350, or failing the MCF/PAINS filters (``molvae.metrics.mol_passes_filters``),
  or more than 7 rotatable bonds.  Stereochemistry is removed first (MOSES has none, and the
  shipped vocabulary has no stereo tokens: without this only ZINC's stereo-free quarter
  would be eligible).
* ``random_selfies``: one random SELFIES string per test molecule, of the same token length,
  tokens drawn uniformly from the model's alphabet, decoded (valid, distinct molecules, not
  drug-like; mostly small: :func:`molvae.vae.likelihood.random_selfies_decoys`).
* ``selfies_edit``: each test molecule after one random SELFIES edit (replace, insert or
  delete one token; :func:`molvae.vae.likelihood.selfies_edit_decoys`).

For each ``k`` the table gives the AUROC (``sklearn.metrics.roc_auc_score``, decoys positive),
also of ``-log p(x) / (n_tokens + 1)`` (per-token NLL; it removes the advantage small
molecules have), and the scoring time in seconds per 1,000 molecules.  Prints a markdown
table, writes a CSV (``--out``) and, with ``--results``, the "anomaly" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

import molvae as mv  # noqa: E402
from molvae.chem import canonical  # noqa: E402
from molvae.vae.likelihood import random_selfies_decoys, score, selfies_edit_decoys  # noqa: E402
from molvae.metrics import mol_passes_filters  # noqa: E402
from molvae.properties import compute  # noqa: E402

SECTION = "anomaly"
MW_RANGE = (250.0, 350.0)
MAX_ROTATABLE = 7


def flatten_stereo(smiles: str) -> str | None:
    """Canonical SMILES without stereochemistry (MOSES's molecules have none)."""
    return canonical(smiles, isomeric=False)


def spellable(tokenizer, smiles: str) -> bool:
    try:
        tokenizer.encode_one(smiles)
    except ValueError:
        return False
    return True


def zinc_outside_moses(tokenizer, n: int, exclude: set[str], rng: np.random.Generator) -> pd.DataFrame:
    """Up to ``n`` spellable ZINC molecules outside MOSES's selection, with the criteria they fail.

    Candidates are visited in random order and the (slow) MCF/PAINS filters are only run on
    molecules inside the MW and rotatable-bond limits, until ``n`` are found.
    """
    pool = mv.load_dataset("zinc", "valid") + mv.load_dataset("zinc", "test")
    rows = []
    seen = set(exclude)
    for i in rng.permutation(len(pool)):
        smi = flatten_stereo(pool[i])
        if smi is None or smi in seen or not spellable(tokenizer, smi):
            continue
        seen.add(smi)
        props = compute([smi], ["mw", "rotatable_bonds"], n_jobs=1).iloc[0]
        mw_out = not (MW_RANGE[0] <= props.mw <= MW_RANGE[1])
        rot_out = props.rotatable_bonds > MAX_ROTATABLE
        if mw_out or rot_out:
            rows.append((smi, mw_out, rot_out, None))
        elif not mol_passes_filters(smi):
            rows.append((smi, False, False, True))
        if len(rows) >= n:
            break
    df = pd.DataFrame(rows, columns=["smiles", "mw_out", "rotatable_out", "fails_filters"])
    unknown = df.fails_filters.isna()
    df.loc[unknown, "fails_filters"] = [not mol_passes_filters(s) for s in df.smiles[unknown]]
    df["fails_filters"] = df.fails_filters.astype(bool)
    return df


def auroc(real: np.ndarray, decoy: np.ndarray) -> float:
    ok_r, ok_d = real[np.isfinite(real)], decoy[np.isfinite(decoy)]
    y = np.r_[np.zeros(len(ok_r)), np.ones(len(ok_d))]
    return float(roc_auc_score(y, np.r_[ok_r, ok_d]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="MOSES test molecules, and molecules per decoy set")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 100], help="posterior samples per molecule (several ok)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--batch-size", type=int, default=512, help="decoder rows per pass")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="moses", help="shipped model name or checkpoint path")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "anomaly.csv"))
    ap.add_argument("--results", action="store_true", help="write the --section section of benchmarks/RESULTS.md")
    ap.add_argument("--section", default=SECTION, help="RESULTS.md section name (several runs: several sections)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = (mv.MolVAE.load(args.model, device=args.device) if os.path.exists(args.model)
             else mv.load_pretrained(args.model, device=args.device))
    tok = model.tokenizer
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    moses_test = mv.load_dataset("moses", "test")
    test = [moses_test[i] for i in rng.choice(len(moses_test), size=min(args.n, len(moses_test)), replace=False)]
    lengths = tok.encode(test).lengths - 2
    exclude = set(test)
    zinc = zinc_outside_moses(tok, args.n, exclude, rng)
    decoys = {
        "zinc_outside_moses": zinc.smiles.tolist(),
        "random_selfies": [d for d in random_selfies_decoys(tok, lengths, seed=args.seed, exclude=test) if d],
        "selfies_edit": [d for d in selfies_edit_decoys(tok, test, seed=args.seed) if d and d not in exclude],
    }
    print(f"decoys built in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{name} {len(s):,}" for name, s in decoys.items())
          + f"; ZINC outside MOSES: MW {int(zinc.mw_out.sum())}, rotatable bonds {int(zinc.rotatable_out.sum())}, "
            f"filters {int(zinc.fails_filters.sum())} (a molecule may fail several)")

    rows = []
    for k in args.k:
        sets = {"moses_test": test, **decoys}
        scored, n_mol, seconds = {}, 0, 0.0
        for name, smiles in sets.items():
            t = time.perf_counter()
            scored[name] = score(model, smiles, k=k, batch_size=args.batch_size, seed=args.seed, progress=True)
            seconds += time.perf_counter() - t
            n_mol += len(smiles)
        per_1000 = 1000.0 * seconds / max(n_mol, 1)
        real = scored["moses_test"]
        real_nll = -real.log_px.to_numpy()
        real_tok = real_nll / (real.n_tokens.to_numpy(dtype=float) + 1)
        for name in decoys:
            d = scored[name]
            d_nll = -d.log_px.to_numpy()
            d_tok = d_nll / (d.n_tokens.to_numpy(dtype=float) + 1)
            rows.append({
                "decoy_set": name, "n_test": len(test), "n_decoys": len(d), "k": k,
                "auroc": auroc(real_nll, d_nll), "auroc_per_token": auroc(real_tok, d_tok),
                "mean_nll_test": float(np.nanmean(real_nll)), "mean_nll_decoys": float(np.nanmean(d_nll)),
                "mean_tokens_test": float(real.n_tokens.mean()), "mean_tokens_decoys": float(d.n_tokens.mean()),
                "seconds_per_1000": per_1000, "threads": args.threads,
            })
        print(f"k={k}: {n_mol:,} molecules scored in {seconds:.1f} s ({per_1000:.1f} s per 1,000)")
    df = pd.DataFrame(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    df.to_csv(args.out, index=False)

    ks = list(dict.fromkeys(args.k))
    head = ["decoy set", "molecules", "mean tokens"] + [f"AUROC k={k}" for k in ks] + [f"per-token AUROC k={k}" for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in decoys:
        sub = df[df.decoy_set == name].set_index("k")
        cells = [name, f"{int(sub.n_decoys.iloc[0]):,}", f"{sub.mean_tokens_decoys.iloc[0]:.1f}"]
        cells += [f"{sub.auroc[k]:.3f}" for k in ks] + [f"{sub.auroc_per_token[k]:.3f}" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    timing = ", ".join(f"k={k}: {df[df.k == k].seconds_per_1000.iloc[0]:.1f} s" for k in ks)
    mean_tokens = df.mean_tokens_test.iloc[0]
    body = [
        f"`python benchmarks/anomaly.py --n {args.n} --k {' '.join(map(str, ks))} --threads {args.threads} "
        f"--model {args.model}` "
        f"(commit {git_commit()}; {hardware()})",
        "",
        f"Score -log p(x) of `{args.model}`; {len(test):,} random MOSES test molecules (mean {mean_tokens:.1f} "
        "tokens) against each decoy set; AUROC with the decoys as positives.",
        "",
        *lines,
        "",
        f"Seconds per 1,000 molecules scored ({args.threads} threads): {timing}.",
    ]
    print("\n".join(body))
    print(f"wrote {args.out}")
    if args.results:
        write_section(args.section, f"## Anomaly detection (`benchmarks/anomaly.py`, {args.section})\n\n" + "\n".join(body))


if __name__ == "__main__":
    main()
