"""Per-video staging under OUT/work/: what makes a run resumable.

A video is built in `work/videos/{video_id}.partial/` by the split, transcode
and scoring stages; the finalize stage renames it to `work/videos/{video_id}/`
(clips' mp4, jpg and emb.npy files plus `record.json`). The rename is atomic, so
after a `kill -9` a video is either wholly there or not at all.

The record carries two fingerprints. `fingerprint` covers what shapes the clips
and the scores read from the split's low-res decode (split, transcode, motion,
blank, blur, hashes): a change re-does the video. `score_fingerprint` covers the
stages that read the clips' mp4s (text, CLIP): a change re-runs only those, on the
finished folder (`RescoreStage`). Thresholds are in neither: `clipmill pack`
re-applies them to the stored scores. Clips rejected only by a threshold keep
their mp4 here, so a loosened threshold can re-admit them. A person's split/join edits
(OUT/overrides.jsonl) are kept in the record as `cut_edits`: the driver re-does a video
whose stored edits differ from the latest ones, and only that video.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig, SplitConfig, TranscodeConfig
from pipeline.config.scores import scoring_params
from pipeline.stages.frames import load_frames, remove_caches
from pipeline.stages.lowres import LowresRecorder
from pipeline.stages.proxy import PROXY, write_index
from pipeline.stages.split import Splitter
from pipeline.stages.transcode import encode_units, transcode_video
from pipeline.staging_spans import PENDING, SPANS, claim_last, split_span
from schemas.layout import partial_dir, video_dir

# Keys of the split stage's working state that never leave the stage.
_SCRATCH = ("frame_times", "blank_mask", "transition_mask", "corrupt_mask", "cuts")
# Files only the stages between split and finalize read.
SCRATCH_FILES = ("lowres.u8", "lowres.json", "stats.npy")


def _hash(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fingerprint(cfg: CurateConfig) -> str:
    """Hash of the settings that change a staged video's clips or low-res scores."""
    parts = {name: scoring_params(getattr(cfg, name)) for name in ("split", "transcode")}
    for name in ("motion", "blank", "blur"):
        parts[name] = scoring_params(getattr(cfg.filters, name))
    parts["dedup"] = scoring_params(cfg.dedup)
    return _hash(parts)


def score_fingerprint(cfg: CurateConfig) -> str:
    """Hash of the settings of the stages that score the clips' mp4s (text, CLIP)."""
    parts: dict[str, Any] = {
        "text": scoring_params(cfg.filters.text),
        "clip": scoring_params(cfg.clip),
        "caption": scoring_params(cfg.caption),
        "thumbnails": cfg.shards.thumbnails,
    }
    # New weights under the same path must re-score too: size and mtime stand for content.
    for key in ("pretrained", "aesthetic_head"):
        path = getattr(cfg.clip, key)
        if path and os.path.isfile(path):
            st = os.stat(path)
            parts[f"{key}_file"] = [st.st_size, st.st_mtime_ns]
    return _hash(parts)


def load_staged(work: Path, video_id: str, fp: str) -> dict[str, Any] | None:
    """The staged record of a finished video made with the same settings, else None."""
    path = video_dir(work, video_id) / "record.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("fingerprint") == fp else None


class SplitStage:
    """Ray Data stage (1:1): analyse one video into candidate clips.

    Starts the video's `.partial` staging folder afresh (a retried or resumed
    video never sees a previous attempt's files) and records the low-res
    samples the filter stages read. A span row of a long video (`SpansStage`, whose
    fan-out started the folder) is analysed by `split_span`; only the span that joins
    the video passes it on, the others pass a pending row that `UnitsStage` drops.
    Rows cross stages as one JSON string: nested, often-empty lists of optional
    fields give Arrow no stable schema.
    """

    def __init__(self, cfg: SplitConfig, work: str) -> None:
        self.splitter, self.cfg, self.work = Splitter(cfg), cfg, Path(work)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        folder = partial_dir(self.work, video["video_id"])
        span = video.pop("span", None)
        if span is not None:  # one span of a long video (`SpansStage`)
            whole = partial(self._whole, folder=folder)
            video = split_span(self.splitter, video, span, folder, whole)
            if video is None:  # another span joins the video
                return {"video": json.dumps({PENDING: True})}
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            video = self._whole(video, folder)
        for key in _SCRATCH:
            video.pop(key, None)
        video["stage_dir"] = str(folder)
        return {"video": json.dumps(video)}

    def _whole(self, video: dict[str, Any], folder: Path) -> dict[str, Any]:
        recorder = LowresRecorder(folder, self.cfg.sample_fps)
        try:
            video = self.splitter(video, sink=recorder, proxy=folder / PROXY)
            recorder.finish()
        finally:
            recorder.close()
        write_index(folder, video.get("stream_start_s"), [(0.0, PROXY)])
        return video


class TranscodeStage:
    """Ray Data stage (1:N clips): one ffmpeg pass writes the video's clip mp4s."""

    def __init__(self, cfg: TranscodeConfig) -> None:
        self.cfg = cfg

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        if video.get("unit") and not Path(video["stage_dir"]).is_dir():
            return row  # a unit re-run after its video was gathered: finalize has the answer
        if video["status"] == "ok":
            transcode_video(video, self.cfg, Path(video["stage_dir"]))
        return {"video": json.dumps(video)}


class UnitsStage:
    """Ray Data stage (1:N encode units): a long video's row as one row per encode unit.

    `fans_out`: the runners flat-map it and give every unit its own block, so one video's
    units spread over the workers of the stages after it, which all take unit rows as
    they take videos (a unit is a video record holding some of its clips). A short video,
    a damaged one, one without timestamps or with audio kept passes as one row, unchanged.
    """

    fans_out = True

    def __init__(self, cfg: TranscodeConfig) -> None:
        self.cfg = cfg

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        video = json.loads(row["video"])
        if video.get(PENDING):
            return []  # a span whose video another span joined (`SplitStage`)
        cfg = self.cfg
        whole = (
            video["status"] != "ok"
            or not cfg.chunked
            or video.get("stream_start_s") is None
            or video.get("source_start_s") is not None  # damaged: decoded in one piece
        )
        units = [video["clips"]] if whole else encode_units(video["clips"], cfg.chunk_s)
        if len(units) == 1:
            return [row]
        return [
            {
                "video": json.dumps(
                    dict(
                        video,
                        clips=clips,
                        unit={"index": k, "count": len(units), "zero_s": video["stream_start_s"]},
                    )
                )
            }
            for k, clips in enumerate(units)
        ]


class FinalizeStage:
    """Ray Data stage (1:1): hashes, thumbnails, record; the atomic rename that marks done."""

    def __init__(self, fp: str, score_fp: str, thumbnails: bool) -> None:
        self.fp, self.score_fp, self.thumbnails = fp, score_fp, thumbnails

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        folder = Path(video.pop("stage_dir"))
        done = self._already_done(folder, video)
        if done is not None:
            return done
        for clip in video["clips"]:
            self._finish_clip(clip, folder)
        unit = video.pop("unit", None)
        if unit is not None:
            whole = gather_units(folder, video, unit)
            if whole is None:  # other units of this video are still on their way
                return {"video_id": video["video_id"], "status": "ok", "n_clips": 0, "final": False}
            video = whole
        for name in SCRATCH_FILES:
            (folder / name).unlink(missing_ok=True)
        remove_caches(folder)
        video["fingerprint"], video["score_fingerprint"] = self.fp, self.score_fp
        (folder / "record.json").write_text(json.dumps(video, sort_keys=True))
        final = folder.with_name(video["video_id"])
        shutil.rmtree(final, ignore_errors=True)
        os.replace(folder, final)
        for scratch in (UNITS, SPANS):  # left by a unit or span re-run after the gathering
            shutil.rmtree(final / scratch, ignore_errors=True)
        return {
            "video_id": video["video_id"],
            "status": video["status"],
            "n_clips": len(video["clips"]),
            "final": True,
        }

    def _already_done(self, folder: Path, video: dict[str, Any]) -> dict[str, Any] | None:
        """The result of an attempt that renamed the folder but died before returning.

        Ray re-runs the video on a restarted worker; the finished folder is the answer.
        """
        video_id = video["video_id"]
        if folder.exists():
            return None
        try:
            record = json.loads((folder.with_name(video_id) / "record.json").read_text())
        except (OSError, ValueError):
            return None
        if record.get("fingerprint") != self.fp or record.get("score_fingerprint") != self.score_fp:
            return None
        if record.get("cut_edits") != video.get("cut_edits"):
            return None
        n = len(record["clips"])
        return {"video_id": video_id, "status": record["status"], "n_clips": n, "final": True}

    def _finish_clip(self, clip: dict[str, Any], folder: Path) -> None:
        path = folder / f"{clip['clip_id']}.mp4"
        # Only hard reasons are known here (score filters decide at pack time).
        if clip["reject_reasons"] or not path.exists():
            path.unlink(missing_ok=True)
            (folder / f"{clip['clip_id']}.emb.npy").unlink(missing_ok=True)
            (folder / f"{clip['clip_id']}.txt_emb.npy").unlink(missing_ok=True)
            return
        clip["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        if self.thumbnails:
            try:
                # The middle frame, decoded once for OCR/CLIP when they ran (stages/frames.py).
                rgb = load_frames(folder, clip["clip_id"], (1,)).pick(1)[0]
                (folder / f"{clip['clip_id']}.jpg").write_bytes(jpeg(rgb))
            except Exception as exc:  # noqa: BLE001 - a thumbnail is optional
                clip["errors"] = f"thumbnail: {exc}"[:300]


UNITS = "units"  # a chunked video's finished units wait here for the last one


def gather_units(folder: Path, video: dict[str, Any], unit: dict[str, Any]) -> dict | None:
    """The whole video once this unit is its last to finish, else None (`UnitsStage`).

    Each unit leaves its clips in `units/`; whichever unit sees all of them there claims the
    gathering with an exclusive file, so exactly one finalizes the video. A unit Ray re-runs
    after its worker died finds its own claim and gathers again.
    """
    units = folder / UNITS
    units.mkdir(exist_ok=True)
    index, count = unit["index"], unit["count"]
    part = {"clips": video["clips"], "encode": unit.get("encode")}
    tmp = units / f"{index:05d}.tmp"
    tmp.write_text(json.dumps(part))
    os.replace(tmp, units / f"{index:05d}.json")
    if not claim_last(units, index, count, "*.json"):
        return None
    parts = [json.loads((units / f"{k:05d}.json").read_text()) for k in range(count)]
    clips = [c for p in parts for c in p["clips"]]
    return dict(video, clips=clips, encode_units=[p["encode"] for p in parts])


def prepare_rescore(record: dict[str, Any], folder: Path, cfg: CurateConfig) -> dict[str, Any]:
    """A finished video's record, ready for the mp4 scorers again: their old scores cleared."""
    video = dict(record, stage_dir=str(folder))
    for clip in video["clips"]:
        for key in ("text_area", "text", "clip_score", "aesthetic", "caption", "captions"):
            clip.pop(key, None)
    if not cfg.clip.enabled:
        for path in folder.glob("*.emb.npy"):
            path.unlink()
    return video


class RescoreStage:
    """Ray Data stage (1:1): after text/CLIP re-ran on a finished video, its new record.

    The record is replaced atomically; until then the old score fingerprint makes
    a killed run re-score again.
    """

    def __init__(self, score_fp: str) -> None:
        self.score_fp = score_fp

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        folder = Path(video.pop("stage_dir"))
        remove_caches(folder)
        video["score_fingerprint"] = self.score_fp
        tmp = folder / "record.json.tmp"
        tmp.write_text(json.dumps(video, sort_keys=True))
        os.replace(tmp, folder / "record.json")
        return {"video_id": video["video_id"], "status": video["status"], "n_clips": 0}


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("jpeg encode failed")
    return buf.tobytes()
