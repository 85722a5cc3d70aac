"""Waveform diffusion, Dance Diffusion compatible: model, diffusion maths, checkpoints, training.

The network: ``blocks`` (Dance Diffusion's layers), ``model`` (the U-Net, its config and the
class-conditional ``Denoiser``); ``diffusion`` (schedule, loss, EMA, ODE solvers);
``checkpoints`` (this project's files and original ``.ckpt`` ones).
Training (``python -m training.train``): ``config`` (typed settings, precision, the model of
``model.preset``), ``data`` (the set in memory), ``resume``, ``tracking`` (DVCLive, demos),
``train`` (the loop). Sampling (``python -m training.sample``): ``sampling`` (the algorithms),
``sample_inputs`` (flags and --init sounds, checked), ``outputs`` (WAVs and samples.csv),
``sample`` (the command).
"""
