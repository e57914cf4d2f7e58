"""The closed vocabulary of the shapes world: colours, shapes, directions, held-out triples.

The bottom of `pipeline.synthetic`: the footage config, the renderer (`world`), the
shape checker and the evaluation all read these words, and this module reads none of them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# Saturated and bright: far from the dark backgrounds and from one another.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 215, 40),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Unit step in image coordinates (x right, y down) for each direction word.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
# Paraphrases so a captioner or text encoder does not see one frozen sentence.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {colour} {shape} moving {direction}",
    "a {colour} {shape} drifting {direction} across a dark background",
    "a {shape} in {colour} sliding {direction}",
    "a single {colour} {shape} gliding {direction}",
    "{colour} {shape} travelling {direction} over a dark textured backdrop",
)
Combo = tuple[str, str, str]  # (colour, shape, direction)


def all_combos() -> list[Combo]:
    """The 60 (colour, shape, direction) triples of the world, in vocabulary order."""
    return [(c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS]


def load_holdout(path: str | Path) -> tuple[Combo, ...]:
    """Held-out triples from YAML `holdout: [[colour, shape, direction], ...]`.

    Raises ValueError naming the file and the bad entry, so a typo cannot
    silently let a held-out combination into training footage.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"--holdout {path}: cannot read ({err})") from err
    items = data.get("holdout") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError(
            f"--holdout {path}: expected a 'holdout:' list of [colour, shape, direction]"
        )
    known = set(all_combos())
    combos = []
    for item in items:
        combo = tuple(str(w) for w in item) if isinstance(item, list) else ()
        if combo not in known:
            raise ValueError(f"--holdout {path}: {item!r} is not a (colour, shape, direction)")
        combos.append(combo)
    if len(set(combos)) == len(known):
        raise ValueError(f"--holdout {path}: holds out every combination")
    return tuple(dict.fromkeys(combos))
