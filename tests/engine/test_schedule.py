"""Tests for engine.runtime.schedule: ratios and the per-step unknown counts."""

import itertools
import math

import pytest

from engine.runtime.schedule import mask_len_after_step, mask_ratio, masked_counts

OFFICIAL_12 = [256, 253, 247, 236, 221, 203, 181, 155, 128, 97, 66, 33]
OFFICIAL_20 = [
    256,
    255,
    252,
    248,
    243,
    236,
    228,
    218,
    207,
    194,
    181,
    166,
    150,
    133,
    116,
    97,
    79,
    59,
    40,
    20,
]


def test_official_counts_12_steps():
    assert masked_counts(256, 12) == OFFICIAL_12


def test_official_counts_20_steps():
    assert masked_counts(256, 20) == OFFICIAL_20


@pytest.mark.parametrize("method", ["cosine", "linear", "square", "cubic"])
def test_ratio_endpoints_and_monotone(method):
    assert mask_ratio(0.0, method) == pytest.approx(1.0)
    assert mask_ratio(1.0, method) == pytest.approx(0.0, abs=1e-12)
    values = [mask_ratio(i / 50, method) for i in range(51)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_cosine_value():
    assert mask_ratio(0.5) == pytest.approx(math.cos(math.pi / 4))
    assert mask_ratio(0.5, "linear") == pytest.approx(0.5)
    assert mask_ratio(0.5, "square") == pytest.approx(0.75)
    assert mask_ratio(0.5, "cubic") == pytest.approx(0.875)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule"):
        mask_ratio(0.5, "exp")
    with pytest.raises(ValueError, match="progress"):
        mask_ratio(1.5)
    with pytest.raises(ValueError, match="steps"):
        masked_counts(10, 0)
    with pytest.raises(ValueError, match="start_step"):
        masked_counts(10, 12, start_step=12)
    with pytest.raises(ValueError, match="start_step"):
        masked_counts(10, 12, start_step=-1)
    with pytest.raises(ValueError, match="total_unknown"):
        masked_counts(-1, 12)


def test_partial_input_uses_its_own_count():
    counts = masked_counts(51, 12)
    assert counts[0] == 51
    assert counts[1] == math.floor(51 * math.cos(math.pi / 2 / 12))
    assert len(counts) == 12


def test_start_step_maskgit_editing():
    # MaskGIT editing: start_iter=2 of 12 -> 10 steps, ratios 3/12 .. 12/12 on the masked count.
    counts = masked_counts(100, 12, start_step=2)
    assert len(counts) == 10
    assert counts[0] == 100
    assert counts[1] == math.floor(100 * math.cos(math.pi / 2 * 3 / 12))


@pytest.mark.parametrize("total", [0, 1, 2, 3, 7, 51, 100, 256, 1024])
@pytest.mark.parametrize("steps", [1, 2, 5, 12, 20, 40])
@pytest.mark.parametrize("method", ["cosine", "linear", "square", "cubic"])
def test_every_step_makes_progress_and_finishes(total, steps, method):
    counts = masked_counts(total, steps, method=method)
    assert len(counts) == steps
    assert counts[0] == total
    for before, after in itertools.pairwise(counts):
        # Strictly decreasing while anything is unknown, then stays at 0.
        assert after < before or before == after == 0
        # Never finishes before the last step unless the clamp forced one token per step.
        if after == 0 and before > 0:
            assert before == 1
    # The last step fills everything it is given.
    assert mask_len_after_step(total, counts[-1], steps - 1, steps, method) == 0


def test_clamp_to_at_least_one_while_possible():
    # floor(256 * cos(pi/2 * 11/12)) = 33 but with 20 steps near the end the floor can be 0;
    # the clamp keeps one token masked until the last step.
    counts = masked_counts(3, 20)
    assert counts[:4] == [3, 2, 1, 0]
    assert mask_len_after_step(3, 3, 18, 20) == 1  # floor(3 * cos(pi/2*19/20)) = 0 -> 1


def test_mask_len_clamped_below_unknown_now():
    assert mask_len_after_step(256, 10, 0, 12) == 9
    assert mask_len_after_step(256, 0, 0, 12) == 0
    assert mask_len_after_step(256, 200, 11, 12) == 0
