#!/usr/bin/env bash
# Train the shipped conditional model and export it (float16) to molvae/pretrained/moses-conditional.pt:
#   fine-tune the shipped model (--init-from pretrained: molvae/pretrained/moses.pt) on MOSES train
#   with conditions logp, qed, sa, mw, tpsa (benchmarks/train_conditional.toml)      -> RUN_DIR
#   then export RUN_DIR/best.pt, once the run has reached its end.
# Usage: bash benchmarks/train_conditional.sh [RUN_DIR]     (default runs/moses_conditional)
# Re-run with the same RUN_DIR to resume a run that stopped at max_hours (the property values
# are kept in RUN_DIR/conditions.npz, so they are not computed again).  Afterwards:
#   python benchmarks/conditional.py --results      (errors vs. the unconditional baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/moses_conditional}
resume() { if [ -f "$1/last.pt" ]; then echo --resume; fi; }
molvae train --data moses --out "$run" --config benchmarks/train_conditional.toml --init-from pretrained $(resume "$run")
python - "$run" <<'PY'
import sys

import molvae as mv
from molvae.vae.checkpoint import load_checkpoint

run = sys.argv[1]
last = load_checkpoint(f"{run}/last.pt")
cfg = last["train_config"]
done = last["epoch"] >= cfg["epochs"] or (cfg["max_steps"] and last["step"] >= cfg["max_steps"])
if not done:
    print(f"{run}: stopped at step {last['step']} (epoch {last['epoch']} of {cfg['epochs']}); "
          "run this script again to resume, it exports when the run is complete")
    sys.exit(0)
m = mv.MolVAE.load(f"{run}/best.pt", device="cpu")
m.save("molvae/pretrained/moses-conditional.pt", half=True,
       metadata=dict(m.metadata, source="benchmarks/train_conditional.sh"))
print(f"exported molvae/pretrained/moses-conditional.pt (conditions {', '.join(m.conditions.names)})")
PY
