"""Captions for scarce data: every source a video has, aligned to each clip, with a score.

Sources (one module each, run in `--caption.sources` order): `sidecar_timed`
(`sidecar.py`), `sidecar_video` (`video_text.py`), `vlm` (`vlm.py`),
`clip_zeroshot` (`zeroshot.py`), `filename` (`filename.py`). `stage.py` holds the
Ray stages and the ranking rule. Importing this package stays light (no torch):
`pipeline.config` imports its config.
"""

from pipeline.captions.config import CaptionConfig, VlmConfig, ZeroShotConfig
from pipeline.captions.text import CaptionError

__all__ = ["CaptionConfig", "CaptionError", "VlmConfig", "ZeroShotConfig"]
