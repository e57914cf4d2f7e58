"""Input expansion: folders, globs, list files, URLs, missing inputs, our own output."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.discover import expand_inputs


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_are_walked_recursively_sorted_and_hidden_files_skipped(tmp_path):
    _touch(tmp_path / "b" / "2.mp4")
    _touch(tmp_path / "a.mov")
    _touch(tmp_path / ".hidden.mp4")
    _touch(tmp_path / ".git" / "x.mp4")
    cands, missing = expand_inputs([str(tmp_path)])
    assert [c.path for c in cands] == [str(tmp_path / "a.mov"), str(tmp_path / "b" / "2.mp4")]
    assert not any(c.explicit for c in cands) and missing == []


def test_globs_list_files_and_missing(tmp_path):
    a = _touch(tmp_path / "clips" / "a b.mp4")
    b = _touch(tmp_path / "clips" / "c.mkv")
    (tmp_path / "list.txt").write_text(f"# comment\n{a}\nclips/c.mkv\n\nnope.mp4\n")
    pq.write_table(pa.table({"path": [str(a)]}), tmp_path / "list.parquet")
    (tmp_path / "list.csv").write_text(f"path,caption\n{b},hi\n")
    cands, missing = expand_inputs(
        [
            str(tmp_path / "clips" / "*.mp4"),
            str(tmp_path / "list.txt"),
            str(tmp_path / "list.parquet"),
            str(tmp_path / "list.csv"),
            str(tmp_path / "absent.mp4"),
        ]
    )
    assert [c.path for c in cands] == [str(a), str(b)]
    assert all(c.explicit for c in cands)
    assert missing == [str(tmp_path / "nope.mp4"), str(tmp_path / "absent.mp4")]


def test_output_folder_inside_input_is_excluded(tmp_path):
    _touch(tmp_path / "v.mp4")
    _touch(tmp_path / "out" / "work" / "videos" / "x" / "c.mp4")
    cands, _ = expand_inputs([str(tmp_path)], exclude=tmp_path / "out")
    assert [c.path for c in cands] == [str(tmp_path / "v.mp4")]


def test_fsspec_urls(tmp_path):
    _touch(tmp_path / "d" / "v.mp4")
    cands, missing = expand_inputs([f"file://{tmp_path}/d/v.mp4", "memory://nowhere/x.mp4"])
    assert [c.path for c in cands] == [str(tmp_path / "d" / "v.mp4")]
    assert missing == ["memory://nowhere/x.mp4"]
