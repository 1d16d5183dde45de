#!/usr/bin/env bash
# Train the shipped MOSES model and export it (float16) to molvae/pretrained/moses.pt.
#   stage 1: benchmarks/train_moses.toml           (250k molecules, free bits 0.1)  -> RUN_DIR
#   stage 2: benchmarks/train_moses_finetune.toml  (continues from stage 1's best.pt for one
#            pass over all 1.58M molecules, free bits 0.5)                           -> RUN_DIR_ft
# Usage: bash benchmarks/train_moses.sh [RUN_DIR]
# Re-run with the same RUN_DIR to resume a stage that stopped early (max_hours); a stage that
# reached its end (or max_steps) is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/moses}
ft="${run}_ft"
resume() { if [ -f "$1/last.pt" ]; then echo --resume; fi; }
molvae train --data moses --out "$run" --config benchmarks/train_moses.toml $(resume "$run")
molvae train --data moses --out "$ft" --config benchmarks/train_moses_finetune.toml --init-from "$run/best.pt" $(resume "$ft")
python -c "
import molvae as mv
m = mv.MolVAE.load('$ft/best.pt', device='cpu')
m.save('molvae/pretrained/moses.pt', half=True, metadata=dict(m.metadata, source='benchmarks/train_moses.sh'))
print('exported molvae/pretrained/moses.pt')
"
