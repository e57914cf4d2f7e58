"""The video autoencoder: codec (the API the latent path needs) <- model (causal 3D VAE,
built from blocks), diffusers_vae (pretrained diffusers VAEs) <- io (load/save);
losses and module (its LightningModule)."""
