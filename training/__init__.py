"""Waveform diffusion, Dance Diffusion compatible: model, diffusion maths, checkpoints, training."""
