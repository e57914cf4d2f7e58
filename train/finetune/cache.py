"""The latent cache for a pretrained family: its VAE's latents and its text encoder's states.

`clipmill cache --model.pretrained DIR` (or a `--train-config` naming it) builds the cache
with the same `CacheBuilder` as the from-scratch path, with three differences: the
autoencoder is the family's VAE (normalised as its pipeline does), the caption states are
the family's text encoder's, kept as the family's transformer sees them (Wan and LTX-Video:
the real tokens only, padding is re-made at training time; CogVideoX: all 226, since its
pipeline feeds the pad tokens' states too), and each clip's views are drawn in the bucket
the plan gives it. The header's `family` names the pipeline and digests of its VAE and
text encoder; `check_family_cache` refuses a cache made for another model in one line.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor

from train.cache.format import CacheError, StaleCache
from train.data.augment import caption_choices, parse_record
from train.finetune.buckets import Bucket, BucketGrid, assign
from train.models.text import TextEncoder, folder_digest


class FamilyText(TextEncoder):
    """A family's tokenizer and text encoder behind `TextEncoder` (what the cache stores)."""

    def __init__(self, family: Any) -> None:
        super().__init__()
        self.family = family
        self.tokenizer, self.model = family.load_text()
        self.dim = int(self.model.config.d_model)
        self.encoder_id = family_identity(family)["text_digest"]

    def encode(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        return self.family.encode_text(self.tokenizer, self.model, captions)


def family_identity(family: Any) -> dict[str, Any]:
    """What a family cache's header records: the family and digests of its VAE and text
    encoder folders (configs and weight sizes: cheap, no weights loaded)."""
    folder = family.folder
    # The tokenizer is a folder of its own: other token ids give other states.
    text = f"{folder_digest(folder / 'text_encoder')}:{folder_digest(folder / 'tokenizer')}"
    return {
        **family.describe(),
        "vae_digest": f"{family.vae_class}:{folder_digest(folder / 'vae')}",
        "text_digest": f"{family.name}:{text}:L{family.text_length}",
    }


def check_family_cache(header: dict[str, Any], family: Any, flag: str = "--data.cache") -> None:
    """Raise CacheError (one line naming the flags) unless the cache was made for `family`."""
    made = header.get("family")
    if not made:
        raise CacheError(
            f"{flag} was made for the from-scratch DiT, not a pretrained model; rebuild it "
            "with `clipmill cache --model.pretrained DIR`"
        )
    mine = family_identity(family)
    for key in ("family", "transformer", "vae_digest", "text_digest"):
        if made.get(key) != mine[key]:
            raise StaleCache(
                f"{flag} is stale: it was made with {key} {made.get(key)!r}, but "
                f"--model.pretrained gives {mine[key]!r}; rebuild it with `clipmill cache "
                "--model.pretrained` and that folder"
            )


def grid_from_config(args: dict[str, Any]) -> BucketGrid:
    """The bucket grid of a training YAML's data arguments (`plan.section_args`), with
    FinetuneDataModule's defaults filled in."""
    from train.finetune.data import FinetuneDataModule

    defaults = {
        name: p.default
        for name, p in inspect.signature(FinetuneDataModule.__init__).parameters.items()
    }
    value = {k: args.get(k, defaults[k]) for k in ("frame_buckets", "size_buckets", "fps")}
    return BucketGrid(
        tuple(value["frame_buckets"]),
        tuple(tuple(s) for s in value["size_buckets"]),
        value["fps"],
        args.get("max_upscale", defaults["max_upscale"]),
    )


def bucket_chooser(grid: BucketGrid):
    """`fn(raw shard sample) -> (frames, (h, w))` or the reason the clip is left out."""

    def choose(raw: dict[str, Any]) -> tuple[int, tuple[int, int]] | str:
        record = parse_record(raw)
        primary = (
            raw["txt"].decode("utf-8", "replace") if isinstance(raw.get("txt"), bytes) else None
        )
        has_caption = any(c.strip() for c in caption_choices(record, primary))
        bucket = assign(record, grid, has_caption)
        if isinstance(bucket, Bucket):
            return bucket.frames, (bucket.height, bucket.width)
        return bucket

    return choose
