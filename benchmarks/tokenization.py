"""Tokenizer speed: encode/decode molecules/s, MOSES training-cache build and reload times.

    python benchmarks/tokenization.py [--n 20000] [--jobs 2]

Writes the "tokenize" section of benchmarks/RESULTS.md.  The cache is built in a fresh
temporary cache folder so the build time is a real first build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

from molvae.data import load_dataset, tokenize_file  # noqa: E402
from molvae.utils.paths import cache_dir  # noqa: E402
from molvae.tokenizer import SelfiesTokenizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="molecules for the encode/decode rates")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--skip-cache", action="store_true", help="skip the full MOSES cache build")
    args = ap.parse_args()

    test = load_dataset("moses", "test", limit=args.n)
    tok = SelfiesTokenizer.fit(test, n_jobs=1, progress=False)
    rows = []
    t = time.perf_counter()
    batch = tok.encode(test, n_jobs=1)
    enc1 = len(test) / (time.perf_counter() - t)
    rows.append(("encode, 1 process", f"{enc1:,.0f} mol/s"))
    big = test * max(1, 40_000 // len(test))
    t = time.perf_counter()
    tok.encode(big, n_jobs=args.jobs)
    rows.append((f"encode, {args.jobs} processes ({len(big):,} mol)", f"{len(big) / (time.perf_counter() - t):,.0f} mol/s"))
    t = time.perf_counter()
    tok.decode(batch.ids)
    rows.append(("decode to canonical SMILES, 1 process", f"{len(batch) / (time.perf_counter() - t):,.0f} mol/s"))

    if not args.skip_cache:
        train = load_dataset("moses", "train")
        real_cache = cache_dir()
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["MOLVAE_CACHE_DIR"] = tmp
            t = time.perf_counter()
            data = tokenize_file(train, n_jobs=args.jobs)
            build = time.perf_counter() - t
            t = time.perf_counter()
            again = tokenize_file(train)
            reload = time.perf_counter() - t
            assert len(again) == len(data)
            # keep the cache for training runs
            dest = real_cache / "tokens" / data.key
            if not dest.exists():
                shutil.copytree(Path(tmp) / "tokens" / data.key, dest)
            del os.environ["MOLVAE_CACHE_DIR"]
        rows.append((f"MOSES train cache build ({len(train):,} mol, {args.jobs} processes)", f"{build:.0f} s"))
        rows.append(("MOSES train cache reload (read file + hash + memory-map)", f"{reload:.1f} s"))
        rows.append(("MOSES train: rejected / vocabulary / max tokens", f"{data.n_failed} / {data.tokenizer.vocab_size} / {data.tokenizer.max_length}"))

    body = ["## Tokenizer (`benchmarks/tokenize.py`)", "",
            f"Command: `python benchmarks/tokenization.py --n {args.n} --jobs {args.jobs}`; hardware: {hardware()}; commit {git_commit()}.", "",
            "| measurement | value |", "|---|---|"]
    body += [f"| {a} | {b} |" for a, b in rows]
    write_section("tokenize", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
