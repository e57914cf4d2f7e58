"""The curation stages, one file each, in the order a video meets them.

probe -> split (detectors, lowres) -> transcode -> motion, technical, phash,
text_overlay, clip_embed (scorers; `frames` decodes their sampled frames once,
`base` holds the per-clip loop they share). Each docstring gives its row in and out.
"""
