"""Captions for scarce data: every source a video has, aligned to each clip, with a score.

Sources (one module each, run in `--caption.sources` order): `sidecar_timed`
(`sidecar.py`), `sidecar_video` (`video_text.py`), `vlm` (`vlm.py`),
`clip_zeroshot` (`zeroshot.py`), `filename` (`filename.py`). `stage.py` holds the
Ray stages and the ranking rule; `text.py` the candidate type and text clean-up.
The section's settings are in `pipeline.config.captions`.
"""
