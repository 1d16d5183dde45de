"""``molvae fit-prior``: fit a learned latent prior (the aggregate posterior) and save the model with it.

    molvae fit-prior [--model PATH] --data moses|FILE [-n 100000] [--components 32]
                     [--conditions logp,qed] -o model.pt

``--conditions``: fit the joint of z and those RDKit properties, so that ``molvae sample
--model model.pt --condition logp=2.5`` draws z given the property (any model; a conditional
model also decodes with it).
"""

from __future__ import annotations

import argparse

from molvae.cli.common import load_model

__all__ = ["add_parser", "cmd_fit_prior"]


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("fit-prior", parents=parents,
                              help="fit a learned latent prior (the aggregate posterior) and save the model with it")
    s.add_argument("--data", required=True, help="moses | zinc | NAME:SPLIT | a SMILES file (the model's training data)")
    s.add_argument("--column", help="SMILES column of a CSV file (default: detected)")
    s.add_argument("-n", type=int, default=100_000, help="molecules drawn at random from the data (0: all)")
    s.add_argument("--kind", default="gmm", choices=["gmm", "aggregate"])
    s.add_argument("--components", type=int, default=32)
    s.add_argument("--covariance", default="full", choices=["full", "diag"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--conditions", metavar="NAME,...",
                   help="properties to fit jointly with z (e.g. logp,qed,sa,mw,tpsa), for sampling with --condition")
    s.add_argument("--half", action="store_true", help="store the weights in float16")
    s.add_argument("-o", "--output", required=True, help="checkpoint to write (the model and its prior)")
    s.set_defaults(func=cmd_fit_prior)
    return s


def cmd_fit_prior(args: argparse.Namespace) -> int:
    import numpy as np

    from molvae.data import resolve_smiles_source
    from molvae.vae.prior import fit_prior

    model = load_model(args.model, args.device)
    smiles = resolve_smiles_source(args.data, column=args.column)
    if not smiles:
        raise ValueError(f"no molecules in {args.data}")
    if args.n and len(smiles) > args.n:
        pick = np.random.default_rng(args.seed).choice(len(smiles), size=args.n, replace=False)
        smiles = [smiles[i] for i in np.sort(pick)]
    model.prior = fit_prior(model, smiles, kind=args.kind, n_components=args.components, covariance=args.covariance,
                            seed=args.seed, progress=not args.quiet, conditions=args.conditions)
    meta = dict(getattr(model, "metadata", {}), prior_data=str(args.data), prior_n=len(smiles))
    model.save(args.output, half=args.half, metadata=meta)
    print(f"{model.prior!r} fitted on {model.prior.info['n_molecules']:,} molecules in "
          f"{model.prior.info['fit_seconds']} s; wrote {args.output}")
    return 0
