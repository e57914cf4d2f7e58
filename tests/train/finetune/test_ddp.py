"""LoRA fine-tuning of the tiny Wan on 2 processes (gloo DDP on CPU) through Lightning.

Lightning's `ddp` strategy re-launches the running script for rank 1, so the run lives in
its own script, started in a subprocess (as tests/train/test_ddp.py does). Each rank saves
its LoRA weights at the start and the end of training and the clip keys it trained on;
every call of the LoRA export is logged with the rank that made it. Gradient
checkpointing is on, as configs/train/wan_lora.yaml has it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import lightning as L
    import torch

    import train.finetune.module as finetune_module
    from train.finetune.data import FinetuneDataModule
    from train.finetune.module import FinetuneModule

    pretrained, shards, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    export_lora = finetune_module.export_lora

    def logged_export(*args, **kwargs):
        with open(out / "exports.txt", "a") as f:
            f.write(f"{torch.distributed.get_rank()}\\n")
        return export_lora(*args, **kwargs)

    finetune_module.export_lora = logged_export

    def lora(module):
        return {n: p.detach().clone() for n, p in module.transformer.named_parameters()
                if p.requires_grad}

    class Record(L.Callback):
        def on_train_start(self, trainer, module):
            self.start, self.keys = lora(module), []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.keys += list(batch["key"])

        def on_train_end(self, trainer, module):
            report = {"start": self.start, "end": lora(module), "keys": self.keys,
                      "world": trainer.world_size, "step": trainer.global_step}
            torch.save(report, out / f"rank{trainer.global_rank}.pt")

    L.seed_everything(0)
    model = FinetuneModule(pretrained, lora={"rank": 4}, lr=1e-3, warmup_steps=0,
                           gradient_checkpointing=True)
    data = FinetuneDataModule(shards, frame_buckets=[9, 17], size_buckets=[[32, 32], [32, 48]],
                              fps=12, batch_size=1, num_workers=0, epoch_size=4)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=3,
                        callbacks=[Record()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=out / "run")
    trainer.fit(model, data)
    """
)


def test_two_process_lora_stays_in_sync_and_rank_0_exports(tiny_pipeline, clip_shards, tmp_path):
    pretrained, shards = tiny_pipeline("wan"), clip_shards()
    (tmp_path / "ddp_run.py").write_text(SCRIPT)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).parents[3]),
    }
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "ddp_run.py"), str(pretrained), shards, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]  # both ranks finished
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [3, 3]
    assert all(len(r["keys"]) == 3 for r in ranks)  # 3 steps of batch 1 on each rank
    start, end = ranks[0]["start"], ranks[0]["end"]
    assert start and set(start) == set(ranks[1]["start"]) == set(end)
    for name in start:
        assert torch.equal(start[name], ranks[1]["start"][name]), name  # DDP's broadcast
        assert torch.equal(end[name], ranks[1]["end"][name]), name  # all-reduced gradients
    ups = [n for n in start if "lora_B" in n]
    assert ups and all(not start[n].any() for n in ups)  # B starts at zero
    assert all(end[n].abs().max() > 0 for n in ups)  # ...and trained
    # rank 0 alone exported, and the file holds the trained weights
    assert (tmp_path / "exports.txt").read_text().split() == ["0"]
    exported = load_file(tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors")
    assert len(exported) == len(end)
    for name, value in end.items():
        assert torch.equal(exported["transformer." + name.replace(".default", "")], value), name
