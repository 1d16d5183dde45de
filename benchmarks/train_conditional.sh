#!/usr/bin/env bash
# Train the shipped conditional model and export it (float16) to molvae/pretrained/moses-conditional.pt:
#   stage 1: fine-tune the shipped model (--init-from pretrained: molvae/pretrained/moses.pt) on
#            MOSES train with conditions logp, qed, sa, mw, tpsa (benchmarks/train_conditional.toml)
#                                                                        -> RUN_DIR, RUN_DIR/stage1.pt
#   stage 2: fine-tune RUN_DIR/stage1.pt (stage 1's best model, saved in float16 as it shipped
#            until stage 2 existed) on another 500k molecules (benchmarks/train_conditional_stage2.toml)
#                                                                        -> RUN_DIR_s2
#   then export RUN_DIR_s2/best.pt, once that run has reached its end.
# Usage: bash benchmarks/train_conditional.sh [RUN_DIR]     (default runs/moses_conditional)
# Re-run with the same RUN_DIR to resume a stage that stopped at max_hours (the property values
# are kept in each run folder's conditions.npz, so they are not computed again).  Afterwards:
#   python benchmarks/conditional.py --results      (errors vs. the unconditional baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/moses_conditional}
run2=${run}_s2
resume() { if [ -f "$1/last.pt" ]; then echo --resume; fi; }
# exits 3 (and says so) while RUN's last.pt has not reached the end of its schedule
finished() {
python - "$1" <<'PY'
import sys

from molvae.vae.checkpoint import load_checkpoint

run = sys.argv[1]
last = load_checkpoint(f"{run}/last.pt")
cfg = last["train_config"]
if not (last["epoch"] >= cfg["epochs"] or (cfg["max_steps"] and last["step"] >= cfg["max_steps"])):
    print(f"{run}: stopped at step {last['step']} (epoch {last['epoch']} of {cfg['epochs']}); "
          "run this script again to resume, it exports when the run is complete")
    sys.exit(3)
PY
}
# save MODEL in float16 to OUT
export_half() {
python - "$1" "$2" <<'PY'
import sys

import molvae as mv

m = mv.MolVAE.load(sys.argv[1], device="cpu")
m.save(sys.argv[2], half=True, metadata=dict(m.metadata, source="benchmarks/train_conditional.sh"))
print(f"exported {sys.argv[2]} (conditions {', '.join(m.conditions.names)})")
PY
}

if [ ! -f "$run/stage1.pt" ]; then
  molvae train --data moses --out "$run" --config benchmarks/train_conditional.toml --init-from pretrained $(resume "$run")
  finished "$run" || exit 0
  export_half "$run/best.pt" "$run/stage1.pt"
fi
molvae train --data moses --out "$run2" --config benchmarks/train_conditional_stage2.toml --init-from "$run/stage1.pt" $(resume "$run2")
finished "$run2" || exit 0
export_half "$run2/best.pt" molvae/pretrained/moses-conditional.pt
