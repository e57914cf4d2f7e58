"""Caption stages (1:1 per video): every configured source, aligned to each clip, ranked.

Row in:  a video record between transcode and finalize (`stage_dir` holds each
         kept clip's mp4 and, when the CLIP stage ran, its `{clip_id}.emb.npy`).
Row out: the same record; each clip without reject reasons gains
         `captions` ([{text, source, score}], the primary first), `caption` (the
         primary), `clip_score` (CLIP cosine of the primary and the clip, whenever
         CLIP is loaded) and optionally `{clip_id}.txt_emb.npy`; `no_caption` only with
         `--caption.required`. A broken sidecar is a one-line `error` on the
         video row ("caption: …"); the video and its clips go on.

The primary caption (`--caption.primary`):
- `priority` (default): the first source in `--caption.sources` that has a caption
  for the clip; within one source, the higher score (then the order found).
- `score`: the highest CLIP score among `--caption.trusted` sources; when none
  of them captioned the clip, `priority` over the rest.

`VlmStage` runs the VLM alone, as its own actor pool (GPUs), and leaves `vlm`
captions on the clips; `CaptionStage` (CPU) then adds the other sources and
ranks them all. `caption_video` does both in-process (tests, `--ray.address none`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.captions.filename import filename_captions
from pipeline.captions.sidecar import Timed, load_timed, timed_captions
from pipeline.captions.text import Candidate
from pipeline.captions.video_text import FolderTables, video_captions
from pipeline.config.captions import CaptionConfig, resolve_vocabulary

__all__ = ["CaptionStage", "Captioners", "VlmStage", "caption_video", "clip_scores_on", "rank"]

TXT_EMB_SUFFIX = ".txt_emb.npy"


@dataclass(frozen=True)
class VideoText:
    """What a video's files say, read once for all its clips."""

    timed: list[Timed]
    whole: list[Candidate]  # sidecar_video
    named: list[Candidate]  # filename

    @classmethod
    def read(
        cls, path: str, cfg: CaptionConfig, tables: FolderTables, errors: list[str]
    ) -> VideoText:
        on = set(cfg.sources)
        return cls(
            load_timed(path, errors) if "sidecar_timed" in on else [],
            video_captions(path, tables, cfg.max_chars, errors) if "sidecar_video" in on else [],
            filename_captions(path) if "filename" in on else [],
        )


def clip_scores_on(cfg: CaptionConfig, clip_cfg: Any | None) -> bool:
    """Whether captions are scored by CLIP; auto: only with pretrained weights (random
    weights give numbers that mean nothing, and would overwrite the sources' own scores)."""
    if cfg.clip_scores == "off" or clip_cfg is None or not clip_cfg.enabled:
        return False
    return cfg.clip_scores == "on" or bool(clip_cfg.pretrained)


class Captioners:
    """What one caption actor loads once: folder tables, CLIP and its tags, maybe a VLM.

    CLIP loads when the `--clip` section is on (for the primary's `clip_score`, in the
    space of the CLIP stage's embeddings) or when a caption feature needs it.
    """

    def __init__(self, cfg: CaptionConfig, clip_cfg: Any | None = None, vlm: bool = False) -> None:
        self.cfg, self.tables = cfg, FolderTables()
        self.scoring = clip_scores_on(cfg, clip_cfg)
        zeroshot = "clip_zeroshot" in cfg.sources
        self.clip = self.zeroshot = self.vlm = None
        clip_on = clip_cfg is not None and clip_cfg.enabled
        if clip_on or zeroshot or cfg.text_embeddings or self.scoring:
            from pipeline.captions.clip_model import ClipModel
            from pipeline.config.scores import ClipConfig

            self.clip = ClipModel(clip_cfg or ClipConfig())
        if zeroshot:
            from pipeline.captions.zeroshot import ZeroShotCaptioner, load_vocabulary

            z = cfg.zeroshot
            vocab = load_vocabulary(resolve_vocabulary(z.vocabulary), z.templates)
            self.zeroshot = ZeroShotCaptioner(
                vocab, self.clip.model, self.clip.tokenizer,
                top_k=z.top_k, margin=z.margin, device=self.clip.device,
            )  # fmt: skip
        if vlm and "vlm" in cfg.sources:
            from pipeline.captions.vlm import VlmCaptioner

            self.vlm = VlmCaptioner(cfg.vlm, cfg.max_chars)


def kept_clips(video: dict[str, Any]) -> list[dict[str, Any]]:
    """Clips worth captioning: not rejected (the mp4 exists only for these)."""
    return [c for c in video.get("clips", []) if not c["reject_reasons"]]


def note(clip: dict[str, Any], exc: Exception, step: str) -> None:
    """A caption failure on one clip is a line in its errors, not a rejection."""
    line = f"caption {step}: {type(exc).__name__}: {exc}"[:300]
    clip["errors"] = f"{clip['errors']}\n{line}" if clip.get("errors") else line


def run_vlm(video: dict[str, Any], vlm: Any, frames: int) -> None:
    """Add `vlm` captions to the kept clips, `batch_size` clips per generate()."""
    from pipeline.stages.frames import load_frames

    clips = kept_clips(video)
    folder = Path(video.get("stage_dir") or "")
    for at in range(0, len(clips), vlm.cfg.batch_size):
        batch, pixels = [], []
        for clip in clips[at : at + vlm.cfg.batch_size]:
            try:
                pixels.append(list(load_frames(folder, clip["clip_id"], (frames,)).pick(frames)))
                batch.append(clip)
            except Exception as exc:  # noqa: BLE001 - an unreadable clip stays uncaptioned
                note(clip, exc, "vlm")
        for clip, found in zip(batch, vlm(pixels), strict=True):
            old = [c for c in clip.get("captions") or [] if c["source"] != "vlm"]
            clip["captions"] = old + ([found.to_dict()] if found else [])


def rank(found: list[Candidate], cfg: CaptionConfig) -> list[Candidate]:
    """Candidates best first by the `--caption.primary` rule; repeated texts kept once."""
    where = {s: i for i, s in enumerate(cfg.sources)}
    ordered = sorted(
        found,
        key=lambda c: (
            where.get(c.source, len(where)),
            -(c.score if c.score is not None else -1e9),
        ),
    )
    if cfg.primary == "score":
        trusted = [c for c in ordered if c.source in cfg.trusted and c.score is not None]
        if trusted:
            best = max(trusted, key=lambda c: c.score)  # the first of equals: priority order
            ordered.remove(best)
            ordered.insert(0, best)
    seen, out = set(), []
    for c in ordered:
        key = " ".join(c.text.casefold().split()).strip(" .!,")
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _found(clip: dict[str, Any], text: VideoText, cfg: CaptionConfig) -> dict[str, list]:
    """Candidates of the sources that need no model, and the VLM's if it already ran."""
    return {
        "sidecar_timed": timed_captions(
            text.timed, clip["start_s"], clip["end_s"], cfg.min_overlap, cfg.max_chars
        ),
        "sidecar_video": text.whole,
        "filename": text.named,
        "vlm": [  # left by VlmStage (or run_vlm) before this
            Candidate(c["text"], "vlm", c.get("score"))
            for c in clip.get("captions") or []
            if c["source"] == "vlm"
        ],
    }


def caption_clip(
    video: dict[str, Any], clip: dict[str, Any], text: VideoText, cap: Captioners
) -> None:
    """Fill one kept clip's captions, caption and clip_score from every source."""
    cfg, found = cap.cfg, _found(clip, text, cap.cfg)
    image = None
    if cap.clip is not None:
        try:
            image = cap.clip.image_embedding(clip, video.get("stage_dir"))
        except Exception as exc:  # noqa: BLE001 - the clip stays captioned by other sources
            note(clip, exc, "clip")
    if cap.zeroshot is not None and image is not None:
        found["clip_zeroshot"] = [z] if (z := cap.zeroshot(image)) else []
    candidates = [c for source in cfg.sources for c in found.get(source, [])]
    if cap.scoring and image is not None and candidates:
        sims = cap.clip.encode_text([c.text for c in candidates]) @ image
        pairs = zip(candidates, sims, strict=True)
        candidates = [Candidate(c.text, c.source, float(s)) for c, s in pairs]
    ranked = rank(candidates, cfg)
    clip["captions"] = [c.to_dict() for c in ranked]
    clip["caption"] = ranked[0].text if ranked else None
    if cfg.required and not ranked:
        clip["reject_reasons"] = [*clip["reject_reasons"], "no_caption"]
    if cap.clip is None or not ranked:
        return
    primary = cap.clip.encode_text([ranked[0].text])[0]
    if image is not None:  # the CLIP stage's contract: cosine of the clip and its caption
        clip["clip_score"] = round(float(primary @ image), 5)
    if cfg.text_embeddings and video.get("stage_dir"):
        path = Path(video["stage_dir"]) / f"{clip['clip_id']}{TXT_EMB_SUFFIX}"
        np.save(path, primary.astype(np.float16))


def caption_video(
    video: dict[str, Any],
    cfg: CaptionConfig,
    clip_cfg: Any | None = None,
    captioners: Captioners | None = None,
) -> dict[str, Any]:
    """Caption every kept clip of one video record, in place (and return it).

    Without `captioners`, loads what `cfg` needs, the VLM included (unit tests,
    in-process runs); the Ray stages pass the ones their actor loaded once.
    """
    if video.get("status") != "ok":
        return video
    cap = captioners or Captioners(cfg, clip_cfg, vlm=True)
    if cap.vlm is not None:
        run_vlm(video, cap.vlm, cfg.vlm.frames)
    errors: list[str] = []
    # Sidecars sit next to the file the user named (a URL's siblings are read through fsspec).
    path = video.get("source_path") or video.get("local_path")
    text = VideoText.read(path, cfg, cap.tables, errors)
    for clip in kept_clips(video):
        caption_clip(video, clip, text, cap)
    if errors:
        line = "caption: " + "; ".join(dict.fromkeys(errors))
        video["error"] = f"{video['error']}; {line}" if video.get("error") else line
    return video


class VlmStage:
    """Ray Data stage (1:1, actor pool with its own GPUs): VLM captions of a video's clips."""

    def __init__(self, cfg: CaptionConfig) -> None:
        from pipeline.captions.vlm import VlmCaptioner

        self.cfg, self.vlm = cfg, VlmCaptioner(cfg.vlm, cfg.max_chars)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        if video.get("status") == "ok":
            run_vlm(video, self.vlm, self.cfg.vlm.frames)
        return {"video": json.dumps(video)}


class CaptionStage:
    """Ray Data stage (1:1): every source but the VLM, then the ranking of all of them."""

    def __init__(self, cfg: CaptionConfig, clip_cfg: Any | None = None) -> None:
        self.cfg, self.captioners = cfg, Captioners(cfg, clip_cfg, vlm=False)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        video = json.loads(row["video"])
        caption_video(video, self.cfg, captioners=self.captioners)
        return {"video": json.dumps(video)}
