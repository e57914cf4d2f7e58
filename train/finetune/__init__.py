"""Fine-tuning pretrained diffusers video families on curated clips: LoRA or full.

    family.py     `Family`: what the trainer needs of a family (components, text layout,
                  transformer call, flow shift); wan.py, ltx.py, cogvideox.py: one each,
                  with the constants cited; registry.py: a folder's family from model_index.json
    objective.py  flow matching (Wan, LTX-Video) and DDPM v-prediction (CogVideoX) losses
    lora.py       the peft adapter, and export in the diffusers LoRA format / save_pretrained
    buckets.py    clips onto the family's frame/size grid; the plan of what is used and dropped
    data.py       `FinetuneDataModule`: bucketed shards, or a family latent cache
    cache.py      the family latent cache: its text encoder behind TextEncoder, header checks
    module.py     `FinetuneModule`, the LightningModule
    plan.py       `clipmill train plan`
    sample.py     `clipmill sample` for fine-tuned checkpoints: the family's diffusers pipeline
    tiny.py       tiny random pipeline folders (tests, CPU benchmarks, trying the commands)

Nothing is downloaded: `--model.pretrained` is a local folder.
"""
