"""train/cache/builder.py, sources.py and `clipmill cache` on tiny shards and a tiny random VAE.

Clips are 13 frames of 24x32 at 24 fps: a grey band whose level encodes the
frame index and a red square moving left or right, written with the
curation's own ShardWriter (one corrupt mp4 among them).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from schemas.cache import (
    cache_header_schema,
    cache_sample_schema,
    validate_cache_header,
    validate_cache_sample,
)
from schemas.records import CLIP_SCHEMA, empty_clip
from train.autoencoder.io import save_autoencoder
from train.autoencoder.model import VideoAutoencoder
from train.cache.builder import CacheBuilder, CacheConfig, draw_views
from train.cache.cli import cache_main
from train.cache.format import StaleCache, check_header, read_header
from train.cache.sources import add_images, add_low_motion, add_shards
from train.data.shards import iter_tar_samples
from train.data.video_io import encode_mp4
from train.models.text import TextEncoderSpec, build_text_encoder

FRAMES, H, W, FPS = 13, 24, 32, 24.0
TEXT = TextEncoderSpec(kind="random", dim=16, max_length=16)
CFG = CacheConfig(views=3, num_frames=5, size=(16, 16), flip_prob=0.5, seed=0)


def render(direction: int) -> np.ndarray:
    video = np.zeros((FRAMES, H, W, 3), np.uint8)
    for i in range(FRAMES):
        video[i, :4] = 10 + 18 * i
        x = 22 - 1 * i if direction < 0 else 2 + i
        video[i, 10:18, x : x + 8, 0] = 255
    return video


def key(i: int) -> str:
    return f"{i:016x}_{0:07d}_{FRAMES:07d}"


def clip_samples(n: int, corrupt_at: int | None = None):
    """(key, video, record) of `n` clips, left and right in turn; a broken mp4 at `corrupt_at`."""
    for i in range(n):
        side = "left" if i % 2 == 0 else "right"
        caption = f"a red square moving {side}"
        captions = [
            {"text": caption, "source": "vlm", "score": 0.9},
            {"text": f"red box going {side}", "source": "filename", "score": None},
        ]
        record = empty_clip(
            clip_id=key(i), caption=caption, captions=captions, fps=FPS, motion_score=0.5 + i,
            clip_score=0.3, sample_weight=2.0 if i == 1 else None, kept=True,
        )  # fmt: skip
        video = render(-1 if i % 2 == 0 else 1)
        yield key(i), b"\x00\x00\x00\x18ftypmp42 broken" if i == corrupt_at else video, record


def npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory, shard_writer, tiny_vae) -> tuple[Path, str, VideoAutoencoder]:
    root = tmp_path_factory.mktemp("cache")
    shards = shard_writer(root / "shards", clip_samples(5, corrupt_at=3), FPS, max_samples=3)
    vae = tiny_vae()
    builder = CacheBuilder(root / "cache", vae, build_text_encoder(TEXT), CFG, "tiny")
    add_shards(builder, shards)
    builder.finish()
    return root / "cache", shards, vae


def samples(cache: Path, folder: str = "shards") -> dict[str, dict]:
    out = {}
    for tar in sorted((cache / folder).glob("*.tar")):
        for s in iter_tar_samples(str(tar)):
            out[s["__key__"]] = s
    return out


def test_round_trip_decodes_to_the_clip_through_the_autoencoder(built):
    cache, shards, vae = built
    raw = next(iter_tar_samples(str(sorted(Path(shards).parent.glob("*.tar"))[0])))
    videos, views, _ = draw_views(raw, CFG)
    stored = samples(cache)[raw["__key__"]]
    mean = torch.from_numpy(npy(stored["mean.npy"]).astype(np.float32))
    assert mean.shape == (CFG.views, *vae.latent_shape(CFG.num_frames, *CFG.size))
    x = torch.from_numpy(np.stack(videos)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        fresh_mean, fresh_logvar = vae.encode(x)
        through = vae.decode(fresh_mean)
        from_cache = vae.decode(mean)
    assert torch.allclose(mean, fresh_mean, atol=2e-3, rtol=1e-2)
    logvar = torch.from_numpy(npy(stored["logvar.npy"]).astype(np.float32))
    assert torch.allclose(logvar, fresh_logvar, atol=2e-2, rtol=1e-2)
    assert from_cache.shape == x.shape
    assert (from_cache - through).abs().max() < 1e-2


def test_views_differ_and_flipped_views_carry_mirrored_captions(built):
    cache, _, _ = built
    stored = samples(cache)
    for s in stored.values():
        record = json.loads(s["json"])
        validate_cache_sample(record)
        mean = npy(s["mean.npy"])
        for a in range(CFG.views):
            for b in range(a + 1, CFG.views):
                assert np.abs(mean[a].astype(np.float32) - mean[b]).max() > 1e-3
        views = record["views"]
        assert not views[0]["flip"] and views[0]["frames"] == [4, 5, 6, 7, 8]  # centred
        assert record["texts"][0] == "" and record["text_lengths"][0] >= 1
        side = "left" if int(record["source"][:16], 16) % 2 == 0 else "right"
        mirrored = {"left": "right", "right": "left"}[side]
        for view in views:
            texts = [record["texts"][r] for r in view["captions"]]
            assert len(texts) == 2 and texts[0].startswith("a red square moving")
            assert all(t.endswith(mirrored if view["flip"] else side) for t in texts)
    flips = [v["flip"] for s in stored.values() for v in json.loads(s["json"])["views"]]
    assert any(flips) and not all(flips)


def test_text_states_are_the_encoders(built):
    cache, _, _ = built
    s = next(iter(samples(cache).values()))
    record, states = json.loads(s["json"]), npy(s["text.npy"])
    want, mask = build_text_encoder(TEXT)(record["texts"])
    assert record["text_lengths"] == mask.sum(1).tolist()
    for row, n in enumerate(record["text_lengths"]):
        assert np.allclose(states[row, :n], want[row, :n].numpy(), atol=1e-2)


def test_header_names_the_encoders_and_counts_the_corrupt_clip(built):
    cache, _, vae = built
    header = read_header(cache)
    validate_cache_header(header)
    assert header["counts"]["clips"] == 4 and header["counts"]["corrupt"] == 1
    assert header["counts"]["views"] == 4 * CFG.views
    assert header["autoencoder"]["fingerprint"] == vae.fingerprint()
    assert header["text_encoder"]["id"] == build_text_encoder(TEXT).encoder_id
    assert header["bytes"]["per_item"] > 0 and set(samples(cache)) == {key(i) for i in (0, 1, 2, 4)}


def test_a_stale_cache_is_refused_naming_the_flag(built, tiny_vae):
    cache, _, _ = built
    header = read_header(cache)
    other = tiny_vae(seed=1).fingerprint()
    with pytest.raises(StaleCache, match="--model.autoencoder") as err:
        check_header(header, fingerprint=other)
    assert "\n" not in str(err.value)
    with pytest.raises(StaleCache, match="--model.text"):
        check_header(header, text_encoder_id="random:d16:s1:v4096:L16")
    check_header(header, fingerprint=header["autoencoder"]["fingerprint"])


def test_shipped_schema_files_are_in_sync():
    root = Path(__file__).parents[3] / "schemas"
    for name, schema in (("sample", cache_sample_schema()), ("header", cache_header_schema())):
        assert json.loads((root / f"cache_{name}.schema.json").read_text()) == schema
    with pytest.raises(jsonschema.ValidationError):
        validate_cache_sample({"key": "a.b", "kind": "video"})


def test_bad_options_name_their_flag(tiny_vae):
    with pytest.raises(ValueError, match="--views"):
        CacheConfig(views=0)
    with pytest.raises(ValueError, match="--frames must be 1 \\+ k\\*2"):
        CacheConfig(num_frames=4).check_autoencoder(tiny_vae())
    with pytest.raises(ValueError, match="--size"):
        CacheConfig(size=(18, 16)).check_autoencoder(tiny_vae())


def test_views_spread_over_the_clip_with_span(tiny_vae):
    raw = {"__key__": key(0), "mp4": encode_mp4(render(-1), FPS), "txt": b"a red square"}
    cfg = dataclasses.replace(CFG, span_s="clip", stride_jitter=0.0)
    _, views, _ = draw_views(raw, cfg)
    stride = (FRAMES - 1) / (cfg.num_frames - 1)
    assert views[0]["frames"] == [0, 3, 6, 9, 12]  # view 0: the whole clip, first to last
    for view in views:
        assert len(view["frames"]) == cfg.num_frames
        assert view["fps"] == pytest.approx(FPS / stride)  # the rate the frames show
    half = dataclasses.replace(cfg, span_s=0.25)  # 6 frames of the 13, centred: 3..8
    assert draw_views(raw, half)[1][0]["frames"] == [3, 4, 6, 7, 8]
    with pytest.raises(ValueError, match="give one of --fps, --frame-stride, --span-s"):
        CacheConfig(span_s="clip", fps=6.0)
    with pytest.raises(ValueError, match="--span-s must be a positive number of seconds"):
        CacheConfig(span_s=-1.0)


def manifest_row(i: int, source: str, caption: str, reasons: list[str]) -> dict:
    return empty_clip(
        clip_id=key(i), video_id=key(i)[:16], source_path=source, scene_index=0, window_index=0,
        start_frame=0, end_frame=FRAMES, start_s=0.0, end_s=FRAMES / FPS,
        duration_s=FRAMES / FPS, caption=caption, reject_reasons=reasons,
    )  # fmt: skip


def test_stills_from_an_image_folder_and_low_motion_rejects(tmp_path, tiny_vae):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    frame = render(1)[6]
    Image.fromarray(frame).save(images / "red_square.png")
    (images / "red_square.txt").write_text("a red square on black\n")
    Image.fromarray(frame[:, ::-1]).save(images / "mirror-shot.jpg")
    (images / "broken.png").write_bytes(b"not a png")
    curated = tmp_path / "curated"
    curated.mkdir()
    source = tmp_path / "still.mp4"
    source.write_bytes(encode_mp4(render(1), FPS))
    rows = [
        manifest_row(7, str(source), "a still red square", ["low_motion"]),
        manifest_row(8, str(source), "blurry", ["low_motion", "blurry"]),
        manifest_row(9, str(source), "kept", []) | {"kept": True},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=CLIP_SCHEMA), curated / "clips.parquet")
    vae = tiny_vae()
    builder = CacheBuilder(tmp_path / "cache", vae, build_text_encoder(TEXT), CFG)
    add_images(builder, str(images))
    add_low_motion(builder, str(curated))
    header = builder.finish()
    assert header["counts"]["images"] == 3 and header["counts"]["corrupt/bad_image"] == 1
    stills = samples(tmp_path / "cache", "images")
    assert len(stills) == 3 and header["image_shards"] and not header["shards"]
    texts = set()
    for s in stills.values():
        record = json.loads(s["json"])
        assert record["kind"] == "image" and record["latent_shape"] == [4, 1, 4, 4]
        assert npy(s["mean.npy"]).shape == (CFG.views, 4, 1, 4, 4)
        texts |= set(record["texts"])
    assert {"a red square on black", "mirror shot", "a still red square"} <= texts
    assert "blurry" not in texts and "kept" not in texts


def test_cli_writes_a_cache_and_refuses_to_mix_two(built, tmp_path, capsys):
    _, shards, vae = built
    ckpt = save_autoencoder(vae, tmp_path / "vae.ckpt")
    out = tmp_path / "cache"
    args = ["--ckpt-vae", ckpt, "--shards", shards, "--output", str(out), "--views", "2",
            "--frames", "3", "--size", "16", "--text.kind", "random", "--text.dim", "16",
            "--limit", "2", "--device", "cpu"]  # fmt: skip
    assert cache_main(args) == 0
    assert "2 clips" in capsys.readouterr().out
    header = read_header(out)
    assert header["autoencoder"]["fingerprint"] == vae.fingerprint()
    assert header["sample"]["views"] == 2 and header["text_encoder"]["spec"]["kind"] == "random"
    assert cache_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cache_main([*args, "--overwrite", "--frames", "4"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_cli_takes_encoders_and_sampling_from_the_training_config(built, tmp_path):
    _, shards, vae = built
    config = tmp_path / "latent.yaml"
    model = {"autoencoder": save_autoencoder(vae, tmp_path / "vae.ckpt"),
             "text": {"kind": "random", "dim": 16, "max_length": 8}}  # fmt: skip
    data = {"kind": "latents", "num_frames": 3, "size": 8, "stride_jitter": 0.0}
    config.write_text(json.dumps({"model": model, "data": data}))  # JSON is YAML
    out = tmp_path / "cache"
    argv = ["--train-config", str(config), "--shards", shards, "--output", str(out),
            "--views", "1", "--limit", "1", "--device", "cpu"]  # fmt: skip
    assert cache_main(argv) == 0
    header = read_header(out)
    assert header["text_encoder"]["id"] == "random:d16:s0:v4096:L8"
    assert header["sample"]["num_frames"] == 3 and header["sample"]["size"] == [8, 8]
    assert header["sample"]["stride_jitter"] == 0.0  # the trainer's pace, not the cache's 0.25
    assert header["autoencoder"]["spec"] == model["autoencoder"]
