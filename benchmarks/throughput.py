"""Training and sampling throughput at two model sizes.

    python benchmarks/throughput.py [--threads 2] [--batch 512] [--steps 5] [--sample 4000]

Training: molecules/s over optimizer steps on length-bucketed MOSES batches (forward,
backward, Adam).  Sampling: end to end, z ~ N(0, I) -> tokens -> SELFIES -> canonical SMILES.
Writes the "throughput" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import git_commit, hardware, write_section  # noqa: E402

import torch  # noqa: E402

from molvae.config import ModelConfig  # noqa: E402
from molvae.data import BucketBatchSampler, load_dataset  # noqa: E402
from molvae.training.losses import elbo_loss  # noqa: E402
from molvae.utils.device import resolve_device  # noqa: E402
from molvae.vae.model import MolVAE  # noqa: E402
from molvae.tokenizer import SelfiesTokenizer  # noqa: E402

SIZES = {
    "default": ModelConfig(),
    "shipped": ModelConfig(embedding_dim=64, encoder_hidden_dim=256, latent_dim=64, decoder_hidden_dim=512, decoder_layers=1),
    "MOSES VAE size": ModelConfig(embedding_dim=64, encoder_hidden_dim=256, latent_dim=128, decoder_hidden_dim=512, decoder_layers=3),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sample", type=int, default=4000)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    smiles = load_dataset("moses", "test", limit=20_000)
    tok = SelfiesTokenizer.fit(smiles, n_jobs=1, progress=False)
    enc = tok.encode(smiles)
    rows = []
    for name, cfg in SIZES.items():
        model = MolVAE(tok, cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batches = BucketBatchSampler(enc.lengths, args.batch, seed=0).batches()
        n_mol, elapsed = 0, 0.0
        for i, idx in enumerate(batches[: args.steps + 1]):
            lengths = torch.as_tensor(enc.lengths[idx]).to(device)
            ids = torch.as_tensor(enc.ids[idx, : int(lengths.max())]).to(device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(ids, lengths, word_dropout=0.1)
                loss = elbo_loss(out["logits"], out["targets"], out["mu"], out["logvar"], 1.0, 0.1)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i > 0:  # the first step warms up allocators
                elapsed += time.perf_counter() - t
                n_mol += len(idx)
        train_rate = n_mol / elapsed
        model.eval()
        model.sample(256, seed=1, progress=False)  # warm-up
        t = time.perf_counter()
        df = model.sample(args.sample, seed=0, batch_size=1024, progress=False)
        sample_rate = len(df) / (time.perf_counter() - t)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, cfg, params, train_rate, sample_rate, df.valid.mean()))
        print(f"{name}: {params:,} parameters, train {train_rate:,.0f} mol/s, sample {sample_rate:,.0f} mol/s")
    body = [
        "## Throughput (`benchmarks/throughput.py`)",
        "",
        f"Command: `python benchmarks/throughput.py --threads {args.threads} --batch {args.batch} --steps {args.steps} "
        f"--sample {args.sample}`; device {device}; hardware: {hardware()}; commit {git_commit()}.",
        "Sampling is end to end (z -> tokens -> SELFIES -> canonical SMILES, untrained weights, so molecules run to "
        "typical lengths only roughly). Reference on the same kind of machine: MOSES VAE (molsets 0.3.1, batch 512) "
        "trains at ~67 mol/s and samples ~190 SMILES/s; targets at the MOSES size: >= 200 mol/s training, >= 2,000 mol/s sampling.",
        "",
        "| size | encoder | decoder | latent | parameters | train mol/s | sample mol/s | valid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, cfg, params, tr, sr, valid in rows:
        body.append(
            f"| {name} | biGRU {cfg.encoder_hidden_dim} x{cfg.encoder_layers} | GRU {cfg.decoder_hidden_dim} x{cfg.decoder_layers} "
            f"| {cfg.latent_dim} | {params:,} | {tr:,.0f} | {sr:,.0f} | {valid:.3f} |"
        )
    write_section(f"throughput-{device.type}", "\n".join(body))


if __name__ == "__main__":
    main()
