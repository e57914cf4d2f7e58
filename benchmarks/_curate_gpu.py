"""`bench_curate.py --gpu`: footage-hours per device-hour of the GPU-able curation stages.

Three stages, each run through its real stage class on the same footage, on the CPU and
on one GPU: split with TransNetV2 (`SplitStage`; its analysis decode on the CPU or NVDEC),
the 360p encode (`TranscodeStage`: libx264 or h264_nvenc, CPU decode or NVDEC) and CLIP
(`ClipStage`, an open_clip ViT-B-32 with random weights: the speed of the real model
without its download). One stage object, one video at a time: a lower bound on what a
GPU does when the pipeline gives it several videos at once.

A row that cannot run here (no CUDA GPU, a GPU without NVENC such as an H100, a driver
without NVDEC) is printed as "not measured" with ffmpeg's or torch's reason; the script
still exits 0, so a machine without a GPU finishes at once.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.ffmpeg import hwaccel_problem, run_ffmpeg

NOT_MEASURED = "not measured"


@dataclass
class Row:
    stage: str
    path: str
    """what ran where: "TransNetV2 on GPU, decode on NVDEC", …"""
    footage_s: float | None = None
    wall_s: float | None = None
    note: str = ""

    @property
    def rate(self) -> float | None:
        """Footage-hours per hour of the device the row names (a GPU, or the CPU threads)."""
        return self.footage_s / self.wall_s if self.footage_s and self.wall_s else None


PLAN = [
    ("split (TransNetV2)", "CPU: TransNetV2, CPU decode"),
    ("split (TransNetV2)", "GPU: TransNetV2, CPU decode"),
    ("split (TransNetV2)", "GPU: TransNetV2, NVDEC decode"),
    ("encode 360p", "CPU: libx264, CPU decode"),
    ("encode 360p", "GPU: libx264, NVDEC decode"),
    ("encode 360p", "GPU: h264_nvenc, CPU decode"),
    ("encode 360p", "GPU: h264_nvenc, NVDEC decode"),
    ("CLIP ViT-B-32", "CPU"),
    ("CLIP ViT-B-32", "GPU"),
]


def gpu_problem() -> str | None:
    """Why this machine has no CUDA GPU for torch (None: it has one)."""
    try:
        import torch
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    return None if torch.cuda.is_available() else "torch sees no CUDA GPU"


def not_measured(reason: str) -> list[Row]:
    return [Row(stage, path, note=reason) for stage, path in PLAN]


def median_wall(fn: Callable[[], Any], repeats: int) -> float:
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def excerpt(src: Path, seconds: float = 10.0) -> Path:
    """The first seconds of src (stream copy), to warm a model up before timing it."""
    path = src.with_name(f"{src.stem}_first{seconds:g}s.mp4")
    if not path.exists():
        run_ffmpeg(["-y", "-i", str(src), "-t", str(seconds), "-c", "copy", str(path)])
    return path


class Bench:
    """The measurements, sharing one footage, one split and one set of encoded clips."""

    def __init__(self, src: Path, work: Path, repeats: int) -> None:
        from pipeline.stages.probe import probe_video

        self.work, self.repeats = work, repeats
        self.row = {"video": json.dumps(probe_video({"path": str(src)}))}
        self.warm = {"video": json.dumps(probe_video({"path": str(excerpt(src))}))}
        self.split: dict[str, Any] | None = None
        self.footage_s = 0.0
        self.cpus = os.cpu_count() or 1

    def split_rows(self) -> list[Row]:
        modes = zip(PLAN[:3], (0, 1, 1), ("none", "none", "cuda"), strict=True)
        return [self._split(path, gpus, hw, i) for i, ((_, path), gpus, hw) in enumerate(modes)]

    def _split(self, path: str, gpus: int, hw: str, i: int) -> Row:
        from pipeline.config.curate import SplitConfig, StageResources
        from pipeline.staging import SplitStage

        row = Row(PLAN[0][0], path)
        if hw != "none" and (problem := hwaccel_problem(hw)):
            return replace(row, note=f"NVDEC: {problem}")
        cfg = SplitConfig(
            detector="transnetv2", hwaccel=hw, resources=StageResources(num_gpus=gpus)
        )
        stage = SplitStage(cfg, str(self.work / f"split_{i}"))
        stage(self.warm)  # model load, CUDA kernels and cuDNN choices happen here
        out: dict[str, Any] = {}

        def split() -> None:
            out.update(json.loads(stage(self.row)["video"]))

        wall = median_wall(split, self.repeats)
        if out.get("status") != "ok":
            return replace(row, note=f"split failed: {out.get('error')}")
        self.split = self.split or out  # the CPU split's clips are what every encode cuts
        self.footage_s = float(out["duration_s"])
        note = f"torch threads {_torch_threads()}" if gpus == 0 else "one video at a time"
        return replace(row, footage_s=self.footage_s, wall_s=wall, note=note)

    def encode_rows(self) -> list[Row]:
        return [self._encode(path, i) for i, (_, path) in enumerate(PLAN[3:7])]

    def _encode(self, path: str, i: int) -> Row:
        from pipeline.config.curate import TranscodeConfig
        from pipeline.staging import TranscodeStage

        encoder = "h264_nvenc" if "nvenc" in path else "libx264"
        cfg = TranscodeConfig(encoder=encoder, hwaccel="cuda" if "NVDEC" in path else "none")
        if problem := self._codec_problem(cfg):
            return Row(PLAN[3][0], path, note=problem)
        folder = self.work / f"encode_{i}"
        row = {"video": json.dumps(dict(self.split or {}, stage_dir=str(folder)))}

        def encode() -> None:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            done = json.loads(TranscodeStage(cfg)(row)["video"])
            errors = [c["errors"] for c in done["clips"] if c.get("errors")]
            if errors:
                raise RuntimeError(errors[0])

        wall = median_wall(encode, self.repeats)
        note = f"{cfg.threads} x264 threads" if encoder == "libx264" else "one NVENC session"
        return Row(PLAN[3][0], path, self.footage_s, wall, note)

    def _codec_problem(self, cfg: Any) -> str | None:
        from pipeline.config.curate import ConfigError
        from pipeline.stages.transcode import check_transcode_codecs

        if self.split is None:
            return "no split to encode (every split row failed)"
        try:
            check_transcode_codecs(cfg)  # the probe `clipmill curate` runs at start
        except ConfigError as exc:
            return str(exc)
        return None

    def clip_rows(self) -> list[Row]:
        clips = self.work / "encode_0"  # the libx264 clips: the same input for both rows
        if self.split is None or not any(clips.glob("*.mp4")):
            return [Row(s, p, note="no encoded clips") for s, p in PLAN[7:]]
        video = json.dumps(dict(self.split, stage_dir=str(clips)))
        return [
            self._clip(path, device, clips, video)
            for (_, path), device in zip(PLAN[7:], ("cpu", "cuda"), strict=True)
        ]

    def _clip(self, path: str, device: str, clips: Path, video: str) -> Row:
        from pipeline.config.curate import CurateConfig
        from pipeline.config.scores import ClipConfig
        from pipeline.stages.clip_embed import ClipStage
        from pipeline.stages.frames import remove_caches

        threads = self.cpus if device == "cpu" else 1
        clip = ClipConfig(enabled=True, model="ViT-B-32", device=device, threads=threads)
        stage = ClipStage(CurateConfig(clip=clip))
        stage({"video": video})  # warm-up (its frame caches are removed before timing)

        def score() -> None:
            remove_caches(clips)  # every run decodes its frames, as the pipeline does
            stage({"video": video})

        wall = median_wall(score, self.repeats)
        note = f"{clip.frames} frames per clip, decode included, torch threads {threads}"
        return Row(PLAN[7][0], path, self.footage_s, wall, note)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def run_gpu_bench(src_maker: Callable[[], Path], work: Path, repeats: int) -> tuple[str, list[Row]]:
    """(device, rows): every row measured, or "not measured" with the reason."""
    problem = gpu_problem()
    if problem is not None:
        return "no GPU", not_measured(problem)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bench = Bench(src_maker(), work, repeats)
    rows = bench.split_rows()
    rows += bench.encode_rows()
    rows += bench.clip_rows()
    shutil.rmtree(work, ignore_errors=True)
    return device_name(), rows


def report(device: str, machine: str, rows: list[Row], json_path: Path) -> str:
    """The markdown table (returned) and the JSON file (written)."""
    lines = [
        f"device: {device}; machine: {machine}",
        "| stage | path | footage h per device h | wall s | note |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rate = f"{r.rate:.1f}" if r.rate is not None else NOT_MEASURED
        wall = f"{r.wall_s:.2f}" if r.wall_s is not None else "-"
        lines.append(f"| {r.stage} | {r.path} | {rate} | {wall} | {r.note} |")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "device": device,
        "machine": machine,
        "rows": [asdict(r) | {"rate": r.rate} for r in rows],
    }
    json_path.write_text(json.dumps(blob, indent=2))
    return "\n".join(lines)
