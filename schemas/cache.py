"""The latent cache's records: written by `clipmill cache`, read by `--data.kind latents`.

A cache folder holds `cache.json` (the header below: which autoencoder and
text encoder made it, how clips were sampled, counts) and WebDataset shards,
`shards/` for clips and `images/` for still images. One sample per clip or
image, with members:

- `{key}.mean.npy`, `{key}.logvar.npy`: float16 `[V, C, T', H', W']`, the
  autoencoder's posterior per augmented view (V views; view 0 is the centred,
  unflipped one that validation uses);
- `{key}.text.npy`: float16 `[N, L, D]` token states of `texts` (row 0 is the
  empty caption), padded; row i is valid for its first `text_lengths[i]` tokens;
- `{key}.json`: the record described by CACHE_FIELDS.

Declared as tables, like schemas/records.py, so the JSON Schemas are derived
and the shipped files cannot drift (a test compares them).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import pyarrow as pa

from schemas.records import Field, json_schema

CACHE_FORMAT = "clipmill-latent-cache"
CACHE_VERSION = 1
HEADER_NAME = "cache.json"
KINDS = ("video", "image")

_STR = {"type": "string"}
_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_INTS = {"type": "array", "items": _INT}

VIEW_JSON = {
    "type": "object",
    "required": ["flip", "fps", "frames", "crop", "captions"],
    "properties": {
        "flip": {"type": "boolean"},
        "fps": {"anyOf": [_NUM, {"type": "null"}]},
        "frames": _INTS,
        "crop": _INTS,
        "captions": _INTS,
    },
}

CACHE_FIELDS: tuple[Field, ...] = (
    Field("key", pa.string(), {"type": "string", "pattern": "^[^./]+$"}, doc="sample key"),
    Field("kind", pa.string(), {"enum": list(KINDS)}),
    Field("source", pa.string(), _STR, doc="clip_id, or the image's path"),
    Field(
        "texts",
        pa.list_(pa.string()),
        {"type": "array", "items": _STR},
        doc="captions whose states are stored; texts[0] is the empty caption",
    ),
    Field("text_lengths", pa.list_(pa.int32()), _INTS, doc="valid tokens of each text"),
    Field(
        "views",
        pa.string(),
        {"type": "array", "minItems": 1, "items": VIEW_JSON},
        doc="per view: flipped?, fps shown, source frames, crop [top, left, h, w], caption rows",
    ),
    Field("latent_shape", pa.list_(pa.int32()), _INTS, doc="[C, T', H', W'] of one view"),
    Field("fps", pa.float64(), _NUM, True, doc="the clip's own frame rate"),
    Field("motion_score", pa.float32(), _NUM, True),
    Field("clip_score", pa.float32(), _NUM, True),
    Field("aesthetic", pa.float32(), _NUM, True),
    Field("sample_weight", pa.float32(), _NUM, True),
)

_OBJ = {"type": "object"}
HEADER_FIELDS: tuple[Field, ...] = (
    Field("format", pa.string(), {"const": CACHE_FORMAT}),
    Field("version", pa.int32(), {"const": CACHE_VERSION}),
    Field(
        "autoencoder",
        pa.string(),
        {
            "type": "object",
            "required": [
                "spec",
                "fingerprint",
                "latent_channels",
                "temporal_compression",
                "spatial_compression",
                "scaling_factor",
                "shift_factor",
            ],
        },
        doc="spec, fingerprint, compression, scaling_factor/shift_factor of the VAE",
    ),
    Field(
        "text_encoder",
        pa.string(),
        {"type": "object", "required": ["id", "spec"]},
        doc="encoder_id (TextEncoder.encoder_id) and the spec that built it",
    ),
    Field("sample", pa.string(), _OBJ, doc="num_frames, size, fps, frame_stride, views, ..."),
    Field(
        "shards",
        pa.list_(pa.string()),
        {"type": "array", "items": _STR},
        doc="clip shards, relative to the cache folder",
    ),
    Field("image_shards", pa.list_(pa.string()), {"type": "array", "items": _STR}),
    Field("counts", pa.string(), _OBJ, doc="clips, images, views, corrupt and corrupt/<reason>"),
    Field("bytes", pa.string(), _OBJ, doc="shard bytes in all and per clip"),
    Field(
        "family",
        pa.string(),
        _OBJ,
        nullable=True,
        doc="a pretrained family's cache (clipmill cache --model.pretrained): family, "
        "pipeline, transformer, vae, text_encoder, objective, text_length, buckets",
    ),
)


def cache_sample_schema() -> dict[str, Any]:
    return json_schema(CACHE_FIELDS, "clipmill latent cache sample")


def cache_header_schema() -> dict[str, Any]:
    return json_schema(HEADER_FIELDS, "clipmill latent cache header")


@cache
def _shipped(name: str) -> dict[str, Any]:
    return json.loads(resources.files("schemas").joinpath(name).read_text())


def validate_cache_sample(record: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when a cache sample's json breaks the contract."""
    import jsonschema

    jsonschema.validate(record, _shipped("cache_sample.schema.json"))


def validate_cache_header(header: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(header, _shipped("cache_header.schema.json"))


def write_schema_files(folder: str | None = None) -> None:
    """Regenerate schemas/cache_{sample,header}.schema.json from the tables."""
    from pathlib import Path

    root = Path(folder or Path(__file__).parent)
    for name, schema in (("sample", cache_sample_schema()), ("header", cache_header_schema())):
        text = json.dumps(schema, indent=2) + "\n"
        (root / f"cache_{name}.schema.json").write_text(text)


if __name__ == "__main__":
    write_schema_files()
