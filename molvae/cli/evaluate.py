"""``molvae evaluate``: MOSES metrics of a model's samples, or of the molecules of a SMILES file.

    molvae evaluate [--model PATH] -n 30000 [--seed S ...] [-o report.json]
    molvae evaluate --smiles FILE [--column C] [-o report.json]        (any generator's output)

Prints one line per metric (mean and std over seeds); ``-o`` writes the whole report
(:func:`molvae.evaluate.evaluate`) as JSON.
"""

from __future__ import annotations

import argparse

from molvae.cli.common import PRIORS, SAMPLE_MODEL, load_model

__all__ = ["add_parser", "cmd_evaluate", "print_report"]


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("evaluate", parents=parents, help="MOSES metrics of samples or of a SMILES file")
    s.add_argument("-n", type=int, default=30_000, help="molecules sampled per seed")
    s.add_argument("--seed", type=int, nargs="+", default=[0], help="one run per seed; mean and std reported")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--no-faithful", dest="faithful", action="store_false",
                   help="score every decoded string (default: as `sample`, unfaithful strings redrawn)")
    s.add_argument("--prior", default="auto", choices=PRIORS)
    s.add_argument("--smiles", help="score this file's SMILES instead of sampling (any generator's output)")
    s.add_argument("--column", help="SMILES column of --smiles")
    s.add_argument("--reference", nargs="+", default=["test", "test_scaffolds"], help="MOSES reference sets")
    s.add_argument("--train", default="moses", help="training set for novelty: 'moses' or a SMILES file")
    s.add_argument("--max-reference", type=int, help="subsample the references (quick looks only)")
    s.add_argument("--n-reconstruct", type=int, default=0,
                   help="latent diagnostics and greedy reconstruction on this many MOSES test molecules")
    s.add_argument("-o", "--output", help="JSON report")
    s.set_defaults(func=cmd_evaluate)
    return s


def print_report(report: dict) -> None:
    """The metric table (mean, std over seeds) and the latent diagnostics, when there are some."""
    print(f"{'metric':<16}{'mean':>10}{'std':>10}")
    for m, v in report["summary"].items():
        mean, std = v["mean"], v["std"]
        print(f"{m:<16}{mean:>10.4f}{std:>10.4f}" if std == std else f"{m:<16}{mean:>10.4f}{'':>10}")
    if "latent" in report:
        lat = report["latent"]
        print(f"latent: active units {lat['active_units']} ({lat['active_fraction']:.0%}), KL {lat['kl_total']:.1f} nats, "
              f"MI {lat['mutual_info']:.2f}, greedy exact reconstruction {lat['recon_exact']:.3f} "
              f"of {lat['n_molecules']:,} MOSES test molecules")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from molvae.evaluate import evaluate
    from molvae.utils.io import atomic_write

    smiles = model = None
    if args.smiles:
        from molvae.data.readers import read_smiles

        smiles = list(read_smiles(args.smiles, column=args.column, validate=False))
    else:
        model = load_model(args.model, args.device, default=SAMPLE_MODEL)
    report = evaluate(model, n=args.n, seeds=args.seed, smiles=smiles, reference=args.reference, train=args.train,
                      max_reference=args.max_reference, temperature=args.temperature, faithful=args.faithful,
                      prior=args.prior, n_reconstruct=0 if args.smiles else args.n_reconstruct, progress=not args.quiet)
    if args.smiles:
        report["smiles_file"] = args.smiles
    else:
        report["model"] = args.model or f"shipped:{SAMPLE_MODEL}"
    print_report(report)
    if args.output:
        with atomic_write(args.output) as fh:
            json.dump(report, fh, indent=1, default=float)
        print(f"report written to {args.output}")
    return 0
