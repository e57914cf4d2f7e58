"""2-process DDP runs on CPU (gloo) through Lightning: disjoint data, identical weights,
and a checkpoint that resumes on 2 processes and on 1 (a change of world size).

Lightning's `ddp` strategy re-launches the running script for rank 1, so the run
lives in its own script, started in a subprocess. Each rank writes down the clip
keys it trained on, a checksum of its weights and EMA at the start and the end,
and where the loops stood when training started (restored step, epoch, Adam state).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    import numpy as np
    import torch

    from schemas.shards import ShardWriter
    from train.data.module import VideoDataModule
    from train.models.dit import DiTConfig
    from train.module import VideoDiffusion
    from train.models.text import TextEncoderSpec
    from train.data.video_io import encode_mp4

    out = Path(sys.argv[1])
    devices, max_steps, resume, tag = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    shards = out / "shards"
    if not shards.exists():  # rank 0 runs this before it starts rank 1
        with ShardWriter(shards, max_samples=4) as writer:
            for i in range(8):
                key = f"{i:016x}_0000000_0000006"
                video = np.full((6, 16, 16, 3), 30 * i, np.uint8)
                record = {"clip_id": key, "caption": f"clip {i}", "fps": 12.0, "n_frames": 6,
                          "width": 16, "height": 16}
                writer.write(key, {"mp4": encode_mp4(video, 12.0), "txt": f"clip {i}",
                                   "json": json.dumps(record)})

    def sums(module):
        dit = torch.cat([p.detach().flatten() for p in module.dit.parameters()])
        ema = torch.cat([p.detach().flatten() for p in module.ema.parameters()])
        return {"dit": float(dit.double().sum()), "ema": float(ema.double().sum()),
                "ema_updates": int(module.ema.num_updates)}

    class Keys(L.Callback):
        def __init__(self):
            self.keys, self.epochs, self.start = [], [], {}

        def on_train_start(self, trainer, module):
            adam = [s.get("step") for s in trainer.optimizers[0].state.values()]
            self.start = {"step": trainer.global_step, "epoch": trainer.current_epoch,
                          "adam_step": float(adam[0]) if adam else 0.0, **sums(module)}

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.keys += list(batch["key"])
            self.epochs += [trainer.current_epoch] * len(batch["key"])

        def on_train_end(self, trainer, module):
            report = {"keys": self.keys, "epochs": self.epochs, "world": trainer.world_size,
                      "start": self.start, "step": trainer.global_step, **sums(module)}
            (out / f"{tag}_rank{trainer.global_rank}.json").write_text(json.dumps(report))

    torch.manual_seed(0)
    model = VideoDiffusion(
        dit=DiTConfig(width=32, depth=1, heads=2), text=TextEncoderSpec(kind="random", dim=16),
        warmup_steps=1)
    data = VideoDataModule(str(shards / "*.tar"), **__DATA__)
    # Checkpoints as configs/train/*.yaml write them: last.ckpt every N steps.
    ckpt = ModelCheckpoint(dirpath=out / tag, save_last=True, save_top_k=0, every_n_train_steps=1)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp",
                        max_steps=max_steps, callbacks=[Keys(), ckpt], logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data, ckpt_path=None if resume == "-" else resume)
    """
)

DATA = dict(num_frames=4, size=16, batch_size=2, num_workers=0, mode="epoch", flip_prob=0.0)


def _run(out: Path, devices: int, max_steps: int, resume: str, tag: str) -> list[dict]:
    """One training run in its own process (Lightning starts the other ranks)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    args = [str(out), str(devices), str(max_steps), resume, tag]
    proc = subprocess.run(
        [sys.executable, str(out / "ddp_run.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"{tag}_rank{r}.json").read_text()) for r in range(devices)]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    """2 processes, 2 steps: one whole epoch (8 clips, batch 2 per rank); `a/last.ckpt`."""
    out = tmp_path_factory.mktemp("ddp")
    (out / "ddp_run.py").write_text(SCRIPT.replace("__DATA__", repr(DATA)))
    return out, _run(out, 2, 2, "-", "a")


def test_two_process_ddp_sees_disjoint_samples_and_stays_in_sync(first_run):
    _, ranks = first_run
    assert all(r["world"] == 2 for r in ranks)
    keys0, keys1 = set(ranks[0]["keys"]), set(ranks[1]["keys"])
    assert len(keys0) == len(keys1) == 4  # 2 steps x batch 2 on each rank
    assert not keys0 & keys1  # disjoint: the 8 clips split between the ranks
    assert ranks[0]["dit"] == ranks[1]["dit"]  # gradients were all-reduced
    assert ranks[0]["ema"] == ranks[1]["ema"]


def _epoch_keys(shards: Path, epoch: int) -> list[str]:
    """The keys a single process trains on in `epoch`, from the data module itself."""
    from train.data.module import VideoDataModule

    data = VideoDataModule(str(shards / "*.tar"), **DATA)
    data.setup("fit")
    loader = data.train_dataloader()
    loader.epoch_fn = lambda: epoch
    return [key for batch in loader for key in batch["key"]]


def _restored(start: dict, saved: dict) -> None:
    """Training starts where the checkpoint left it: weights, EMA, Adam, step, epoch."""
    assert start["step"] == 2 and start["epoch"] == 1  # epoch 0 (2 steps) was complete
    assert start["adam_step"] == 2.0
    assert start["dit"] == saved["dit"] and start["ema"] == saved["ema"]
    assert start["ema_updates"] == saved["ema_updates"] == 2


def test_ddp_checkpoint_resumes_on_two_processes(first_run):
    out, first = first_run
    ranks = _run(out, 2, 4, str(out / "a" / "last.ckpt"), "b")
    for rank in ranks:
        _restored(rank["start"], first[0])
        assert rank["step"] == 4 and set(rank["epochs"]) == {1}
    assert ranks[0]["dit"] == ranks[1]["dit"] != first[0]["dit"]  # trained on, in sync
    keys0, keys1 = set(ranks[0]["keys"]), set(ranks[1]["keys"])
    assert not keys0 & keys1 and len(keys0 | keys1) == 8  # epoch 1 covers every clip once
    assert ranks[0]["keys"] != first[0]["keys"]  # ...in epoch 1's own order


def test_ddp_checkpoint_resumes_on_one_process(first_run):
    """World size 2 -> 1: the epoch is re-split over one rank, nothing else changes."""
    out, first = first_run
    (rank,) = _run(out, 1, 4, str(out / "a" / "last.ckpt"), "c")
    _restored(rank["start"], first[0])
    assert rank["world"] == 1 and rank["step"] == 4 and set(rank["epochs"]) == {1}
    # The first 2 of epoch 1's 4 batches, as a 1-process run of epoch 1 would see them.
    assert rank["keys"] == _epoch_keys(out / "shards", 1)[:4]
