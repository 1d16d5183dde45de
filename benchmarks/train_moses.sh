#!/usr/bin/env bash
# Train the two shipped MOSES models and export them (float16) to molvae/pretrained/.
#   stage 1:  benchmarks/train_moses.toml           (250k molecules, free bits 0.1)         -> RUN_DIR
#   stage 2:  benchmarks/train_moses_finetune.toml  (from stage 1, one pass over all 1.58M
#             molecules, free bits 0.5)                                                  -> RUN_DIR_ft
#   stage 3a: benchmarks/train_moses_sampler.toml   (from stage 2, free bits 0.1, bf16)      -> RUN_DIR_sampler
#             -> molvae/pretrained/moses-sampler.pt  (what `sample` uses by default; N(0, I) prior:
#                a learned one measured no better for it, benchmarks/sample_quality.csv)
#   stage 3b: benchmarks/train_moses_search.toml    (from stage 2, free bits 0.5, bf16)      -> RUN_DIR_search
#             + a learned prior (32-component full-covariance GMM on 50k training posteriors)
#             -> molvae/pretrained/moses.pt          (encoding, reconstruction, optimization)
# Usage: bash benchmarks/train_moses.sh [RUN_DIR]
# Re-run with the same RUN_DIR to resume a stage that stopped early (max_hours); a stage that
# reached its end (or max_steps) is left as it is.  3a and 3b are independent: on two cores,
# run them side by side (one thread each, as their configs say) with STAGE=3a / STAGE=3b.
# Stage 3 ran its whole schedule (12,365 steps, one pass over MOSES train) in several sittings
# of max_hours, resumed with --resume from each run's last.pt; the shipped models are the
# end of it (2026-12-02).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/moses}
ft="${run}_ft"
stage=${STAGE:-all}
resume() { if [ -f "$1/last.pt" ]; then echo --resume; fi; }
if [ "$stage" = all ]; then
  molvae train --data moses --out "$run" --config benchmarks/train_moses.toml $(resume "$run")
  molvae train --data moses --out "$ft" --config benchmarks/train_moses_finetune.toml --init-from "$run/best.pt" $(resume "$ft")
fi
if [ "$stage" = all ] || [ "$stage" = 3a ]; then
  molvae train --data moses --out "${run}_sampler" --config benchmarks/train_moses_sampler.toml \
    --init-from "$ft/best.pt" $(resume "${run}_sampler")
  python -c "
import molvae as mv
m = mv.MolVAE.load('${run}_sampler/last.pt', device='cpu')
m.save('molvae/pretrained/moses-sampler.pt', half=True, metadata=dict(m.metadata, source='benchmarks/train_moses.sh (stage 3a)'))
print('exported molvae/pretrained/moses-sampler.pt')
"
fi
if [ "$stage" = all ] || [ "$stage" = 3b ]; then
  molvae train --data moses --out "${run}_search" --config benchmarks/train_moses_search.toml \
    --init-from "$ft/best.pt" $(resume "${run}_search")
  molvae fit-prior --model "${run}_search/last.pt" --data moses -n 50000 --kind gmm --components 32 \
    --covariance full --half -o molvae/pretrained/moses.pt
fi
