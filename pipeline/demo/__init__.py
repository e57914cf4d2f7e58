"""`clipmill demo`: raw footage to scored samples, both halves driven end to end.

presets (sizes) <- rows (train, sample and score one dataset) <- naive (the
unfiltered ablation's shards), latent (the autoencoder -> cache -> latent DiT row)
<- demo (the command); report writes report.md and the loss plot.
"""
