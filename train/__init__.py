"""Training: a text-to-video diffusion model from curated shards, in pixels or latents.

The top level holds what ties training together:

    cli.py       `clipmill train fit|validate|plan` (LightningCLI) and `clipmill sample`
    module.py    `VideoDiffusion`, the LightningModule: rectified flow around the DiT
    flow.py      rectified flow: timestep sampling and shift, loss target, Euler/Heun + CFG
    schedule.py  the warmup-cosine learning rate both LightningModules use
    filmstrip.py videos as labelled, enlarged filmstrips (`clipmill sample`'s grid.png)

Subpackages, lowest layer first (a layer imports only its own or lower ones; checked
by tests/test_layout.py):

    data/         shards -> batches: shard reading (shards), datasets, loaders and
                  buckets, augment (temporal crop, resize, crop, caption-aware flip),
                  video_io (PyAV), stills (joint image-video), and the DataModule (module)
                  that picks mp4 or latent reading from `--data.kind`
    models/       the DiT (dit, attention), EMA (ema) and frozen text encoders (text)
    autoencoder/  the video VAE (model, blocks, codec), its losses, the diffusers wrapper
                  (diffusers_vae), load/save (io) and its LightningModule (module)
    cache/        the latent cache: format (one owner of the on-disk layout), builder,
                  sources (shards, image folders, low-motion rejects), latent datasets
                  (latent) and `clipmill cache` (cli)
    finetune/     fine-tuning pretrained diffusers families (Wan, LTX-Video, CogVideoX):
                  LoRA or full, their objectives, buckets on the family's grid, the family
                  latent cache, LoRA export, `clipmill train plan`; beside module.py

A batch flows shards -> data/ (or cache/ for latents) -> module.py, which encodes the
caption with models/text, noises the clip with flow.py and trains models/dit; sampling
runs the same flow backwards and, for latents, decodes with autoencoder/.

This package never imports `pipeline`: the two halves meet in `schemas/` and the shards.
"""
