"""Source `clip_zeroshot`: tags from a vocabulary, scored by CLIP, composed into a caption.

A vocabulary file (`configs/caption/*.yaml`) lists tag categories in the order
they are composed, each with a `phrase` that places its tags in the sentence:

    templates: ["a video of {}.", "a photo of {}."]
    subjects: {phrase: "{}", tags: [a dog, a car, …]}
    motions:  {phrase: " {}", tags: [running, driving, …]}
    scenes:   {phrase: ", {}", tags: [a beach, a city street, …]}
    styles:   {phrase: ", {}", tags: [aerial view, close-up, …]}

A tag's text embedding is the mean over the templates (CLIP's prompt ensembling).
Within each category, the top `top_k` tags whose cosine with the clip beats the
category's median by `margin` are kept; a caption needs a subject. Its score is
the cosine of the whole composed caption with the clip, like every CLIP score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.captions.clip_model import encode_text, unit
from pipeline.captions.text import Candidate
from pipeline.config.base import ConfigError

DEFAULT_TEMPLATES = ("a video of {}.", "a photo of {}.")
# Where a category's tags go in the sentence when its file entry is a bare list.
DEFAULT_PHRASES = {"subjects": "{}", "motions": " {}", "scenes": ", {}", "styles": ", {}"}
SUBJECTS = "subjects"


@dataclass(frozen=True)
class Category:
    name: str
    phrase: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    templates: tuple[str, ...]
    categories: tuple[Category, ...]


def load_vocabulary(path: str | Path, templates: tuple[str, ...] = ()) -> Vocabulary:
    """Read a vocabulary YAML; a malformed file is a configuration error naming the flag."""
    import yaml

    flag = "--caption.zeroshot.vocabulary"
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{flag} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{flag} {path}: must be a mapping of categories")
    file_templates = tuple(doc.pop("templates", None) or DEFAULT_TEMPLATES)
    categories = []
    for name, entry in doc.items():
        spec = entry if isinstance(entry, dict) else {"tags": entry}
        tags = spec.get("tags")
        phrase = spec.get("phrase", DEFAULT_PHRASES.get(name, ", {}"))
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{flag} {path}: {name}.tags must be a non-empty list of strings")
        if not isinstance(phrase, str) or phrase.count("{}") != 1:
            raise ConfigError(f"{flag} {path}: {name}.phrase needs exactly one {{}}")
        categories.append(Category(str(name), phrase, tuple(tags)))
    if not any(c.name == SUBJECTS for c in categories):
        raise ConfigError(f"{flag} {path}: needs a '{SUBJECTS}' category")
    chosen = templates or file_templates
    if any(not isinstance(t, str) or t.count("{}") != 1 for t in chosen):
        raise ConfigError(f"{flag} {path}: every template needs exactly one {{}}")
    return Vocabulary(tuple(chosen), tuple(categories))


class ZeroShotCaptioner:
    """Composes a caption from the tags that score best against a clip's image embedding."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        model: Any,
        tokenizer: Any,
        *,
        top_k: int = 1,
        margin: float = 0.01,
        device: str = "cpu",
    ) -> None:
        self.vocab, self.top_k, self.margin = vocabulary, top_k, margin
        self._encode = lambda texts: encode_text(model, tokenizer, texts, device)
        # Tag embeddings once per actor: every prompt of every tag in one batch per category.
        self.tag_embeddings = {c.name: self._tag_embeddings(c.tags) for c in vocabulary.categories}

    def _tag_embeddings(self, tags: tuple[str, ...]) -> np.ndarray:
        prompts = [t.format(tag) for tag in tags for t in self.vocab.templates]
        emb = self._encode(prompts).reshape(len(tags), len(self.vocab.templates), -1)
        return unit(emb.mean(axis=1))

    def tags(self, image_embedding: np.ndarray) -> dict[str, list[tuple[str, float]]]:
        """{category: [(tag, cosine), …]} of the tags kept for this clip, best first."""
        image = unit(np.asarray(image_embedding, dtype=np.float32).reshape(-1))
        kept = {}
        for cat in self.vocab.categories:
            cos = self.tag_embeddings[cat.name] @ image
            floor = float(np.median(cos)) + self.margin
            order = np.argsort(-cos, kind="stable")[: self.top_k]
            # A one-tag category has no median to beat: its tag is a fixed part of the sentence.
            picked = [(cat.tags[i], float(cos[i])) for i in order if cos[i] >= floor]
            if len(cat.tags) == 1:
                picked = [(cat.tags[0], float(cos[0]))]
            if picked:
                kept[cat.name] = picked
        return kept

    def compose(self, tags: dict[str, list[tuple[str, float]]]) -> str | None:
        if SUBJECTS not in tags:
            return None
        parts = [
            cat.phrase.format(" and ".join(t for t, _ in tags[cat.name]))
            for cat in self.vocab.categories
            if cat.name in tags
        ]
        return " ".join("".join(parts).split()).strip(" ,;")

    def __call__(self, image_embedding: np.ndarray) -> Candidate | None:
        """The composed caption scored by CLIP cosine with the clip, or None."""
        text = self.compose(self.tags(image_embedding))
        if text is None:
            return None
        image = unit(np.asarray(image_embedding, dtype=np.float32).reshape(-1))
        score = float(self._encode([text])[0] @ image)
        return Candidate(text, "clip_zeroshot", score)
