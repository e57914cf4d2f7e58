"""From scores to decisions (driver, at pack time): reasons, duplicates, weights, what-if.

Clips in: every candidate row as staged: scores, and only the hard reasons the
          stages set (too_short, blank runs, transition, error).
Out:      `reject_reasons` (hard reasons, then each threshold's, then `duplicate`),
          `kept`, `duplicate_of`, `sample_weight`; and a report for summary.json.

This is the one place a score becomes a reason, called by `clipmill curate` and by
`clipmill pack OUT --filters.… ` alike, so changing a threshold never re-runs a
model. A null score (stage off, nothing to score) passes its filter; a null
threshold turns its filter off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.config.curate import CurateConfig
from pipeline.pack.dedup import find_duplicates, semantic_enabled
from pipeline.pack.weights import sample_weights


@dataclass(frozen=True)
class Filter:
    flag: str  # the threshold's config path (and command-line flag)
    score: str  # the clip column it reads
    bound: str  # "min": fail below; "max": fail above
    reason: str


FILTERS: tuple[Filter, ...] = (
    Filter("filters.motion.min_score", "motion_score", "min", "low_motion"),
    Filter("filters.motion.min_region", "motion_min", "min", "low_motion"),
    Filter("filters.motion.max_score", "motion_score", "max", "high_motion"),
    Filter("filters.blank.max_fraction", "blank_fraction", "max", "blank"),
    Filter("filters.blur.min_sharpness", "sharpness", "min", "blurry"),
    Filter("filters.text.max_area", "text_area", "max", "text_overlay"),
    Filter("clip.min_score", "clip_score", "min", "low_clip_score"),
    Filter("clip.min_aesthetic", "aesthetic", "min", "low_aesthetic"),
)
# Multiples of a chosen threshold reported in summary.json's what_if.
WHAT_IF_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
WHAT_IF_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def setting(cfg: Any, flag: str) -> Any:
    for part in flag.split("."):
        cfg = getattr(cfg, part)
    return cfg


def fails(f: Filter, clip: dict[str, Any], threshold: float | None) -> bool:
    score = clip.get(f.score)
    if score is None or threshold is None:
        return False
    return score < threshold if f.bound == "min" else score > threshold


def failed_filters(clip: dict[str, Any], cfg: CurateConfig) -> list[Filter]:
    return [f for f in FILTERS if fails(f, clip, setting(cfg, f.flag))]


def apply_thresholds(clips: list[dict[str, Any]], cfg: CurateConfig) -> None:
    """Hard reasons stay first; each failed threshold adds its reason once."""
    for c in clips:
        reasons = list(c["reject_reasons"])
        for f in failed_filters(c, cfg):
            if f.reason not in reasons:
                reasons.append(f.reason)
        c["reject_reasons"], c["kept"] = reasons, not reasons


def apply_dedup(
    clips: list[dict[str, Any]], cfg: CurateConfig, embeddings: dict[str, np.ndarray]
) -> dict[str, str]:
    """Duplicates among the clips still kept; returns {clip_id: kept clip_id}."""
    survivors = [c for c in clips if c["kept"]]
    dup_of = find_duplicates(survivors, cfg, embeddings)
    for c in clips:
        c["duplicate_of"] = dup_of.get(c["clip_id"])
        if c["duplicate_of"] and cfg.dedup.keep == "best":
            c["reject_reasons"] = [*c["reject_reasons"], "duplicate"]
            c["kept"] = False
    return dup_of


def decide(
    clips: list[dict[str, Any]],
    cfg: CurateConfig,
    embeddings: dict[str, np.ndarray],
    corrections: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Reasons, duplicates and weights on `clips` (in place); the report for summary.json.

    `corrections` (a person's overrides) run after every rule and before the weights, which
    are over the clips finally kept; its report is the summary's `overrides`.
    """
    hard = {c["clip_id"]: bool(c["reject_reasons"]) for c in clips}
    apply_thresholds(clips, cfg)
    dup_of = apply_dedup(clips, cfg, embeddings)
    corrected = corrections(clips) if corrections is not None else None
    rarity = sample_weights(clips, cfg, embeddings)
    report = {
        "dedup": {
            "clusters": len(set(dup_of.values())),
            "duplicates": len(dup_of),
            "semantic": semantic_enabled(cfg),
        },
        "weights": {"rarity": rarity},
        "what_if": what_if(clips, cfg, embeddings, hard),
    }
    if corrected is not None:
        report["overrides"] = corrected
    return report


def _grid(chosen: float | None, scores: list[float]) -> list[float]:
    if chosen:
        return [round(chosen * k, 6) for k in WHAT_IF_FACTORS]
    if not scores:
        return []
    return sorted({round(float(q), 6) for q in np.quantile(scores, WHAT_IF_QUANTILES)})


def what_if(
    clips: list[dict[str, Any]],
    cfg: CurateConfig,
    embeddings: dict[str, np.ndarray],
    hard: dict[str, bool],
) -> dict[str, Any]:
    """Seconds kept if one threshold took other values, every other decision held.

    For a filter threshold, duplicates stay as decided; for the dedup thresholds,
    dedup re-runs among the clips every filter kept. A threshold that is off is
    tried at the quantiles of its scores.
    """
    failed = {c["clip_id"]: {f.flag for f in failed_filters(c, cfg)} for c in clips}
    report: dict[str, Any] = {}
    for f in FILTERS:
        chosen = setting(cfg, f.flag)
        scores = [c[f.score] for c in clips if c.get(f.score) is not None]
        rows = []
        for value in _grid(chosen, scores):
            kept_s = sum(
                c["duration_s"]
                for c in clips
                if not hard[c["clip_id"]]
                and not (c.get("duplicate_of") and cfg.dedup.keep == "best")
                and not failed[c["clip_id"]] - {f.flag}
                and not fails(f, c, value)
            )
            rows.append([value, round(kept_s, 3)])
        report[f.flag] = {"reason": f.reason, "chosen": chosen, "kept_s": rows}
    report.update(_dedup_what_if(clips, cfg, embeddings, hard, failed))
    return report


def _dedup_what_if(
    clips: list[dict[str, Any]],
    cfg: CurateConfig,
    embeddings: dict[str, np.ndarray],
    hard: dict[str, bool],
    failed: dict[str, set[str]],
) -> dict[str, Any]:
    passing = [c for c in clips if not hard[c["clip_id"]] and not failed[c["clip_id"]]]
    total = sum(c["duration_s"] for c in passing)
    d = cfg.dedup
    grids: dict[str, list[Any]] = {}
    if d.perceptual:
        grids["dedup.max_hamming"] = sorted({max(0, d.max_hamming + k) for k in (-4, -2, 0, 2, 4)})
    if semantic_enabled(cfg):
        grids["dedup.threshold"] = [
            round(min(1.0, d.threshold + k), 4) for k in (-0.1, -0.05, 0, 0.02, 0.04)
        ]
    report = {}
    for flag, values in grids.items():
        rows = []
        for value in values:
            trial = replace(cfg, dedup=replace(d, **{flag.split(".")[1]: value}))
            dup_of = find_duplicates(passing, trial, embeddings)
            gone = sum(c["duration_s"] for c in passing if c["clip_id"] in dup_of)
            rows.append([value, round(total - (gone if d.keep == "best" else 0.0), 3)])
        report[flag] = {"reason": "duplicate", "chosen": setting(cfg, flag), "kept_s": rows}
    return report
