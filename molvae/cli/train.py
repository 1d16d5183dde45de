"""``molvae train``: train a VAE on a SMILES file or a bundled data set.

    molvae train --data FILE|moses|zinc|NAME:SPLIT --out DIR [--config run.toml] [--epochs N] [--resume]
    molvae train --data moses --out DIR --conditions logp,qed      # a conditional VAE
    torchrun --nproc_per_node 2 -m molvae train ...                # distributed (molvae.training.distributed)
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "cmd_train", "condition_names"]


def condition_names(text: str) -> tuple[str, ...]:
    """``--conditions logp,qed`` -> validated names (argparse error, exit 2, otherwise)."""
    from molvae.vae.conditions import check_names

    try:
        return check_names(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("train", parents=parents, help="train a VAE")
    s.add_argument("--data", required=True, help="SMILES file, or 'moses' (bundled MOSES train), or NAME:SPLIT")
    s.add_argument("--out", required=True, help="run folder (config.toml, metrics.csv, last.pt, best.pt)")
    s.add_argument("--config", help="TOML file with [model] and [train] tables")
    s.add_argument("--column", help="SMILES column of a CSV")
    s.add_argument("--epochs", type=int)
    s.add_argument("--max-molecules", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--max-hours", type=float, help="stop cleanly after this wall time (resume later)")
    s.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: start from this checkpoint ('pretrained' for the shipped model); its sizes "
                        "and vocabulary are kept, molecules with other tokens are counted and left out")
    s.add_argument("--conditions", type=condition_names, metavar="NAMES",
                   help="a conditional VAE on these properties, e.g. logp,qed,sa,mw,tpsa (molvae.properties)")
    s.add_argument("--device", help="auto | cpu | cuda")
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.set_defaults(func=cmd_train)
    return s


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from molvae.config import ModelConfig, TrainConfig, load_config
    from molvae.data import resolve_smiles_source
    from molvae.training.loop import train

    model_cfg, train_cfg = load_config(args.config) if args.config else (ModelConfig(), TrainConfig())
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "max_molecules": args.max_molecules, "device": args.device,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "max_hours": args.max_hours,
        "init_from": args.init_from, "conditions": args.conditions,
    }.items() if v is not None}
    train_cfg = dataclasses.replace(train_cfg, **overrides)
    smiles = resolve_smiles_source(args.data, column=args.column)
    model = train(smiles, args.out, model_cfg, train_cfg, resume=args.resume, progress=not args.quiet)
    print(f"best model: {Path(args.out) / 'best.pt'} (latent {model.latent_dim}, vocabulary {model.tokenizer.vocab_size})")
    return 0
