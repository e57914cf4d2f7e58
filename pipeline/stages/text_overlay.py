"""Text-overlay filter stage (1:1 per video): OCR on 1-3 frames of each clip.

Row in:  a transcoded video record (`stage_dir` holds the clips' mp4s).
Row out: the same record; every scoreable clip gains `text_area` (fraction of the
         frame covered by text boxes, the largest over the frames read) and `text`
         (the lines recognised, in reading order, at most 16).

rapidocr-onnxruntime ships its ONNX models, so this runs offline; it loads once
per actor. Detection cost grows with the pixels, so frames are shrunk to
`--filters.text.max_side` first (measured: ~60 ms per 320x180 frame on one core,
~240 ms at 640x360). The area, not the presence, of text is the score: a street
sign covers ~1% of a frame and must not reject a clip; a subtitle bar (4-6%) or an
advert (20%+) should. The frames come from `pipeline.stages.frames`, decoded once and
shared with the CLIP stage and the thumbnail. Reasons are decided at pack time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.stages.base import ClipScorer
from pipeline.stages.frames import frame_counts, load_frames

MAX_LINES = 16


def text_boxes_area(shape: tuple[int, int], boxes: list[np.ndarray]) -> float:
    """Fraction of a frame of `shape` (h, w) inside the union of the polygons."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    for box in boxes:
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    return float(mask.mean())


class TextStage(ClipScorer):
    """Ray Data stage (1:1): OCR text area and strings of every scoreable clip of one video."""

    def __init__(self, cfg: CurateConfig) -> None:
        self.cfg, self.counts = cfg.filters.text, frame_counts(cfg)
        self.engine = None
        if self.cfg.enabled:
            from rapidocr_onnxruntime import RapidOCR

            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
            threads = max(1, int(self.cfg.resources.num_cpus))
            self.engine = RapidOCR(
                intra_op_num_threads=threads,
                inter_op_num_threads=1,
                det_limit_side_len=self.cfg.max_side,
                det_limit_type="max",
            )

    name = "text"

    def enabled(self) -> bool:
        return self.engine is not None

    def score(self, clip: dict[str, Any], folder: Path, video: dict[str, Any]) -> None:
        sample = load_frames(folder, clip["clip_id"], self.counts)
        clip["text_area"], clip["text"] = self.read(sample.pick(self.cfg.frames))

    def read(self, frames: np.ndarray) -> tuple[float, list[str]]:
        """(largest text area over the frames, recognised lines) of RGB frames."""
        import cv2

        area, lines = 0.0, []
        for rgb in frames:
            h, w = rgb.shape[:2]
            scale = min(1.0, self.cfg.max_side / max(h, w))
            if scale < 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            # rapidocr wants BGR like cv2.imread; the direction classifier is for rotated scans.
            result, _ = self.engine(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False)
            found = [(np.asarray(box, np.float32), text) for box, text, score in result or []
                     if float(score) >= self.cfg.min_confidence]  # fmt: skip
            area = max(area, text_boxes_area(rgb.shape[:2], [b for b, _ in found]))
            lines += [t for _, t in found if t not in lines]
        return round(area, 6), lines[:MAX_LINES]
