"""The latent cache: format (the on-disk layout, one owner) <- builder (encode views) <-
sources (shards, images, low-motion rejects), latent (training datasets), cli."""
