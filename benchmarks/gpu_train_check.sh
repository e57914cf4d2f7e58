#!/usr/bin/env bash
# Issue 14 on a GPU, prepared: where a training step's time goes, then `make demo`'s recipe at
# more steps (benchmarks/bench_learning_curve.py). Run from the repo root on one NVIDIA GPU.
#
# The GPU box has no MiniLM (88 MB, too big to carry), PyAV, webdataset or jsonargparse, and
# fetches nothing, so prepare .gpu/ here first (about a minute; .gpu/ must be git-ignored):
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/whl .gpu/d48/curated
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .gpu/whl av==18.1.0 webdataset==1.0.2 braceexpand \
#       jsonargparse==4.53.0 docstring_parser typeshed_client==2.15.0
#   clipmill demo --output /tmp/d48 --preset default   # or any `clipmill demo` output
#   cp -r /tmp/d48/curated/shards .gpu/d48/curated/ && cp /tmp/d48/eval_prompts.txt .gpu/d48/
#   python benchmarks/bench_learning_curve.py --demo /tmp/d48 --save-text-states .gpu/text_states.pt
# Then, with the device tool: `bash benchmarks/gpu_train_check.sh`, carrying [".gpu"] (~45 MB).
#
# 1. 200 steps under Lightning's simple profiler: time per hook (batch fetch, training step,
#    backward, optimizer step). On an H200 a 500-step run took 105 s (2026-11-27), far more
#    than a 2.4M-parameter model's GPU work: this says where it goes.
# 2. The learning curve: STEPS (default 2000,5000), two runs side by side, each stopped at
#    CURVE_S seconds (default 300); a row is printed as each run ends.
set -u
results="${OUT:-benchmarks/data}"
mkdir -p "$results"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
nvidia-smi --query-gpu=name,memory.total --format=csv
rm -rf /tmp/d && mkdir -p /tmp/d && cp -r .gpu/d48/* /tmp/d/
rate="@span_s=clip --data.decode_cache_mb 256 --data.num_workers 4"
# An array, not a function: `timeout` runs programs, not shell functions.
curve=(python3 benchmarks/bench_learning_curve.py --demo /tmp/d --text-states .gpu/text_states.pt)
echo "== 1. 200 steps under the simple profiler"
timeout 240 "${curve[@]}" --steps 200 --variant "prof=$rate --trainer.profiler simple" \
    > "$results/profile.log" 2>&1
grep -E -A40 "FIT Profiler Report" "$results/profile.log" | head -45
grep -E "^\| curve" "$results/profile.log"
echo "== 2. the learning curve"
timeout "${CURVE_S:-300}" "${curve[@]}" --steps "${STEPS:-2000,5000}" --parallel 2 \
    --variant "clip=$rate" --json "$results/curve.json" 2>&1 |
    grep --line-buffered -E "^\||machine|Error" | tee "$results/curve.md"
for g in /tmp/d/samples_curve_*/grid.png; do
    [ -f "$g" ] && cp "$g" "$results/$(basename "$(dirname "$g")").png"
done
