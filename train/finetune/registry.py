"""Which family a pipeline folder holds, from its `model_index.json` `_class_name`."""

from __future__ import annotations

from pathlib import Path

from train.finetune.cogvideox import CogVideoX
from train.finetune.family import FLAG, Family, read_index
from train.finetune.ltx import LTXVideo
from train.finetune.wan import Wan

FAMILIES: dict[str, type[Family]] = {cls.pipeline_class: cls for cls in (Wan, LTXVideo, CogVideoX)}


def load_family(folder: str | Path) -> Family:
    """The family of `folder`; ValueError naming --model.pretrained when unsupported."""
    name = read_index(folder).get("_class_name")
    if name not in FAMILIES:
        raise ValueError(
            f"{FLAG}: {folder} holds a {name!r} pipeline; clipmill fine-tunes "
            f"{', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[name](folder)
