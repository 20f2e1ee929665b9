"""Iterative MaskGIT-style decoding of masked VQ tokens, as a generator over a logits callable.

Semantics follow MaskGIT's `decode` (github.com/google-research/maskgit,
maskgit/libml/parallel_decode.py) with MAGE's settings (github.com/LTH14/mage,
gen_img_uncond.py: 12 steps, choice temperature 4.5, cosine schedule): the
unknown count is taken per sample from the input, mask_len is computed per sample, the choice
temperature is annealed linearly, known tokens get +inf confidence and never change.

Randomness is drawn from one `numpy.random.Generator` per row, and every row only uses its own
logits and its own generator, so a seed gives the same tokens whether a row runs alone or in a
batch (given the same logits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from engine.runtime.schedule import (
    DEFAULT_CHOICE_TEMPERATURE,
    DEFAULT_STEPS,
    check_schedule_args,
    mask_len_after_step,
)

TokensToLogits = Callable[[np.ndarray], np.ndarray]


@dataclass
class DecodeStep:
    """State after one decoding step.

    Attributes:
        step: 0-based index of the step just done, counted from start_step (0..total_steps-1).
        total_steps: number of steps this run does (steps - start_step).
        tokens: int64 [B, N] ids after this step's re-masking (mask_token_id where still
            unknown); after the last step every position is filled.
        candidates: int64 [B, N] this step's sampled ids at every position (known positions
            keep their ids).
        confidence: float32 [B, N] probability the model gave each decided token when it was
            fixed; 1.0 for tokens known from the input; for still-unknown positions the
            probability of the current candidate.
        remaining: int64 [B] unknown tokens left after this step.
    """

    step: int
    total_steps: int
    tokens: np.ndarray
    candidates: np.ndarray
    confidence: np.ndarray
    remaining: np.ndarray

    @property
    def done(self) -> bool:
        """True after the last step (all tokens filled)."""
        return self.step + 1 >= self.total_steps


def make_rngs(seeds: Sequence[int]) -> list[np.random.Generator]:
    """One independent generator per row, so a row's result depends only on its own seed.

    Args:
        seeds: B non-negative integer seeds.

    Returns:
        B `numpy.random.Generator` (PCG64) objects.
    """
    return [np.random.default_rng(int(seed)) for seed in seeds]


def iterative_decode(
    tokens: np.ndarray,
    tokens_to_logits: TokensToLogits,
    *,
    mask_token_id: int,
    steps: int = DEFAULT_STEPS,
    choice_temperature: float = DEFAULT_CHOICE_TEMPERATURE,
    rngs: Sequence[np.random.Generator],
    start_step: int = 0,
    schedule: str = "cosine",
    sample_temperature: float = 1.0,
) -> Iterator[DecodeStep]:
    """Fills the masked tokens iteratively, yielding the state after every step.

    Args:
        tokens: int [B, N] ids, mask_token_id at unknown positions. Not modified.
        tokens_to_logits: maps int64 [B, N] ids (a copy) to finite float [B, N, K] logits
            over the codebook (already sliced to the K codebook entries). The model checks
            its outputs (a `Bundle` refuses a wrong shape or NaN in one line); the loop
            trusts them.
        mask_token_id: id marking unknown positions.
        steps: schedule length T.
        choice_temperature: tau0; the Gumbel noise on the log-confidence is scaled by
            tau0 * (1 - (s + 1) / T). 0 makes the re-masking purely confidence-based.
        rngs: one `numpy.random.Generator` per row (see `make_rngs`).
        start_step: first step to run (MaskGIT editing uses 2 of 12); yields T - start_step steps.
        schedule: masking schedule name (see `engine.runtime.schedule.mask_ratio`).
        sample_temperature: candidates are drawn from softmax(logits / sample_temperature).
            1 is MaskGIT/MAGE; lower values sharpen the distribution, which a small or briefly
            trained model needs to avoid filling holes with near-random codes.

    Returns:
        An iterator of `DecodeStep`; the last one has every token filled.

    Raises:
        ValueError: bad shapes, dtypes, step arguments or rng count (raised at call time).
    """
    ids = _check_tokens(tokens)
    check_schedule_args(steps, start_step, schedule)
    if not np.isfinite(choice_temperature) or choice_temperature < 0:
        raise ValueError(f"choice_temperature must be finite and >= 0, got {choice_temperature}")
    if not np.isfinite(sample_temperature) or sample_temperature <= 0:
        raise ValueError(f"sample_temperature must be finite and > 0, got {sample_temperature}")
    if len(rngs) != ids.shape[0]:
        raise ValueError(f"need one rng per row: got {len(rngs)} rngs for {ids.shape[0]} rows")
    if not all(isinstance(rng, np.random.Generator) for rng in rngs):
        raise ValueError("rngs must be numpy.random.Generator objects (see make_rngs)")
    # Validation above runs eagerly; the loop itself is a separate generator.
    return _decode_loop(
        ids,
        tokens_to_logits,
        int(mask_token_id),
        steps,
        float(choice_temperature),
        list(rngs),
        start_step,
        schedule,
        float(sample_temperature),
    )


def last_step(steps: Iterator[DecodeStep]) -> DecodeStep:
    """Exhausts an `iterative_decode` iterator and returns its last step.

    Raises:
        ValueError: the iterator yielded nothing.
    """
    last = None
    for last in steps:  # noqa: B007 - only the final value is wanted
        pass
    if last is None:
        raise ValueError("the decoding iterator yielded no step")
    return last


def reroll_least_confident(
    tokens: np.ndarray,
    confidence: np.ndarray,
    k: int | Sequence[int],
    mask_token_id: int,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """Re-masks the k least confident decided tokens of each row, for a partial re-roll.

    Args:
        tokens: int [B, N] ids (e.g. `DecodeStep.tokens` of a finished run).
        confidence: float [B, N] (e.g. `DecodeStep.confidence`).
        k: tokens to re-mask per row (an int, or one int per row); clamped to what is eligible.
        mask_token_id: id marking unknown positions.
        region: optional bool [B, N] (or [N], shared by all rows): only these positions may be
            re-masked, typically the edited token area. None: any decided position.

    Returns:
        int64 [B, N] copy of `tokens` with up to k positions per row set to mask_token_id;
        ties in confidence go to the lower index. Feed it back to `iterative_decode`.
    """
    ids = _check_tokens(tokens)
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.shape != ids.shape:
        raise ValueError(f"confidence shape {conf.shape} does not match tokens {ids.shape}")
    eligible = ids != mask_token_id
    if region is not None:
        region = np.asarray(region, dtype=bool)
        eligible &= np.broadcast_to(region, ids.shape)
    counts = np.broadcast_to(np.asarray(k, dtype=np.int64), (ids.shape[0],))
    if np.any(counts < 0):
        raise ValueError(f"k must be >= 0, got {k}")
    out = ids.copy()
    for row in range(ids.shape[0]):
        positions = np.flatnonzero(eligible[row])
        order = np.argsort(conf[row, positions], kind="stable")
        out[row, positions[order[: counts[row]]]] = mask_token_id
    return out


def _check_tokens(tokens: np.ndarray) -> np.ndarray:
    """Returns an int64 copy of a [B, N] integer token array, or raises ValueError."""
    arr = np.asarray(tokens)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"tokens must be a non-empty [B, N] array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"tokens must have an integer dtype, got {arr.dtype}")
    return arr.astype(np.int64, copy=True)


def _decode_loop(
    ids: np.ndarray,
    tokens_to_logits: TokensToLogits,
    mask_token_id: int,
    steps: int,
    temperature: float,
    rngs: list[np.random.Generator],
    start_step: int,
    schedule: str,
    sample_temperature: float = 1.0,
) -> Iterator[DecodeStep]:
    """The decode loop proper; arguments are already validated (see `iterative_decode`)."""
    batch = ids.shape[0]
    unknown0 = (ids == mask_token_id).sum(axis=1)
    # Input-known tokens count as certain; decided tokens get their probability when fixed.
    confidence = np.ones(ids.shape, dtype=np.float32)
    total = steps - start_step
    for step in range(start_step, steps):
        unknown = ids == mask_token_id
        candidates = ids.copy()
        if unknown.any():
            logits = np.asarray(tokens_to_logits(ids.copy()))  # it cannot alter our state
            ratio = (step + 1) / steps
            noise_scale = temperature * (1.0 - ratio)
            for row in range(batch):
                positions = np.flatnonzero(unknown[row])
                if positions.size == 0:
                    continue  # nothing to do: the row passes through unchanged
                mask_len = mask_len_after_step(
                    int(unknown0[row]), positions.size, step, steps, schedule
                )
                _decode_row(
                    logits[row, positions] / sample_temperature,
                    positions,
                    mask_len,
                    noise_scale,
                    rngs[row],
                    candidates[row],
                    confidence[row],
                    ids[row],
                    mask_token_id,
                )
        remaining = (ids == mask_token_id).sum(axis=1).astype(np.int64)
        yield DecodeStep(
            step=step - start_step,
            total_steps=total,
            tokens=ids.copy(),
            candidates=candidates,
            confidence=confidence.copy(),
            remaining=remaining,
        )


def _decode_row(
    logits: np.ndarray,
    positions: np.ndarray,
    mask_len: int,
    noise_scale: float,
    rng: np.random.Generator,
    candidates: np.ndarray,
    confidence: np.ndarray,
    ids: np.ndarray,
    mask_token_id: int,
) -> None:
    """One step for one row, in place on the row views `candidates`, `confidence`, `ids`.

    Args:
        logits: float [U, K] logits of the U unknown positions of this row.
        positions: int [U] indices of those positions in the row.
        mask_len: how many of them to re-mask at the end of the step.
        noise_scale: annealed choice temperature for this step.
        rng: this row's generator.
        candidates, confidence, ids: [N] row views, updated in place.
        mask_token_id: id marking unknown positions.
    """
    probs = _softmax(logits)
    chosen = _sample_categorical(probs, rng)
    chosen_prob = probs[np.arange(chosen.size), chosen]
    candidates[positions] = chosen
    confidence[positions] = chosen_prob
    # Gumbel noise is always drawn so a row's random stream does not depend on the temperature.
    noise = rng.gumbel(size=chosen.size)
    noisy = np.log(chosen_prob) + noise_scale * noise
    # Only unknown positions compete for re-masking: known ones are +inf in MaskGIT, and
    # selecting among unknown ones alone keeps them untouchable even if noise hits +inf.
    order = np.argsort(noisy, kind="stable")
    keep_masked = np.zeros(chosen.size, dtype=bool)
    keep_masked[order[:mask_len]] = True
    ids[positions] = np.where(keep_masked, mask_token_id, chosen)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 with the maximum subtracted: float [U, K] -> [U, K]."""
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def _sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF sampling, one draw per row: float [U, K] -> int64 [U].

    u is taken in (0, 1] and the pick is the first index whose cumulative sum reaches u * total,
    so a zero-probability entry can never be picked.
    """
    cdf = np.cumsum(probs, axis=1)
    u = 1.0 - rng.random(probs.shape[0])
    threshold = u * cdf[:, -1]
    return (cdf < threshold[:, None]).sum(axis=1).astype(np.int64)
