"""The configuration of `clipmill curate`: one frozen dataclass per section, checked at start.

base (ConfigError, check, field kinds) <- resources (StageResources) <- scores (filters,
CLIP, dedup, weights) and captions <- curate (CurateConfig, build_config, SECTIONS).
"""
