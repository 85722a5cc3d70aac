"""The fold network's patch transforms (training/patches.py): both masks give the input back
with every gain at one, and the lapped mask's gains change smoothly from patch to patch."""

from __future__ import annotations

import pytest
import torch

from training.patches import block_mask, dct_matrix, fold, lapped_mask, mdct_matrix, unfold


@pytest.mark.parametrize("f", [4, 8, 32])
def test_both_masks_give_the_input_back_with_every_gain_at_one(f: int) -> None:
    x = torch.randn(2, 3, f * 10, generator=torch.Generator().manual_seed(f))  # 3 channels
    folded = fold(x, f)
    ones = torch.ones_like(folded)
    torch.testing.assert_close(block_mask(folded, ones, dct_matrix(f)), folded, atol=1e-5, rtol=0)
    torch.testing.assert_close(lapped_mask(folded, ones, mdct_matrix(f)), folded, atol=1e-5, rtol=0)
    torch.testing.assert_close(unfold(folded, 3), x)


def test_a_lapped_gain_step_fades_over_the_frames_that_straddle_it() -> None:
    """Gains 0 on the first 5 patches and 1 on the last 5: silence well before the step, the
    input well after, and in between the two frames over the step (gain 1/2) blend it in."""
    f = 16
    x = torch.randn(1, 1, f * 10, generator=torch.Generator().manual_seed(0))
    folded = fold(x, f)
    gains = torch.zeros_like(folded)
    gains[..., 5:] = 1.0
    y = unfold(lapped_mask(folded, gains, mdct_matrix(f)), 1)[0, 0]
    assert float(y[: 4 * f].abs().max()) < 1e-6
    torch.testing.assert_close(y[6 * f :], x[0, 0, 6 * f :], atol=1e-5, rtol=0)
    # The frame over patches 4 and 5 has gain 1/2: patch 4 is not silent, patch 5 not the input
    # (a frame taking either patch's gain alone would make one of them so).
    assert float(y[4 * f : 5 * f].abs().max()) > 1e-2
    assert float((y[5 * f : 6 * f] - x[0, 0, 5 * f : 6 * f]).abs().max()) > 1e-2
