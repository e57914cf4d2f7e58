"""Fine-tuning step time and memory: the tiny families on CPU, the real sizes on a GPU.

    python benchmarks/bench_finetune.py                    # CPU: tiny Wan/LTX/CogVideoX (plumbing)
    python benchmarks/bench_finetune.py --gpu --time-limit 480 --json gpu.json   # on a GPU
    python benchmarks/bench_finetune.py --gpu --max-batch 2 --steps 3   # every case, fewer batches
    python benchmarks/bench_finetune.py --gpu --dry-run    # the GPU path on CPU, tiny (a check)

CPU rows (`train.finetune.tiny` folders, random weights): a LoRA (rank 8) training step of
`FinetuneModule` at batch 2 x 9 frames x 32x32 px, from pixels (the frozen VAE and text
encoder run every step) and from latents (what a `clipmill cache` run feeds), median of
`--steps` after warm-up, and the peak RSS of a child process doing the pixel run. These
time the plumbing, not a model: the tiny transformers have ~30k parameters.

GPU rows: the real architectures at full size with random weights (speed and memory do
not depend on the weights, and nothing is downloaded): Wan 2.1 1.3B at 480x832 x 33 and
x 81 frames, LTX-Video 2B at 512x768 x 121, LoRA rank 32 on the attention projections,
bf16 frozen base, bf16 autocast, from cached latents (random latents and caption states
of the family's shapes), with and without gradient checkpointing: seconds per step
(median), peak GPU memory at batch 1, and the largest batch (1, 2, 4, ...) whose peak
stays under 24 GB and under 80 GB (bounded by the card's own memory). Configurations
left when `--time-limit` runs out are reported as "not measured (time limit)".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._measure import machine  # noqa: E402

# transformer/config.json of Wan-AI/Wan2.1-T2V-1.3B-Diffusers
WAN_13B = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
    cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
)  # fmt: skip
# LTXVideoTransformer3DModel's defaults are LTX-Video 2B (0.9.x)
LTX_2B: dict = {}
# (name, family, transformer config, latent [C, T', H', W'], text tokens)
GPU_CASES = [
    ("Wan 2.1 1.3B 480x832x33", "wan", WAN_13B, (16, 9, 60, 104), 512),
    ("Wan 2.1 1.3B 480x832x81", "wan", WAN_13B, (16, 21, 60, 104), 512),
    ("LTX-Video 2B 512x768x121", "ltx", LTX_2B, (128, 16, 16, 24), 128),
]
GIB = 1024**3


def _tiny_family(name: str, work: Path):
    from train.finetune.registry import load_family
    from train.finetune.tiny import save_tiny_pipeline

    return load_family(save_tiny_pipeline(name, work / name))


def _median_step(step, steps: int, warmup: int = 3, sync=lambda: None) -> float:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------- CPU (tiny)


def cpu_one(family: str, steps: int, work: Path) -> dict:
    """One family's tiny LoRA step times (pixels, latents) in this process, and peak RSS."""
    from train.finetune.module import FinetuneModule

    torch.manual_seed(0)
    folder = _tiny_family(family, work).folder
    module = FinetuneModule(pretrained=str(folder), lora={"rank": 8, "alpha": 8})
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    video = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    pixels = {"video": video, "caption": ["a red square moving right"] * 2}
    z, text, mask = module.inputs(pixels)
    lengths = mask.sum(1) if mask is not None else torch.full((2,), text.shape[1])
    latents = {
        "video": z,
        "text_states": text,
        "text_mask": torch.arange(text.shape[1])[None] < lengths[:, None],
    }

    def step(batch):
        opt.zero_grad()
        module.loss(batch).mean().backward()
        opt.step()

    out = {
        "family": family,
        "pixels_s": _median_step(lambda: step(pixels), steps),
        "latents_s": _median_step(lambda: step(latents), steps),
    }
    status = Path("/proc/self/status").read_text().splitlines()
    out["peak_rss_mb"] = next(int(s.split()[1]) for s in status if s.startswith("VmHWM")) / 1024
    return out


def cpu_rows(steps: int, runs: int) -> list[dict]:
    rows = []
    for family in ("wan", "ltx", "cogvideox"):
        results = []
        for _ in range(runs):  # each run a fresh process: its peak RSS is its own
            cmd = [sys.executable, __file__, "--cpu-one", family, "--steps", str(steps)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = {"family": family, "runs": runs}
        for key in ("pixels_s", "latents_s", "peak_rss_mb"):
            row[key] = statistics.median(r[key] for r in results)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- GPU (full size)


DEVICE = "cuda"  # --dry-run: "cpu"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _gpu_model(config: dict, family, checkpointing: bool):
    import diffusers

    from train.finetune.family import cast_keeping_fp32
    from train.finetune.lora import LoraSpec, add_lora

    cls = getattr(diffusers, family.transformer_class)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = cast_keeping_fp32(cls(**config), torch.bfloat16)
    add_lora(model, LoraSpec(rank=32, alpha=32), family)
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model.train()


def _gpu_step(model, family, latent: tuple, text_len: int, batch: int):
    from train.finetune.objective import ObjectiveConfig, flow_loss

    x0 = torch.randn(batch, *latent, device=DEVICE)
    width = model.config.get("text_dim") or model.config.get("caption_channels")
    text = torch.randn(batch, text_len, width, device=DEVICE)
    mask = torch.ones(batch, text_len, dtype=torch.bool, device=DEVICE)
    mask = mask if family.text_layout == "mask" else None
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = flow_loss(family, model, x0, text, mask, ObjectiveConfig()).mean()
        loss.backward()
        opt.step()

    return step


def gpu_case(case: tuple, family, checkpointing: bool, steps: int, max_batch: int) -> dict:
    name, _, config, latent, text_len = case
    model = _gpu_model(config, family, checkpointing)
    row: dict = {"case": name, "checkpointing": checkpointing, "batches": {}}
    cuda = DEVICE == "cuda"
    capacity = torch.cuda.get_device_properties(0).total_memory if cuda else 4 * GIB
    batch = 1
    while True:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            step = _gpu_step(model, family, latent, text_len, batch)
            seconds = _median_step(step, steps if batch == 1 else 2, 1, _sync)
        except torch.OutOfMemoryError:
            row["batches"][batch] = "OOM"
            break
        peak = torch.cuda.max_memory_allocated() if cuda else 0
        row["batches"][batch] = {"s_per_step": seconds, "peak_gib": peak / GIB}
        if peak > 0.5 * capacity or batch >= (max_batch if cuda else 2):  # the next will not fit
            break
        batch *= 2
    fits = {b: v for b, v in row["batches"].items() if isinstance(v, dict)}
    for cap in (24, 80):
        ok = [b for b, v in fits.items() if v["peak_gib"] <= cap]
        row[f"max_batch_{cap}gb"] = max(ok) if ok else 0
    del model
    return row


def _dry_cases(families: dict) -> list[tuple]:
    """The GPU cases at the tiny folders' own transformer sizes (--dry-run on CPU)."""
    cases = []
    for name, family_name, _, latent, text_len in GPU_CASES:
        saved = families[family_name].transformer_config
        config = {k: v for k, v in saved.items() if not k.startswith("_")}
        channels = config.get("in_channels", latent[0])
        cases.append((f"{name} (dry run)", family_name, config, (channels, 3, 2, 2), text_len))
    return cases


def gpu_rows(steps: int, time_limit: float, work: Path, max_batch: int) -> list[dict]:
    families = {name: _tiny_family(name, work) for name in ("wan", "ltx")}
    start, rows = time.perf_counter(), []
    for case in GPU_CASES if DEVICE == "cuda" else _dry_cases(families):
        for checkpointing in (True, False):
            if time.perf_counter() - start > time_limit:
                rows.append({"case": case[0], "checkpointing": checkpointing,
                             "skipped": "not measured (time limit)"})  # fmt: skip
                continue
            try:
                rows.append(gpu_case(case, families[case[1]], checkpointing, steps, max_batch))
            except Exception as err:  # a failed case is a figure too ("error: ..."), not a crash
                rows.append({"case": case[0], "checkpointing": checkpointing,
                             "error": f"{type(err).__name__}: {err}"[:300]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="the full-size GPU rows")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--runs", type=int, default=3, help="CPU: processes per family")
    p.add_argument("--time-limit", type=float, default=480.0, help="GPU: seconds for all cases")
    p.add_argument("--max-batch", type=int, default=64, help="GPU: the largest batch tried")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--dry-run", action="store_true", help="with --gpu: run it on CPU, tiny sizes")
    p.add_argument("--cpu-one", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        if args.cpu_one:
            print(json.dumps(cpu_one(args.cpu_one, args.steps, Path(tmp))))
            return
        if args.dry_run:
            global DEVICE
            DEVICE = "cpu"
        elif args.gpu and not torch.cuda.is_available():
            sys.exit("--gpu: no CUDA device here")
        rows = (
            gpu_rows(args.steps, args.time_limit, Path(tmp), args.max_batch)
            if args.gpu
            else cpu_rows(args.steps, args.runs)
        )
    device = torch.cuda.get_device_name(0) if DEVICE == "cuda" and args.gpu else machine()
    result = {"device": device, "torch": torch.__version__, "rows": rows}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
