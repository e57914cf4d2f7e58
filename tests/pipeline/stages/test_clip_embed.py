"""CLIP stage: deterministic tiny-model embeddings, load by path, caption and aesthetic scores."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds

from pipeline.config.curate import ConfigError, CurateConfig
from pipeline.stages.clip_embed import ClipStage, check_clip_config
from pipeline.synthetic.world import ShotRenderer, ShotSpec


def _cfg(**clip) -> CurateConfig:
    """CLIP on (the tiny random model unless `pretrained` is given), plus `clip` fields."""
    base = dataclasses.replace(CurateConfig().clip, enabled=True)
    return dataclasses.replace(CurateConfig(), clip=dataclasses.replace(base, **clip))


def _frames() -> list[np.ndarray]:
    specs = [ShotSpec(c, "circle", "left", "x", h, 3) for c, h in (("red", 0.1), ("blue", 0.6))]
    return [np.stack([ShotRenderer(s, 160, 90, 8).frame(t) for t in (0, 4)]) for s in specs]


def test_tiny_model_embeddings_are_deterministic_and_normalised():
    a = ClipStage(_cfg()).embed_clips(_frames())
    b = ClipStage(_cfg()).embed_clips(_frames())
    assert np.array_equal(np.stack(a), np.stack(b))
    assert np.allclose([np.linalg.norm(e) for e in a], 1.0, atol=1e-5)
    assert not np.allclose(a[0], a[1])
    one_by_one = ClipStage(_cfg(batch_size=1)).embed_clips(_frames())
    assert np.allclose(np.stack(one_by_one), np.stack(a), atol=1e-5)


def test_a_saved_checkpoint_loads_by_path(tmp_path):
    stage = ClipStage(_cfg())
    path = tmp_path / "tiny.pt"
    torch.save(stage.model.state_dict(), path)
    same = ClipStage(_cfg(pretrained=str(path))).embed_clips(_frames())
    assert np.array_equal(np.stack(same), np.stack(stage.embed_clips(_frames())))
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in stage.model.state_dict().items()}
    torch.save(state, path)
    other = ClipStage(_cfg(pretrained=str(path))).embed_clips(_frames())
    assert not np.allclose(np.stack(other), np.stack(same))


def _laion_head(path, dim: int) -> None:
    """The LAION improved-aesthetic-predictor layout (Linear layers 0, 2, 4, 6, 7)."""
    g = torch.Generator().manual_seed(0)
    sizes = [dim, 32, 16, 8, 4, 1]
    keys = [0, 2, 4, 6, 7]
    state = {}
    for k, (i, o) in zip(keys, zip(sizes, sizes[1:], strict=False), strict=True):
        state[f"layers.{k}.weight"] = torch.randn(o, i, generator=g) / i**0.5
        state[f"layers.{k}.bias"] = torch.randn(o, generator=g)
    torch.save(state, path)


def test_stage_scores_a_staged_video(junk_curated, tmp_path, tiny_clip_reference):
    out, _, _ = junk_curated
    src = next((out / "work" / "videos").glob("*/*.mp4"))
    folder = tmp_path / "v.partial"
    folder.mkdir()
    shutil.copy(src, folder / src.name)
    clip_id = src.stem
    head = tmp_path / "aesthetic.pth"
    _laion_head(head, 64)
    cfg = _cfg(aesthetic_head=str(head))
    check_clip_config(cfg)
    clip = {"clip_id": clip_id, "reject_reasons": [], "caption": "a red circle moving left"}
    video = {"status": "ok", "stage_dir": str(folder), "clips": [clip]}
    row = ClipStage(cfg)({"video": json.dumps(video)})
    scored = json.loads(row["video"])["clips"][0]
    emb = np.load(folder / f"{clip_id}.emb.npy")
    assert emb.dtype == np.float16 and emb.shape == (64,)
    # clip_score: the cosine of the stored embedding and the caption's text embedding, the
    # latter from the same tiny model rebuilt with open_clip alone.
    text = tiny_clip_reference[0]([clip["caption"]])[0]
    cosine = float(emb.astype(np.float32) @ text)
    assert scored["clip_score"] == pytest.approx(cosine, abs=2e-5)
    assert isinstance(scored["aesthetic"], float)
    expected = torch.load(head)
    x = torch.from_numpy(emb.astype(np.float32))
    for k in (0, 2, 4, 6, 7):
        x = x @ expected[f"layers.{k}.weight"].T + expected[f"layers.{k}.bias"]
    assert scored["aesthetic"] == pytest.approx(float(x[0]), abs=1e-4)


def test_bad_model_or_head_width_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="--clip.model"):
        check_clip_config(_cfg(model="no-such-model"))
    head = tmp_path / "wide.pth"
    _laion_head(head, 768)
    with pytest.raises(ConfigError, match="--clip.aesthetic_head"):
        check_clip_config(_cfg(aesthetic_head=str(head)))
    with pytest.raises(ConfigError, match="--clip.pretrained"):
        _cfg(pretrained=str(tmp_path / "missing.pt"))


def test_embeddings_go_to_the_shards_and_the_side_file(junk_curated):
    out, summary, _ = junk_curated
    kept = {c["clip_id"] for c in pq.read_table(out / "clips.parquet").to_pylist() if c["kept"]}
    urls = [str(out / "shards" / s) for s in summary["shards"]]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        seen[sample["__key__"]] = np.load(__import__("io").BytesIO(sample["emb.npy"]))
    assert seen.keys() == kept
    side = pq.read_table(out / "embeddings.parquet").to_pylist()
    by_id = {r["clip_id"]: r for r in side}
    assert kept <= by_id.keys() and any(not r["kept"] for r in side)
    some = next(iter(kept))
    assert np.allclose(by_id[some]["embedding"], seen[some].astype(np.float32))
