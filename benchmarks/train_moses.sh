#!/usr/bin/env bash
# Train the shipped MOSES model and export it (float16) to molvae/pretrained/moses.pt.
# Usage: bash benchmarks/train_moses.sh [RUN_DIR]   (re-run with the same RUN_DIR to resume)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/moses}
if [ -f "$run/last.pt" ]; then resume=--resume; else resume=; fi
molvae train --data moses --out "$run" --config benchmarks/train_moses.toml $resume
python -c "
import molvae as mv, sys
m = mv.MolVAE.load('$run/best.pt', device='cpu')
m.save('molvae/pretrained/moses.pt', half=True, metadata=dict(m.metadata, source='benchmarks/train_moses.sh'))
print('exported molvae/pretrained/moses.pt')
"
