"""``molvae optimize``: latent-space molecular optimization from the command line.

    molvae optimize [--model PATH] --objective qed --budget 500 -o out.csv
    molvae optimize --objective qed:1,sa:-0.2 --start "CCOc1ccccc1" --min-similarity 0.4 -o out.csv
    molvae optimize --objective qed --storage sqlite:///study.db --study run1 -o out.csv   # resumable;
        # start the same command on several machines (one shared --storage) to share the budget

:func:`molvae.cli.main.build_parser` registers it with ``add_parser(sub, parents=[verbosity, model_opts])``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["add_parser", "cmd_optimize", "parse_objective"]

logger = logging.getLogger("molvae")


def parse_objective(text: str) -> str | dict[str, float]:
    """``"qed"`` -> ``"qed"``; ``"qed:1,sa:-0.2"`` -> ``{"qed": 1.0, "sa": -0.2}`` (a name alone weighs 1)."""
    text = text.strip()
    if not text:
        raise ValueError("empty --objective")
    if "," not in text and ":" not in text:
        return text
    weights: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition(":")
        name = name.strip()
        try:
            weights[name] = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"--objective: bad weight {weight!r} for {name!r} (use name:weight,name:weight)") from None
    return weights


def _read_lines(path: str) -> list[str]:
    from molvae.data import read_smiles

    return list(read_smiles(path, validate=False))


# The names of molvae.optimization.STRATEGIES and SAMPLERS, spelled out so that building the
# parser (``molvae --help``) does not import the optimizer, RDKit and Optuna; a test keeps
# them equal to the registries.
STRATEGY_CHOICES = ("trust_region", "gradient", "optuna")
SAMPLER_CHOICES = ("cmaes", "tpe", "gp", "random", "nsga2")


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``optimize``; ``parents`` bring ``--model``/``--device`` and the verbosity flags."""
    s = subparsers.add_parser(
        "optimize",
        parents=parents,
        help="optimize molecules for a property in the latent space",
        description="Search the latent space for molecules that maximize (or minimize) an objective, "
        "within a budget of distinct scored molecules.",
    )
    s.add_argument("--objective", default="qed",
                   help="property name (qed, logp, sa, penalized_logp, ...), a PMO/GuacaMol task (median1, "
                        "celecoxib_rediscovery, ...) or weighted sum of properties name:weight,name:weight")
    s.add_argument("--direction", default="maximize", choices=["maximize", "minimize"])
    s.add_argument("--budget", type=int, default=500, help="distinct molecules to score (default 500)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", nargs="+", metavar="SMILES", help="start molecules (scored first, count as calls)")
    s.add_argument("--start-file", help="file of start molecules (SMILES file or CSV)")
    s.add_argument("--n-start", type=int, help="prior start molecules when no --start is given")
    s.add_argument("--min-similarity", type=float, help="Tanimoto to the nearest start molecule must be at least this")
    s.add_argument("--similarity-to", nargs="+", metavar="SMILES", help="similarity references (default: the start molecules)")
    s.add_argument("--smarts", action="append", help="required substructure (repeatable)")
    s.add_argument("--max-mw", type=float, help="molecular weight at most")
    s.add_argument("--max-sa", type=float, help="synthetic accessibility at most")
    s.add_argument("--max-heavy-atoms", type=int)
    s.add_argument("--novel", action="store_true",
                   help="exclude training molecules (--train-file; the shipped model: MOSES train)")
    s.add_argument("--train-file", help="training SMILES for --novel")
    s.add_argument("--strategy", default="trust_region", choices=STRATEGY_CHOICES)
    s.add_argument("--sampler", choices=SAMPLER_CHOICES, help="Optuna sampler for --strategy optuna (default cmaes)")
    s.add_argument("--surrogate", choices=["tanimoto", "mlp", "gp", "none"],
                   help="candidate ranking model for --strategy trust_region (default tanimoto)")
    s.add_argument("--crossover-fraction", type=float,
                   help="share of each round's candidates made by graph crossover of the best molecules "
                        "(trust_region; 0 turns it off)")
    s.add_argument("--graph-mutation-fraction", type=float,
                   help="share of each round's candidates made by one-move graph mutations of the best molecules "
                        "(trust_region; default 0)")
    s.add_argument("--substituent-fraction", type=float,
                   help="share of each round's candidates made by substituent swaps on the best molecules "
                        "(trust_region; default 0)")
    s.add_argument("--finetune-every", type=int, metavar="CALLS",
                   help="fine-tune a copy of the decoder on the best molecules every CALLS oracle calls "
                        "(trust_region; 0 turns it off)")
    s.add_argument("--n-regions", type=int,
                   help="trust regions searched at once around distinct good molecules (trust_region; default 1)")
    s.add_argument("--carry-rounds", type=int, metavar="ROUNDS",
                   help="keep a round's unscored candidates in the ranking this many more rounds (trust_region; "
                        "default 0)")
    s.add_argument("--n-candidates", type=int, metavar="N",
                   help="candidates the surrogate ranks a round (trust_region; default 512, 256 for rounds of 1-2)")
    s.add_argument("--early-candidates", type=int, metavar="N",
                   help="candidates ranked a round while fewer than --early-calls molecules are scored "
                        "(trust_region; default: --n-candidates throughout)")
    s.add_argument("--early-calls", type=int, metavar="CALLS",
                   help="oracle calls that --early-candidates applies to (trust_region; default 3000)")
    s.add_argument("--batch-size", type=int, default=None,
                   help="molecules scored per round (default: 32; for the trust region budget // 24, at least 2)")
    s.add_argument("--storage", help="Optuna storage: sqlite:///study.db, postgresql://..., journal:///path.log")
    s.add_argument("--study", help="study name in --storage (default molvae-optimize)")
    s.add_argument("--stale-after", type=float, help="seconds after which a silent worker's reservations are freed "
                   "(journal storage; RDB URLs use heartbeats)")
    s.add_argument("--top", type=int, default=10, help="molecules to print (default 10)")
    s.add_argument("-o", "--output", help="history CSV (the best molecules go to OUTPUT.top.csv)")
    s.set_defaults(func=cmd_optimize)
    return s


def _top_path(output: str) -> Path:
    p = Path(output)
    return p.with_name(p.stem + ".top" + (p.suffix or ".csv"))


def cmd_optimize(args: argparse.Namespace) -> int:
    import pandas as pd

    from molvae.vae.checkpoint import load_pretrained
    from molvae.vae.model import MolVAE
    from molvae.optimization import optimize

    device = getattr(args, "device", None) or "auto"
    model_path = getattr(args, "model", None)
    model = load_pretrained(device=device) if model_path is None else MolVAE.load(model_path, device=device)

    start = list(args.start or [])
    if args.start_file:
        start += _read_lines(args.start_file)
    bounds = {}
    if args.max_mw is not None:
        bounds["mw"] = (None, args.max_mw)
    if args.max_sa is not None:
        bounds["sa"] = (None, args.max_sa)
    train_smiles = None
    if args.train_file:
        train_smiles = _read_lines(args.train_file)
    elif args.novel:
        if model_path is not None:
            raise ValueError("--novel with --model needs --train-file (the molecules the model was trained on)")
        from molvae.data import load_dataset

        train_smiles = load_dataset("moses", "train")
    kwargs = {}
    if args.sampler:
        if args.strategy != "optuna":
            raise ValueError("--sampler applies to --strategy optuna")
        kwargs["sampler"] = args.sampler
    if args.surrogate:
        if args.strategy != "trust_region":
            raise ValueError("--surrogate applies to --strategy trust_region")
        kwargs["surrogate"] = None if args.surrogate == "none" else args.surrogate
    for opt in ("crossover_fraction", "graph_mutation_fraction", "substituent_fraction", "finetune_every",
                "n_regions", "carry_rounds", "n_candidates", "early_candidates", "early_calls"):
        value = getattr(args, opt)
        if value is not None:
            if args.strategy != "trust_region":
                raise ValueError(f"--{opt.replace('_', '-')} applies to --strategy trust_region")
            kwargs[opt] = (value or None) if opt == "finetune_every" else value
    quiet = bool(getattr(args, "quiet", False))
    result = optimize(
        model,
        parse_objective(args.objective),
        budget=args.budget,
        seed=args.seed,
        start=start or None,
        strategy=args.strategy,
        min_similarity=args.min_similarity,
        smarts=args.smarts,
        bounds=bounds or None,
        novel=args.novel,
        train_smiles=train_smiles,
        max_heavy_atoms=args.max_heavy_atoms,
        storage=args.storage,
        study_name=args.study,
        batch_size=args.batch_size,
        progress=not quiet,
        direction=args.direction,
        similarity_to=args.similarity_to,
        n_start=args.n_start,
        stale_after=args.stale_after,
        **kwargs,
    )
    print(result.summary())
    top = result.top(args.top)
    cols = [c for c in ["smiles", "score", *result.objectives, "similarity", "sa", "mw", "call", "source"] if c in top.columns]
    cols = list(dict.fromkeys(cols))
    with pd.option_context("display.max_colwidth", 80, "display.width", 160):
        print(top[cols].to_string(index=False) if len(top) else "no feasible molecule found")
    if args.output:
        result.to_csv(args.output)
        top_path = _top_path(args.output)
        result.top(max(args.top, 100)).to_csv(top_path, index=False)
        print(f"wrote {len(result.history):,} molecules to {args.output} and the best to {top_path}")
    return 0
