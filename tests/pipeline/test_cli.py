"""Exit codes and one-line messages naming the flag."""

from __future__ import annotations

import pytest

from pipeline.cli import main


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--split.max_clip_s", "0.5"], "--split.max_clip_s"),
        (["--split.detector", "magic"], "split.detector"),
        (["--transcode.crf", "99"], "--transcode.crf"),
        (["--shards.max_samples", "0"], "--shards.max_samples"),
        (["--split.nonsense", "1"], "--split.nonsense"),
    ],
)
def test_bad_configuration_exits_2_naming_the_flag(tmp_path, capsys, argv, flag):
    code = main(["curate", str(tmp_path), "--output", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert flag in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_no_input_video_exits_nonzero(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("no videos here")
    code = main(["curate", str(tmp_path), "--output", str(tmp_path / "o"), "--ray.address", "none"])
    assert code == 1 and "no input video" in capsys.readouterr().err


def test_finished_run_exits_0(synth_raw, tmp_path, capsys):
    root, truth = synth_raw
    code = main(
        [
            "curate",
            str(root / truth[2]["file"]),
            "--output",
            str(tmp_path / "o"),
            "--ray.address",
            "none",
            "--quiet",
            "--split.detector",
            "adaptive",
        ]
    )
    assert code == 0 and "clips kept" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2
