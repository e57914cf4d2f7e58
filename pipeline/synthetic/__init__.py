"""The shapes world: synthetic footage with exact ground truth, and a checker for samples.

vocab (colours, shapes, directions) <- config (SynthConfig) <- junk (junk shots),
shots (pans, flashes, fades) <- world (layout and drawing) <- truth (`truth.json`, cuts,
`.srt`) <- synth (`clipmill synth`); checker finds the shape in a frame, evaluate scores
generated samples (`clipmill evaluate`).
"""
