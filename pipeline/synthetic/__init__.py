"""The shapes world: synthetic footage with exact ground truth, and a checker for samples.

vocab (colours, shapes, directions) <- config (SynthConfig) <- world (layout and
drawing), junk (junk shots) <- synth (`clipmill synth`); checker finds the shape in
a frame, evaluate scores generated samples (`clipmill evaluate`).
"""
