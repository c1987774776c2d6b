#!/bin/bash
# What ran on a lent GPU machine in one call (run from the repository root there): the GPU speed table
# (benchmarks/gpu.py) while the training scenes render on the CPU cores, optionally the CLI edit on CUDA, then
# training of the embedded model from the shipped weights until a fixed deadline, then the EMA export.
# Results go to $OUT (the lending tool's output folder; set it yourself elsewhere); the weights come back as
# ema.tar.* pieces of 15 MB (cat them | tar -x). Needs a python3 with torch + CUDA; wheels of diffusers and
# importlib_metadata/lazy-importer in .whl/ when that python lacks them. Knobs (environment): TRAIN_END_S,
# BENCH_S (0 = no speed table), SCENES, SCENE_START, WORKERS, BATCH, LR, CROP (256 = whole scenes, the
# layout lesson of issue 14), EDIT_CHECK=1.
# Used on 2026-11-26: BENCH_S=190 TRAIN_END_S=470, then SCENE_START=6000 SCENES=4000 WORKERS=15 BENCH_S=0
# EDIT_CHECK=1 TRAIN_END_S=215 (after copying the first run's weights into server/sdedit/weights/landscape).
T0=$(date +%s); END_TRAIN=$((T0 + ${TRAIN_END_S:-450}))
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/server:$PWD/shared
python3 -c "import torch, diffusers, sdedit.engine, sdedit.train.loop; print('torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO GPU', 'cpus', __import__('os').cpu_count())" || exit 4
mkdir -p runs/gpu/data
(python3 -m sdedit.train.dataset --out runs/gpu/data/scenes_0.npy --start ${SCENE_START:-0} --count ${SCENES:-5000} --workers ${WORKERS:-12} > $OUT/render.log 2>&1) &
RENDER=$!
if [ "${BENCH_S:-170}" != 0 ]; then
  (cd benchmarks && timeout ${BENCH_S:-170} python3 gpu.py --out $OUT/gpu.json) > $OUT/gpu.txt 2>&1
  echo "gpu.py rc $? at $(( $(date +%s) - T0 )) s"; tail -15 $OUT/gpu.txt
fi
if [ -n "$EDIT_CHECK" ]; then  # the product path on CUDA: the CLI edit of the README demo, fixed seed
  for p in bf16 fp32; do python3 -m sdedit edit examples/lake.png -o $OUT/lake_cuda_$p.png --device cuda --precision $p --seed 3 --t0 0.5; echo "edit $p rc $?"; done
fi
wait $RENDER; echo "render done at $(( $(date +%s) - T0 )) s"; tail -2 $OUT/render.log
MIN=$(python3 -c "print(max(0.5, ($END_TRAIN - $(date +%s)) / 60))")
echo "training for $MIN min"
python3 -m sdedit.train --out runs/gpu --data runs/gpu/data --init server/sdedit/weights/landscape --minutes $MIN \
  --batch ${BATCH:-128} --crop ${CROP:-128} --lr ${LR:-3e-4} --precision bf16 --ema-decay 0.999 --export-every 2 --threads 8 \
  > $OUT/train.log 2>&1
echo "train rc $? at $(( $(date +%s) - T0 )) s"; grep -E "^step" $OUT/train.log | awk 'NR%20==0'; tail -4 $OUT/train.log
cp runs/gpu/loss.csv $OUT/ 2>/dev/null
tar -C runs/gpu -cf - ema_latest | split -b 15M - $OUT/ema.tar.
ls -la $OUT; echo "all done at $(( $(date +%s) - T0 )) s"
