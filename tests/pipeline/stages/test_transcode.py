"""Frame-exact transcoding: clips start and end on the frames the manifest names."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from pipeline.config.curate import ConfigError, CurateConfig, SplitConfig, TranscodeConfig
from pipeline.ffmpeg import codec_problem, ffmpeg_exe, hwaccel_problem, run_ffmpeg
from pipeline.stages import transcode
from pipeline.stages.damage import read_timeline
from pipeline.stages.transcode import (
    check_codecs,
    encode_units,
    encoder_args,
    ffmpeg_args,
    output_frame,
    output_size,
    transcode_video,
)

BITS, W, H = 10, 320, 64


def _write_numbered(path, n: int, fps: int) -> None:
    """Frame i shows i as a black/white barcode (robust to compression)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "10", "g": "50"}
        s.codec_context.time_base = Fraction(1, fps)
        for i in range(n):
            img = np.zeros((H, W, 3), np.uint8)
            for b in range(BITS):
                if (i >> b) & 1:
                    img[:, b * 32 : (b + 1) * 32] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _read_numbers(path) -> list[int]:
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            cols = f.to_ndarray(format="rgb24").mean(axis=(0, 2))
            out.append(sum(1 << b for b in range(BITS) if cols[b * 32 + 16] > 127))
    return out


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    path = tmp_path_factory.mktemp("num") / "numbered.mp4"
    _write_numbered(path, 300, 30)
    return path


@pytest.mark.parametrize("out_fps", [None, 24.0, 60.0])
def test_clips_hold_exactly_their_source_frames(numbered, tmp_path, out_fps):
    spans = [(10, 40), (50, 80), (80, 120), (250, 300)]
    clips = [
        {"clip_id": f"c{a}", "start_s": a / 30, "end_s": b / 30, "reject_reasons": []}
        for a, b in spans
    ]
    video = {"clips": clips, "fps": 30.0, "width": W, "height": H, "local_path": str(numbered)}
    transcode_video(video, TranscodeConfig(fps=out_fps, short_side=None, crf=10), tmp_path)
    fo = out_fps or 30.0
    for (a, b), clip in zip(spans, clips, strict=True):
        got = _read_numbers(tmp_path / f"{clip['clip_id']}.mp4")
        assert clip.get("errors") is None
        assert len(got) == clip["n_frames"] == round((b - a) / 30 * fo)
        assert a <= got[0] <= a + 1 and b - 1 - 1 <= got[-1] <= b - 1
        if out_fps is None:
            assert got == list(range(a, b))
    assert not list(tmp_path.glob("segments*"))


def _clips(spans: list[tuple[int, int]], reasons: dict[int, list[str]] | None = None):
    return [
        {
            "clip_id": f"c{a}",
            "start_s": a / 30,
            "end_s": b / 30,
            "reject_reasons": list((reasons or {}).get(a, [])),
        }
        for a, b in spans
    ]


def test_encode_units_start_a_group_every_chunk_s_of_wanted_clips():
    spans = [(0, 90), (90, 120), (120, 210), (210, 330), (330, 360), (360, 450)]
    clips = _clips(spans, {90: ["blank"], 330: ["too_short"]})
    units = encode_units(clips, 6.0)
    # Wanted clips start at 0, 4, 7 and 12 s: 7 is 6 s after 0 and opens the second group;
    # 12 is 5 s after 7 and stays. Rejected clips stay where they fall.
    assert [[c["start_s"] * 30 for c in u] for u in units] == [[0, 90, 120], [210, 330, 360]]
    assert encode_units(clips, 15.0) == [clips]
    assert encode_units(_clips([(0, 30)], {0: ["blank"]}), 1.0) == [
        _clips([(0, 30)], {0: ["blank"]})
    ]


@pytest.fixture(scope="module")
def late_numbered(numbered, tmp_path_factory):
    """`numbered` with its timestamps starting at 1.5 s, as a cut-out of a broadcast has."""
    path = tmp_path_factory.mktemp("late") / "late.mp4"
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-i", str(numbered), "-c", "copy"]
    subprocess.run([*cmd, "-output_ts_offset", "1.5", str(path)], check=True)
    return path


@pytest.mark.parametrize("out_fps", [None, 24.0, 60.0])
def test_encode_units_hold_the_frames_of_the_whole_encode(late_numbered, tmp_path, out_fps):
    spans = [(10, 40), (50, 80), (80, 120), (190, 230), (250, 300)]
    cfg = TranscodeConfig(fps=out_fps, short_side=None, crf=10)
    base = {"fps": 30.0, "width": W, "height": H, "local_path": str(late_numbered)}
    transcode_video({**base, "clips": _clips(spans)}, cfg, tmp_path / "whole")
    zero = read_timeline(str(late_numbered), 30.0).start_s
    assert zero == pytest.approx(1.5)
    units = encode_units(_clips(spans), 4.0)
    assert [len(u) for u in units] == [3, 2]
    for k, clips in enumerate(units):
        unit = {"index": k, "count": len(units), "zero_s": zero}
        transcode_video({**base, "clips": clips, "unit": unit}, cfg, tmp_path / "units")
        assert unit["encode"]["first"] == transcode.output_frame(clips[0]["start_s"], cfg.fps or 30)
        for c in clips:
            assert c.get("errors") is None
    for a, b in spans:
        got = _read_numbers(tmp_path / "units" / f"c{a}.mp4")
        assert got == _read_numbers(tmp_path / "whole" / f"c{a}.mp4")
        if out_fps is None:
            assert got == list(range(a, b))
    assert not list((tmp_path / "units").glob("segments*"))
    # The same unit encoded again gives the same bytes: a re-run unit changes nothing.
    again = {**base, "clips": _clips(spans[3:]), "unit": {"index": 1, "count": 2, "zero_s": zero}}
    transcode_video(again, cfg, tmp_path / "again")
    for a, _ in spans[3:]:
        first = (tmp_path / "units" / f"c{a}.mp4").read_bytes()
        assert (tmp_path / "again" / f"c{a}.mp4").read_bytes() == first


def test_rejected_clips_are_not_encoded(numbered, tmp_path):
    clips = [
        {"clip_id": "keep", "start_s": 0.0, "end_s": 1.0, "reject_reasons": []},
        {"clip_id": "drop", "start_s": 1.0, "end_s": 2.0, "reject_reasons": ["too_short"]},
    ]
    video = {"clips": clips, "fps": 30.0, "width": W, "height": H, "local_path": str(numbered)}
    transcode_video(video, TranscodeConfig(short_side=None), tmp_path)
    assert (tmp_path / "keep.mp4").exists() and not (tmp_path / "drop.mp4").exists()


def test_clips_under_one_output_frame_fail_without_an_encode(numbered, tmp_path, monkeypatch):
    def no_ffmpeg(args):
        raise AssertionError("ffmpeg ran for clips with no output frame")

    monkeypatch.setattr(transcode, "run_ffmpeg", no_ffmpeg)
    clips = [{"clip_id": "blip", "start_s": 1.0, "end_s": 1.01, "reject_reasons": []}]
    video = {"clips": clips, "fps": 30.0, "width": W, "height": H, "local_path": str(numbered)}
    transcode_video(video, TranscodeConfig(short_side=None), tmp_path)
    assert clips[0]["reject_reasons"] == ["error"]
    assert clips[0]["errors"] == "transcode: clip shorter than one output frame"
    assert not list(tmp_path.iterdir())


def test_output_frame_mapping_and_sizes():
    assert output_frame(0.0, 24) == 0
    assert output_frame(1.0, 30) == 30
    assert output_size(1280, 720, 360) == (640, 360)
    assert output_size(720, 1280, 360) == (360, 640)
    assert output_size(321, 179, 360) == (320, 178)  # never upscaled, made even (down)
    assert output_size(1920, 1080, None) == (1920, 1080)


def test_bad_source_marks_clips_as_errors(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    clips = [{"clip_id": "x", "start_s": 0.0, "end_s": 1.0, "reject_reasons": []}]
    transcode_video(
        {"clips": clips, "fps": 30.0, "width": 64, "height": 64, "local_path": str(bad)},
        TranscodeConfig(),
        tmp_path,
    )
    assert clips[0]["reject_reasons"] == ["error"] and "transcode" in clips[0]["errors"]


def _keyframes(path) -> list[int]:
    with av.open(str(path)) as c:
        return [i for i, f in enumerate(c.decode(video=0)) if f.key_frame]


@pytest.mark.parametrize("interval", [0.5, None])
def test_keyframe_interval_bounds_the_seek_cost(numbered, tmp_path, interval):
    clips = [{"clip_id": "c", "start_s": 1.0, "end_s": 4.0, "reject_reasons": []}]
    video = {"clips": clips, "fps": 30.0, "width": W, "height": H, "local_path": str(numbered)}
    cfg = TranscodeConfig(short_side=None, keyframe_interval_s=interval)
    transcode_video(video, cfg, tmp_path)
    keys = _keyframes(tmp_path / "c.mp4")
    ends = [*keys, 90]  # the clip is 3 s at 30 fps
    gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    assert keys[0] == 0
    if interval is None:  # x264's default allows 250 frames; the barcode forces few cuts
        assert max(gaps) > 15
    else:  # a loader seeking anywhere decodes at most 15 frames to get there
        assert max(gaps) <= 15


# ffmpeg_args of the default config as it was before the encoder became a choice: the
# x264 path must not move by one argument (its bytes are what resumed runs hold).
TODAY_X264 = [
    "-i", "in.mp4", "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
    "-map_chapters", "-1", "-vf",
    "setpts=PTS-STARTPTS,fps=30.0,scale=640:360:flags=bicubic,setsar=1,format=yuv420p",
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-threads", "2",
    "-pix_fmt", "yuv420p", "-g", "30", "-flags", "+bitexact", "-fflags", "+bitexact",
    "-f", "segment", "-reset_timestamps", "1", "-segment_format", "mp4",
    "-segment_format_options", "movflags=+faststart",
    "-force_key_frames", "0.991667,1.991667", "-segment_frames", "30,60", "seg/%06d.mp4",
]  # fmt: skip


def _args(**cfg) -> list[str]:
    return ffmpeg_args("in.mp4", "seg/%06d.mp4", [30, 60], 30.0, (640, 360), TranscodeConfig(**cfg))


def test_default_arguments_are_unchanged():
    assert _args() == TODAY_X264
    assert _args(hwaccel="none", encoder="libx264") == TODAY_X264


def test_nvenc_arguments_keep_quality_keyframes_and_format():
    x264, nvenc = _args(crf=20), _args(crf=20, encoder="h264_nvenc")
    codec = encoder_args(TranscodeConfig(crf=20, encoder="h264_nvenc"), 30.0)
    assert codec == [
        "-c:v", "h264_nvenc", "-preset", "p3", "-tune", "hq", "-rc", "vbr", "-cq", "20",
        "-b:v", "0", "-bf", "3", "-forced-idr", "1", "-pix_fmt", "yuv420p", "-g", "30",
    ]  # fmt: skip
    # Only the encoder's own options differ: same filters, forced keyframes and segments.
    at = x264.index("-c:v")
    x264_codec = encoder_args(TranscodeConfig(crf=20), 30.0)
    assert nvenc[:at] == x264[:at]
    assert nvenc[at + len(codec) :] == x264[at + len(x264_codec) :]
    assert "-threads" not in codec  # NVENC takes none
    assert "-g" not in encoder_args(
        TranscodeConfig(encoder="h264_nvenc", keyframe_interval_s=None), 30.0
    )


@pytest.mark.parametrize(
    ("x264", "nvenc"),
    [("ultrafast", "p1"), ("veryfast", "p3"), ("medium", "p4"), ("veryslow", "p7")],
)
def test_nvenc_preset_follows_the_x264_name(x264, nvenc):
    args = encoder_args(TranscodeConfig(encoder="h264_nvenc", preset=x264), 25.0)
    assert args[args.index("-preset") + 1] == nvenc


def test_nvdec_decodes_the_source_and_nothing_else_moves():
    gpu = _args(hwaccel="cuda")
    assert gpu[:3] == ["-hwaccel", "cuda", "-i"] and gpu[2:] == TODAY_X264


def test_default_codecs_are_not_probed(monkeypatch):
    def probe(*_):
        raise AssertionError("libx264 without hwaccel must run no probe")

    monkeypatch.setattr(transcode, "codec_problem", probe)
    monkeypatch.setattr(transcode, "hwaccel_problem", probe)
    check_codecs(CurateConfig())


def test_unusable_nvenc_stops_the_run_naming_the_flag():
    cfg = CurateConfig(transcode=TranscodeConfig(encoder="h264_nvenc"))
    problem = codec_problem(tuple(encoder_args(cfg.transcode, 25.0)))
    if problem is None:
        pytest.skip("this machine's GPU has a working NVENC")
    # ffmpeg took every option (a typo would fail here too): only the GPU is missing.
    assert not problem.startswith(("Unrecognized option", "Undefined constant")), problem
    with pytest.raises(ConfigError, match=r"^--transcode\.encoder h264_nvenc is not usable here: "):
        check_codecs(cfg)


@pytest.mark.parametrize("section", ["split", "transcode"])
def test_unusable_nvdec_stops_the_run_naming_the_flag(section):
    if hwaccel_problem("cuda") is None:
        pytest.skip("this machine's GPU has a working NVDEC")
    section_cfg = {"split": SplitConfig, "transcode": TranscodeConfig}[section](hwaccel="cuda")
    with pytest.raises(ConfigError, match=rf"^--{section}\.hwaccel cuda is not usable here: \S"):
        check_codecs(CurateConfig(**{section: section_cfg}))


@pytest.mark.parametrize("how", ["select", "every frame", "keep audio"])
def test_many_clips_hold_their_frames_however_the_encode_runs(numbered, tmp_path, monkeypatch, how):
    """122 ranges of wanted frames (more than ffmpeg's 100-term chain allows), a frame of
    rejected footage between most: selected (the default), or every frame encoded when the
    expression would be too long for an argument, or with the audio kept."""
    spans = [(2 * i, 2 * i + 1) for i in range(120)] + [(240, 242), (242, 245), (250, 300)]
    calls = []
    monkeypatch.setattr(
        transcode, "run_ffmpeg", lambda args: calls.append(args) or run_ffmpeg(args)
    )
    if how == "every frame":
        monkeypatch.setattr(transcode, "MAX_SELECT_CHARS", 0)
    cfg = TranscodeConfig(short_side=None, crf=10, keep_audio=how == "keep audio")
    clips = _clips(spans)
    video = {"clips": clips, "fps": 30.0, "width": W, "height": H, "local_path": str(numbered)}
    transcode_video(video, cfg, tmp_path)
    for (a, b), clip in zip(spans, clips, strict=True):
        assert clip.get("errors") is None
        assert _read_numbers(tmp_path / f"{clip['clip_id']}.mp4") == list(range(a, b))
    (args,) = calls
    vf = args[args.index("-vf") + 1]
    if how == "select":  # only the 175 wanted frames reach the scale and the encoder
        assert "select=" in vf and args[args.index("-frames:v") + 1] == "175"
    else:
        assert "select=" not in vf and "-frames:v" not in args
    assert not list(tmp_path.glob("segments*"))
