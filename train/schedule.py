"""The learning-rate schedule both LightningModules use: linear warmup, then cosine.

One function, so the DiT (`train.module`) and the autoencoder
(`train.autoencoder.module`) cannot drift apart in how they decay.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int | None, min_ratio: float) -> float:
    """LR factor: linear warmup, then cosine down to min_ratio at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    if not total or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
