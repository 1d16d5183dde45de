"""``molvae tokenize``: read a SMILES file, tokenize it and print token statistics.

    molvae tokenize FILE [--cache] [--column C] [--vocab V.json] [--save-vocab V.json] [--rejects R.csv]
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "cmd_tokenize"]


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = subparsers.add_parser("tokenize", parents=parents, help="tokenize a SMILES file and print token statistics")
    s.add_argument("input", help="CSV / TSV / .smi / .txt (gz ok)")
    s.add_argument("--column", help="SMILES column (default: detected)")
    s.add_argument("--cache", action="store_true", help="write the token arrays to the cache for training")
    s.add_argument("--vocab", help="use this vocabulary (JSON from --save-vocab) instead of fitting one")
    s.add_argument("--save-vocab", help="write the fitted vocabulary as JSON")
    s.add_argument("--max-length", type=int, help="longest molecule in tokens (default: longest seen)")
    s.add_argument("--rejects", help="write rejected rows (line, smiles, reason) to this CSV")
    s.add_argument("--jobs", type=int, help="processes (default: all cores)")
    s.set_defaults(func=cmd_tokenize)
    return s


def cmd_tokenize(args: argparse.Namespace) -> int:
    from collections import Counter

    import numpy as np

    from molvae.data import read_smiles, tokenize_file
    from molvae.tokenizer import SelfiesTokenizer

    smiles = read_smiles(args.input, column=args.column, rejects=args.rejects)
    tokenizer = SelfiesTokenizer.load(args.vocab) if args.vocab else None
    data = tokenize_file(smiles, tokenizer=tokenizer, max_length=args.max_length, cache=args.cache, n_jobs=args.jobs,
                         progress=not args.quiet)
    tok = data.tokenizer
    if len(data) == 0:
        raise ValueError(f"{args.input}: no molecule could be tokenized with this vocabulary")
    lengths = np.asarray(data.lengths, dtype=int) - 2
    counts: Counter[str] = Counter()
    for row, n in zip(np.asarray(data.ids[:200_000]), lengths[:200_000]):
        counts.update(tok.itos[i] for i in row[1 : n + 1])
    print(f"file: {args.input}")
    print(f"molecules read: {smiles.n_read:,}; invalid rows dropped: {smiles.n_rejected:,}")
    print(f"tokenized: {len(data):,}; rejected by the tokenizer: {data.n_failed:,}")
    print(f"vocabulary: {tok.vocab_size} tokens (4 special); max_length {tok.max_length}")
    print(f"tokens per molecule: mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"95th pct {np.percentile(lengths, 95):.0f}, max {lengths.max()}")
    print("most frequent tokens: " + ", ".join(f"{t} {c / counts.total():.1%}" for t, c in counts.most_common(10)))
    if args.cache:
        from molvae.utils.paths import cache_dir

        print(f"token cache: {cache_dir() / 'tokens' / data.key}")
    if args.save_vocab:
        tok.save(args.save_vocab)
        print(f"vocabulary written to {args.save_vocab}")
    return 0
