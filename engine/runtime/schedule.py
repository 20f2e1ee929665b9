"""Masking schedules for iterative (MaskGIT-style) decoding.

The schedule says which fraction of the initially unknown tokens is still masked after a given
fraction of the steps. `masked_counts` replays the decode loop's integer arithmetic so the GUI
can show the cost of a run (tokens x steps) and tests can check the loop step by step.
"""

from __future__ import annotations

import math

METHODS = ("cosine", "linear", "square", "cubic")

# Decoding defaults (MAGE/MaskGIT: 12 steps, choice temperature 4.5) for bundles whose manifest
# names none; the one place they are written.
DEFAULT_STEPS = 12
DEFAULT_CHOICE_TEMPERATURE = 4.5


def mask_ratio(progress: float, method: str = "cosine") -> float:
    """Fraction of the initially unknown tokens still masked after `progress` of the run.

    Args:
        progress: fraction of the steps done, in [0, 1].
        method: "cosine" (MAGE/MaskGIT default: cos(pi/2 * progress)), "linear" (1 - progress),
            "square" (1 - progress**2) or "cubic" (1 - progress**3).

    Returns:
        A float in [0, 1]; 1 at progress 0 and 0 at progress 1 (up to float rounding).

    Raises:
        ValueError: unknown method or progress outside [0, 1].
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    # math (float64) on purpose: the official counts (e.g. 128 = floor(256 * cos(pi/3))) rely
    # on float64 rounding; float32 would give 127 at that step.
    if method == "cosine":
        return math.cos(math.pi / 2.0 * progress)
    if method == "linear":
        return 1.0 - progress
    if method == "square":
        return 1.0 - progress**2
    if method == "cubic":
        return 1.0 - progress**3
    raise ValueError(f"unknown schedule {method!r}; expected one of {', '.join(METHODS)}")


def check_schedule_args(steps: int, start_step: int, method: str) -> None:
    """Validates the step arguments shared by `masked_counts` and the decoder.

    Raises:
        ValueError: steps < 1, start_step outside [0, steps), or an unknown method.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(start_step, bool) or not isinstance(start_step, int):
        raise ValueError(f"start_step must be an integer, got {start_step!r}")
    if not 0 <= start_step < steps:
        raise ValueError(
            f"start_step must be in [0, {steps - 1}] for {steps} steps, got {start_step}"
        )
    if method not in METHODS:
        raise ValueError(f"unknown schedule {method!r}; expected one of {', '.join(METHODS)}")


def mask_len_after_step(
    unknown0: int, unknown_now: int, step: int, steps: int, method: str = "cosine"
) -> int:
    """Number of tokens to re-mask at the end of `step` (the decode loop's rule).

    floor(unknown0 * mask_ratio((step + 1) / steps)), clamped to >= 1 so decoding never finishes
    early, and to <= unknown_now - 1 so every step fixes at least one token. The last step and
    a sample with nothing unknown re-mask nothing.

    Args:
        unknown0: unknown tokens of this sample when decoding started.
        unknown_now: unknown tokens entering this step.
        step: absolute 0-based step index (start_step counts).
        steps: total number of steps of the schedule.
        method: schedule name, see `mask_ratio`.

    Returns:
        The number of tokens to re-mask, in [0, max(unknown_now - 1, 0)].
    """
    if unknown_now <= 0 or step >= steps - 1:
        return 0
    wanted = math.floor(unknown0 * mask_ratio((step + 1) / steps, method))
    return max(0, min(max(1, wanted), unknown_now - 1))


def masked_counts(
    total_unknown: int, steps: int, start_step: int = 0, method: str = "cosine"
) -> list[int]:
    """Unknown tokens entering each step, exactly as the decode loop computes them.

    Args:
        total_unknown: unknown tokens in the input (e.g. 256 for a fully masked 16x16 grid).
        steps: schedule length (e.g. 12).
        start_step: first step to run (MaskGIT editing uses 2); the schedule is still based on
            `total_unknown`.
        method: schedule name, see `mask_ratio`.

    Returns:
        A list of steps - start_step ints; the first is total_unknown. The model runs once per
        entry, so sum(counts) is a fair "tokens x steps" cost estimate.
    """
    check_schedule_args(steps, start_step, method)
    if total_unknown < 0:
        raise ValueError(f"total_unknown must be >= 0, got {total_unknown}")
    counts = []
    unknown = total_unknown
    for step in range(start_step, steps):
        counts.append(unknown)
        unknown = mask_len_after_step(total_unknown, unknown, step, steps, method)
    return counts
