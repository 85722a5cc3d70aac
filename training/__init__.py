"""Waveform diffusion, Dance Diffusion compatible: model, diffusion maths, checkpoints, training.

The network: ``blocks`` (Dance Diffusion's layers), ``foldnet`` (the U-Net built for the CPU),
``model`` (the U-Net, its config and the class-conditional ``Denoiser``); ``diffusion``
(schedule, loss, EMA, ODE solvers); ``checkpoints`` (this project's files and original
``.ckpt`` ones).
Training (``python -m training.train``): ``config`` (typed settings, precision, the model of
``model.preset``), ``data`` (the set in memory), ``resume``, ``tracking`` (DVCLive, demos),
``train`` (the loop). Sampling (``python -m training.sample``): ``sampling`` (the algorithms),
``sample_inputs`` (flags and --init sounds, checked), ``outputs`` (WAVs and samples.csv),
``sample`` (the command).
"""

import torch

# Denormal floats are ~100x slower on x86 CPUs, and zero-initialised layers drive gradients and
# Adam's moments into them within a few dozen steps (training slowed about 7x). Flushing them to
# zero costs nothing measurable in accuracy; every command of this package runs with it.
torch.set_flush_denormal(True)
