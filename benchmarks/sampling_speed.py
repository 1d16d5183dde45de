"""End-to-end sampling speed of the shipped models: z -> tokens -> SELFIES -> canonical SMILES.

    python benchmarks/sampling_speed.py [--n 10000] [--threads 2] [--models moses-sampler moses]

For each model, precision (float32, bf16 autocast) and filter (faithful strings only, every
string): wall time of ``model.sample(n)`` after a warm-up, molecules per second, and the
split between the GRU decoding and the string work (SELFIES decoding, RDKit canonical SMILES,
the faithfulness check) measured on one batch.  Writes the "sampling-speed" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["moses-sampler", "moses"])
    ap.add_argument("--note", default="the machine otherwise idle")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import molvae as mv
    from molvae.tokenizer import decode_strings, is_faithful, selfies_to_smiles
    from molvae.vae.sampling import draw_latent

    rows = []
    for name in args.models:
        model = mv.load_pretrained(name, device="cpu")
        model.sample(512, seed=99, progress=False, faithful=False)  # warm-up
        for precision in ("fp32", "bf16"):
            for faithful in (True, False):
                t = time.perf_counter()
                df = model.sample(args.n, seed=0, progress=False, faithful=faithful, precision=precision)
                wall = time.perf_counter() - t
                rows.append((name, precision, faithful, args.n / wall, df.attrs["n_drawn"] / wall,
                             df.attrs["acceptance_rate"]))
                print(rows[-1], flush=True)
        # where the time goes, on one batch of 2,048 latent points
        z = draw_latent(model, 2048, generator=torch.Generator().manual_seed(0))
        split = {}
        for precision in ("fp32", "bf16"):
            t = time.perf_counter()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                ids, _ = model.generate(z, method="sample", generator=torch.Generator().manual_seed(0))
            split[f"GRU {precision}"] = time.perf_counter() - t
        selfies = model.tokenizer.decode_selfies(ids.numpy())
        t = time.perf_counter()
        smiles = [selfies_to_smiles(s) for s in selfies]
        split["SELFIES -> canonical SMILES"] = time.perf_counter() - t
        t = time.perf_counter()
        [is_faithful(a, b) for a, b in zip(selfies, smiles)]
        split["faithfulness check"] = time.perf_counter() - t
        t = time.perf_counter()
        decode_strings(selfies)  # both, as sampling runs them (atom-order pre-check before re-encoding)
        split["both, as decode_strings runs them"] = time.perf_counter() - t
        rows.append((name, "split", split))
    cmd = f"python benchmarks/sampling_speed.py --n {args.n} --threads {args.threads} --models {' '.join(args.models)}"
    body = [
        "## Sampling speed (`benchmarks/sampling_speed.py`)",
        "",
        f"Command: `{cmd}`; {args.threads} torch threads, {args.note}; hardware: {hardware()}; commit {git_commit()}.",
        "End to end: latent draw, GRU decoding, SELFIES, RDKit canonical SMILES, faithfulness check; "
        "target >= 1,000 faithful molecules/s on 2 cores.",
        "",
        "| model | precision | faithful only | molecules/s returned | strings decoded/s | acceptance |",
        "|---|---|---|---|---|---|",
    ]
    splits = []
    for r in rows:
        if r[1] == "split":
            splits.append(f"- `{r[0]}`, one batch of 2,048: " + ", ".join(f"{k} {v:.2f} s" for k, v in r[2].items()))
        else:
            body.append(f"| {r[0]} | {r[1]} | {'yes' if r[2] else 'no'} | {r[3]:,.0f} | {r[4]:,.0f} | {r[5]:.3f} |")
    body += ["", "Where the time goes (one thread for the string work, which is pure Python and RDKit):", *splits]
    write_section("sampling-speed", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
