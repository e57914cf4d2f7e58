"""Shards to batches: shards (reading) <- datasets <- loaders, with augment and video_io
(decode) and stills (joint image-video); module is the DataModule over all of them."""
