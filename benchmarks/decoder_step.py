"""A/B of the decoder step: ``torch.nn.GRU`` against the precomputed step (``vae.decoding._Stepper``).

    python benchmarks/decoder_step.py [--model moses] [--n 2048] [--threads 1]

Decodes the same latent points (N(0, I), seed 0) greedily, by sampling in float32 and by
sampling under bfloat16 autocast (where the precomputed step runs its products in bf16),
once with each step, and prints seconds and whether the tokens agree (in bf16 they need
not: the rounding differs).  Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch

import molvae as mv
from molvae.vae import decoding


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="moses")
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = mv.load_pretrained(args.model)
    model.eval()
    z = torch.randn(args.n, model.latent_dim, generator=torch.Generator().manual_seed(0))
    fast = decoding._fast_steps

    def run(use_fast: bool, method: str, bf16: bool):
        decoding._fast_steps = fast if use_fast else (lambda *a: None)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                t = time.perf_counter()
                ids, _ = decoding.generate(model, z, method=method, generator=torch.Generator().manual_seed(1))
                return ids, time.perf_counter() - t
        finally:
            decoding._fast_steps = fast

    print(f"{'decoding':<22} {'nn.GRU s':>9} {'precomputed s':>14}  same tokens")
    for method, bf16 in (("greedy", False), ("sample", False), ("sample", True)):
        ref, t_ref = run(False, method, bf16)
        new, t_new = run(True, method, bf16)
        name = f"{method} {'bf16' if bf16 else 'fp32'}"
        print(f"{name:<22} {t_ref:9.2f} {t_new:14.2f}  {bool(torch.equal(ref, new))}")


if __name__ == "__main__":
    main()
