"""A user's plain script, without ``if __name__ == "__main__":``, runs the package's parallel work.

A spawned process pool re-runs the user's script in every worker, which dies with
``BrokenProcessPool`` (or recurses); molvae's pool forks, so the same script works from a
file, a notebook and the CLI alike.  The script below is what a chemist would write.
"""

from __future__ import annotations

import os
import subprocess
import sys

PLAIN_SCRIPT = """
import numpy as np
import torch
import molvae as mv
import molvae.utils.parallel as parallel

torch.set_num_threads(1)
smiles = mv.load_dataset("moses", "test")[:20000]   # all spelled by the shipped vocabulary
model = mv.load_pretrained(device="cpu")
z = model.encode(smiles)                     # 20,000 molecules: tokenized on the worker pool
pool_used = parallel._POOL is not None
head = model.encode(smiles[:300])            # small: tokenized in this process
props = mv.properties.compute(smiles[:6000], ["qed", "logp"])   # 6,000 unique: the pool again
serial = mv.properties.compute(smiles[:300], ["qed", "logp"], n_jobs=1)
print("shape", z.shape, "pool", pool_used)
print("same_z", bool(np.allclose(z[:300], head, atol=1e-5)))
print("same_props", bool(np.allclose(props[["qed", "logp"]].to_numpy()[:300], serial[["qed", "logp"]].to_numpy())))
print("finite", bool(np.isfinite(z).all()), "scored", int(props.qed.notna().sum()))
"""


def test_a_plain_script_encodes_20000_molecules_on_the_pool(tmp_path):
    script = tmp_path / "plain_script.py"
    script.write_text(PLAIN_SCRIPT)
    env = dict(os.environ, MOLVAE_JOBS="2", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BrokenProcessPool" not in proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["shape"] == "(20000, 64) pool True"
    assert lines["same_z"] == "True"
    assert lines["same_props"] == "True"
    assert lines["finite"] == "True scored 6000"
