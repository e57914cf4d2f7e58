"""A 2-process DDP run on CPU (gloo) through Lightning: disjoint data, identical weights.

Lightning's `ddp` strategy re-launches the running script for rank 1, so the run
lives in its own script, started in a subprocess. Each rank writes down the clip
keys it trained on and a checksum of its weights and EMA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import lightning as L
    import numpy as np
    import torch

    from pipeline.shards import ShardWriter
    from train.data import VideoDataModule
    from train.dit import DiTConfig
    from train.module import VideoDiffusion
    from train.text import TextEncoderSpec
    from train.video_io import encode_mp4

    out = Path(sys.argv[1])
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

    class Keys(L.Callback):
        def __init__(self):
            self.keys = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.keys += list(batch["key"])

        def on_train_end(self, trainer, module):
            dit = torch.cat([p.detach().flatten() for p in module.dit.parameters()])
            ema = torch.cat([p.detach().flatten() for p in module.ema.parameters()])
            report = {"keys": self.keys, "dit": float(dit.double().sum()),
                      "ema": float(ema.double().sum()), "world": trainer.world_size}
            (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))

    torch.manual_seed(0)
    model = VideoDiffusion(
        dit=DiTConfig(width=32, depth=1, heads=2), text=TextEncoderSpec(kind="random", dim=16),
        warmup_steps=1)
    data = VideoDataModule(str(shards / "*.tar"), num_frames=4, size=16, batch_size=2,
                           num_workers=0, mode="epoch", flip_prob=0.0)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2,
                        callbacks=[Keys()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    """
)


def test_two_process_ddp_sees_disjoint_samples_and_stays_in_sync(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    keys0, keys1 = set(ranks[0]["keys"]), set(ranks[1]["keys"])
    assert len(keys0) == len(keys1) == 4  # 2 steps x batch 2 on each rank
    assert not keys0 & keys1  # disjoint: the 8 clips split between the ranks
    assert ranks[0]["dit"] == ranks[1]["dit"]  # gradients were all-reduced
    assert ranks[0]["ema"] == ranks[1]["ema"]
