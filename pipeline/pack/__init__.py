"""Pack time: decisions made over the whole collection from the stored scores.

decide (thresholds -> reject reasons) uses dedup (perceptual and semantic, with
neighbours) and weights (sample weights); pack writes shards, manifests and the
summary; repack is `clipmill pack`, which re-applies new thresholds to a finished run.
"""
