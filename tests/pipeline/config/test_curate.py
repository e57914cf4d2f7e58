"""Every shipped curate YAML parses; bad values name their flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config.curate import ConfigError, build_config

CONFIGS = sorted((Path(__file__).parents[3] / "configs" / "curate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_build(path):
    build_config(yaml.safe_load(path.read_text()) or {})


def test_shipped_configs_parse_through_the_cli_parser(tmp_path):
    from pipeline.cli import curate_parser

    parser = curate_parser()
    for path in CONFIGS:
        parser.parse_args(["--config", str(path), "x", "--output", str(tmp_path)])


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"split": {"min_clip_s": 0}}, "--split.min_clip_s"),
        ({"split": {"trim_s": -1}}, "--split.trim_s"),
        ({"split": {"soft_shift_ratio": 1.5}}, "--split.soft_shift_ratio"),
        ({"split": {"flash_max_frames": -1}}, "--split.flash_max_frames"),
        ({"split": {"flash_min_jump": 0}}, "--split.flash_min_jump"),
        ({"transcode": {"fps": 0.5}}, "--transcode.fps"),
        ({"transcode": {"preset": "warp"}}, "--transcode.preset"),
        ({"transcode": {"encoder": "h264_qsv"}}, "--transcode.encoder"),
        ({"transcode": {"encoder": "h264_nvenc", "crf": 0}}, "--transcode.crf"),
        ({"transcode": {"hwaccel": "vaapi"}}, "--transcode.hwaccel"),
        ({"split": {"hwaccel": "gpu"}}, "--split.hwaccel"),
        ({"split": {"resources": {"num_cpus": 0}}}, "--split.resources.num_cpus"),
        ({"nope": {}}, "nope"),
        ({"split": {"typo": 1}}, "--split.typo"),
    ],
)
def test_bad_values_name_the_flag(values, flag):
    with pytest.raises(ConfigError, match=flag.replace(".", r"\.")):
        build_config(values)


def test_encoder_re_does_transcodes_and_hwaccel_does_not():
    """NVENC writes other bytes than x264; NVDEC decodes the same frames (how, not what)."""
    from pipeline.staging import fingerprint

    base = fingerprint(build_config({}))
    assert fingerprint(build_config({"transcode": {"encoder": "h264_nvenc"}})) != base
    gpu_decode = {"split": {"hwaccel": "cuda"}, "transcode": {"hwaccel": "cuda"}}
    assert fingerprint(build_config(gpu_decode)) == base
    # The hash from before these fields existed, with that era's default detector: old
    # outputs made with `content` resume, not redo. The new default (`adaptive`) finds
    # other cuts, so its outputs must not pass for them.
    assert fingerprint(build_config({"split": {"detector": "content"}})) == "d31ca18438718fc2"
    assert base != "d31ca18438718fc2"
