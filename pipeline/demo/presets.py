"""How big `clipmill demo` is: the presets (smoke, default, bench) and the footage it films.

The bottom of `pipeline.demo`: the training rows, the latent row and the command all read it.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from pipeline.synthetic.config import SHAPE_SIZE

ROOT = Path(__file__).resolve().parents[2]
HOLDOUT = ROOT / "configs" / "world" / "holdout.yaml"
TINY = ROOT / "configs" / "train" / "tiny.yaml"
# Junk like real footage, each kind built to trip one curation stage (synthetic/junk.py).
JUNK = dict(static_prob=0.06, flat_prob=0.03, blurry_prob=0.05, ad_prob=0.05, sign_prob=0.03,
            repeat_prob=0.1, miscaption_prob=0.08)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """How big each stage is. `train` holds extra `clipmill train fit` flags."""

    videos: int
    width: int
    height: int
    shots: tuple[int, int]
    steps: int
    batch_size: int
    sample_steps: int
    _: KW_ONLY
    vae_steps: int = 0
    """autoencoder steps of `--latent` (0: as many as the DiT's)"""
    fps: float = 12.0
    """frame rate of the training samples: 8 frames at 6 fps span 1.3 s, enough to show the
    slow steady motion of a 6-s shot at 32 px"""
    span_s: float | str | None = None
    """instead of `fps`: spread each sample's frames over this many seconds of its clip
    ("clip": the whole clip), so the sample shows the shot's motion (`--data.span_s`)"""
    train: tuple[str, ...] = ()
    shape_size: float = SHAPE_SIZE
    """the filmed shape's side as a fraction of the frame's short side (`--shape-size`)"""

    def rate(self) -> dict[str, float | str]:
        """How samples are spread in time: {"span_s": ...} when set, else {"fps": ...}."""
        return {"span_s": self.span_s} if self.span_s is not None else {"fps": self.fps}

    sample: tuple[str, ...] = ()
    """extra `clipmill sample` flags, e.g. ("--micro", "fps=2") to ask for a frame rate"""


SMOKE_MODEL = ("--model.dit.depth", "2", "--model.dit.coarse_blocks", "1",
               "--model.dit.width", "64", "--model.dit.heads", "2")  # fmt: skip
PRESETS: dict[str, Preset] = {
    # Wiring only (the test suite runs it): a 2-block model, a few steps, every stage real.
    "smoke": Preset(3, 128, 72, (3, 4), 12, 4, 3, train=SMOKE_MODEL),
    # `make demo`: 440 s on 2 cores after install (a fresh clone; the box's speed drifts ~25%).
    # 48 videos (127 kept clips) made colour and persistence reliable; spreading each sample's
    # 8 frames over its clip is what moved direction (RESULTS.md, "make demo's recipe"). The
    # DiT runs all its 6 blocks on merged tokens (64 of them; the patch tokens only embed the
    # input and skip to the output), a step 2.3x cheaper than tiny.yaml's hourglass with a
    # fine block on each side: so 2,700 steps cost what 1,100 did (RESULTS.md, "All blocks
    # coarse"). Its patches are one frame deep (1x4x4, merged 2x2x2), not two: with the frames
    # spread over the clip, two neighbouring frames show the object well apart, and a
    # two-frame patch must draw both from one token. Over three training seeds direction rose
    # from 69-83% to 92-98% at the same cost (RESULTS.md, "One-frame patches"). Shapes 0.45 of
    # the short side (14 px at 32 px, not synth's 10) took shape from 31-48% to 58-60% over
    # three seeds, the rest unchanged (RESULTS.md, "Bigger shapes, again").
    "default": Preset(48, 192, 108, (3, 7), 2700, 16, 20, span_s="clip", shape_size=0.45,
                      train=("--data.decode_cache_mb", "256", "--model.dit.width", "96",
                             "--model.dit.depth", "6", "--model.dit.coarse_blocks", "6",
                             "--model.dit.patch_t", "1", "--model.dit.coarse_merge", "[2,2,2]")),
    # The benchmark: 24-26 minutes alone on 2 cores (43 on a slow day; 4,000 steps where 3,000
    # took 31 minutes and left direction and all three short: RESULTS.md, thirteenth runs); with
    # --ablate naive both models train side by side on one core each (48 minutes measured, with
    # other work beside it at first; here samples are made in the training process). Shapes
    # 0.45 of the short side, as in `make demo`: seen 96/92/96/90/100 against 92/79/88/75/97 at
    # 0.3 (seed 0, RESULTS.md, "Bigger shapes, again").
    "bench": Preset(60, 320, 180, (3, 7), 4000, 16, 30, fps=6, shape_size=0.45,
                    train=("--data.decode_cache_mb", "256", "--data.num_workers", "0")),
}  # fmt: skip
SHORT_SIDE = 90  # curated/naive clips; the trainer resizes to 32 px
# Extra prompts of seen combinations in unseen words ("a crimson disc drifting leftward"):
# does the pretrained text encoder carry the meaning over? Scored as the `paraphrase` group.
PARAPHRASES = 20
