"""The driver: which stages a run gets, and GPU codecs probed where their stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.curate import ConfigError, build_config
from pipeline.driver import check_codecs_on_cluster, curate, span_stages, unit_stages
from pipeline.staging import UnitsStage
from pipeline.staging_spans import SpansStage

NO_SPANS = {"chunk_s": None}


@pytest.mark.parametrize(
    ("transcode", "split", "durations", "fans", "spans"),
    [
        ({}, {}, [30.0, 80.0], True, False),  # 80 s > 120 / 2: may make two units
        ({}, {}, [30.0, 60.0], False, False),  # none can: the stages stay as they were
        ({}, {}, [60.0, None], True, True),  # unknown length: counted as long
        ({"chunk_s": None}, NO_SPANS, [3600.0], False, False),
        ({"keep_audio": True}, NO_SPANS, [3600.0], False, False),
        # No units, but analysis spans (> 1.5 × 300 s): their pending rows are dropped there.
        ({"chunk_s": None}, {}, [3600.0], True, True),
        ({"chunk_s": None}, {}, [400.0], False, False),
    ],
)
def test_the_fan_outs_are_there_when_a_video_may_need_them(
    transcode, split, durations, fans, spans
):
    cfg = build_config({"transcode": transcode, "split": split})
    assert [cls for cls, _, _ in unit_stages(cfg, durations)] == ([UnitsStage] if fans else [])
    got = [cls for cls, _, _ in span_stages(cfg, Path(), durations)]
    assert got == ([SpansStage] if spans else [])


def _nvenc_missing() -> bool:
    from pipeline.ffmpeg import codec_problem
    from pipeline.stages.transcode import encoder_args

    nvenc = build_config({"transcode": {"encoder": "h264_nvenc"}}).transcode
    return codec_problem(tuple(encoder_args(nvenc, 25.0))) is not None


def test_an_unusable_gpu_encoder_stops_the_run_before_any_video(tmp_path):
    if not _nvenc_missing():
        pytest.skip("this machine has a working NVENC")
    cfg = build_config({"transcode": {"encoder": "h264_nvenc"}, "ray": {"address": "none"}})
    video = tmp_path / "in.mp4"
    video.write_bytes(b"never read: the check comes first")
    with pytest.raises(ConfigError, match=r"^--transcode\.encoder h264_nvenc is not usable"):
        curate([str(video)], tmp_path / "out", cfg)
    assert not (tmp_path / "out" / "videos.parquet").exists()


def test_on_a_cluster_the_codec_probe_runs_as_a_ray_task_and_names_the_flag(ray_local):
    if not _nvenc_missing():
        pytest.skip("this machine has a working NVENC")
    # "auto" joins the running Ray, as on a cluster: the probe goes where transcode runs.
    cfg = build_config({"transcode": {"encoder": "h264_nvenc"}, "ray": {"address": "auto"}})
    with pytest.raises(ConfigError, match=r"^--transcode\.encoder h264_nvenc is not usable"):
        check_codecs_on_cluster(cfg)
    check_codecs_on_cluster(build_config({"ray": {"address": "auto"}}))
