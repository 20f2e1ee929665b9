"""Tests for engine.runtime.decode with fake tokens_to_logits callables (no model needed)."""

import numpy as np
import pytest

from engine.runtime.decode import (
    DecodeStep,
    iterative_decode,
    last_step,
    make_rngs,
)
from engine.runtime.decode import (
    reroll_least_confident as reroll,
)
from engine.runtime.schedule import masked_counts

MASK = 2024
K = 1024
N = 256


def fixed_logits(seed=0, n=N, k=K, scale=3.0):
    """A fake model: the same random logits per position, whatever the input ids."""
    table = np.random.default_rng(seed).normal(size=(n, k)).astype(np.float32) * scale

    def tokens_to_logits(ids):
        assert ids.dtype == np.int64
        return np.broadcast_to(table, (ids.shape[0], n, k)).copy()

    return tokens_to_logits


def per_row_logits(seed=0, n=N, k=K):
    """A fake model whose logits depend on each row's own ids (like a real per-sample model)."""
    base = np.random.default_rng(seed).normal(size=(n, k)).astype(np.float32)

    def tokens_to_logits(ids):
        known = (ids != MASK).astype(np.float32)
        shift = (known.sum(axis=1) / n)[:, None, None]
        return base[None] * (1.0 + shift) + known[:, :, None] * 0.1

    return tokens_to_logits


def all_masked(b=1, n=N):
    return np.full((b, n), MASK, dtype=np.int64)


def collect(tokens, fn, seeds, **kwargs):
    kwargs.setdefault("mask_token_id", MASK)
    return list(iterative_decode(tokens, fn, rngs=make_rngs(seeds), **kwargs))


def entering_counts(tokens, steps_out):
    counts = [int((tokens == MASK).sum(axis=1)[0])]
    counts += [int(s.remaining[0]) for s in steps_out[:-1]]
    return counts


def test_full_masking_follows_official_12_step_counts():
    out = collect(all_masked(), fixed_logits(), [0], steps=12)
    assert len(out) == 12
    assert entering_counts(all_masked(), out) == [
        256,
        253,
        247,
        236,
        221,
        203,
        181,
        155,
        128,
        97,
        66,
        33,
    ]
    assert out[-1].remaining.tolist() == [0]
    assert out[-1].done
    assert not out[-2].done
    assert (out[-1].tokens != MASK).all()
    assert out[-1].tokens.min() >= 0
    assert out[-1].tokens.max() < K


def test_full_masking_20_steps():
    out = collect(all_masked(), fixed_logits(), [3], steps=20, choice_temperature=6.0)
    assert entering_counts(all_masked(), out) == masked_counts(256, 20)


def test_partial_input_counts_follow_schedule_on_its_unknowns():
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, K, size=(1, N))
    hole = rng.choice(N, size=51, replace=False)
    tokens[0, hole] = MASK
    out = collect(tokens, fixed_logits(), [1], steps=12)
    assert entering_counts(tokens, out) == masked_counts(51, 12)
    assert entering_counts(tokens, out) != masked_counts(256, 12)[:12]


def test_known_tokens_never_change_and_decided_tokens_stay():
    rng = np.random.default_rng(9)
    tokens = rng.integers(0, K, size=(2, N))
    tokens[0, 40:140] = MASK
    tokens[1, ::3] = MASK
    known = tokens != MASK
    previous = tokens.copy()
    for step in iterative_decode(
        tokens, per_row_logits(), mask_token_id=MASK, rngs=make_rngs([1, 2])
    ):
        assert np.array_equal(step.tokens[known], tokens[known])
        assert np.array_equal(step.candidates[known], tokens[known])
        assert np.all(step.confidence[known] == 1.0)
        # A token decided in an earlier step is never re-masked or changed.
        decided = previous != MASK
        assert np.array_equal(step.tokens[decided], previous[decided])
        # Re-masked positions are exactly the ones still unknown; the others hold the candidate.
        filled = step.tokens != MASK
        assert np.array_equal(step.tokens[filled], step.candidates[filled])
        previous = step.tokens
    assert (previous != MASK).all()


@pytest.mark.parametrize("steps", [1, 2, 5, 12, 30])
def test_every_step_reduces_unknowns(steps):
    tokens = all_masked(1, 64)
    before = 64
    out = collect(tokens, fixed_logits(n=64, k=16), [4], steps=steps)
    assert len(out) == steps
    for step in out:
        now = int(step.remaining[0])
        assert now < before or before == 0
        before = now
    assert before == 0


def test_input_not_modified_and_callable_cannot_corrupt_state():
    tokens = all_masked(1, 32)
    original = tokens.copy()
    table = fixed_logits(n=32, k=8)

    def vandal(ids):
        logits = table(ids)
        ids[:] = 0  # must not leak into the decoder's state
        return logits

    out = collect(tokens, vandal, [0], steps=4)
    assert np.array_equal(tokens, original)
    assert int(out[0].remaining[0]) == masked_counts(32, 4)[1]


def test_same_seed_same_result_different_seed_different():
    a = last_step(
        iterative_decode(all_masked(), fixed_logits(), mask_token_id=MASK, rngs=make_rngs([7]))
    )
    b = last_step(
        iterative_decode(all_masked(), fixed_logits(), mask_token_id=MASK, rngs=make_rngs([7]))
    )
    c = last_step(
        iterative_decode(all_masked(), fixed_logits(), mask_token_id=MASK, rngs=make_rngs([8]))
    )
    assert np.array_equal(a.tokens, b.tokens)
    assert np.array_equal(a.confidence, b.confidence)
    assert not np.array_equal(a.tokens, c.tokens)


def test_row_result_same_alone_and_in_batch():
    rng = np.random.default_rng(11)
    tokens = rng.integers(0, K, size=(3, N))
    tokens[0, :] = MASK
    tokens[1, 100:180] = MASK
    tokens[2, 5:60] = MASK
    fn = per_row_logits()
    seeds = [21, 22, 23]
    batch = collect(tokens, fn, seeds)
    for row, seed in enumerate(seeds):
        alone = collect(tokens[row : row + 1], fn, [seed])
        for b_step, a_step in zip(batch, alone, strict=True):
            assert np.array_equal(b_step.tokens[row], a_step.tokens[0])
            assert np.array_equal(b_step.candidates[row], a_step.candidates[0])
            assert np.array_equal(b_step.confidence[row], a_step.confidence[0])


def test_start_step_runs_remaining_steps():
    tokens = np.random.default_rng(2).integers(0, K, size=(1, N))
    tokens[0, :100] = MASK
    out = collect(tokens, fixed_logits(), [0], steps=12, start_step=2)
    assert len(out) == 10
    assert [s.step for s in out] == list(range(10))
    assert all(s.total_steps == 10 for s in out)
    assert entering_counts(tokens, out) == masked_counts(100, 12, start_step=2)
    assert out[-1].done
    assert (out[-1].tokens != MASK).all()


def test_temperature_zero_remasks_least_confident():
    # With no noise the re-masked positions are exactly the least probable candidates.
    out = collect(all_masked(), fixed_logits(scale=2.0), [0], steps=12, choice_temperature=0.0)
    first = out[0]
    still = first.tokens[0] == MASK
    assert still.sum() == 253
    assert first.confidence[0][still].max() <= first.confidence[0][~still].min()


def test_noise_changes_choice_at_default_temperature():
    out = collect(all_masked(), fixed_logits(scale=2.0), [0], steps=12)
    first = out[0]
    still = first.tokens[0] == MASK
    assert first.confidence[0][still].max() > first.confidence[0][~still].min()


def test_temperature_zero_and_peaked_logits_are_deterministic():
    table = np.full((N, K), -1e4, dtype=np.float32)
    target = np.random.default_rng(3).integers(0, K, size=N)
    table[np.arange(N), target] = 10.0
    # Vary peakedness per position so confidence order is fixed; keep the argmax dominant.
    table[np.arange(N), (target + 1) % K] = np.linspace(-5, 0, N)

    def fn(ids):
        return np.broadcast_to(table, (ids.shape[0], N, K)).copy()

    a = collect(all_masked(), fn, [1], choice_temperature=0.0)
    b = collect(all_masked(), fn, [2], choice_temperature=0.0)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.tokens, y.tokens)
    assert np.array_equal(a[-1].tokens[0], target)


def test_fully_peaked_logits_give_argmax():
    target = np.random.default_rng(4).integers(0, K, size=N)
    table = np.full((N, K), -np.inf, dtype=np.float32)
    table[np.arange(N), target] = 0.0

    def fn(ids):
        return np.broadcast_to(table, (ids.shape[0], N, K)).copy()

    last = last_step(
        iterative_decode(all_masked(2), fn, mask_token_id=MASK, rngs=make_rngs([0, 1]))
    )
    assert np.array_equal(last.tokens, np.stack([target, target]))
    assert np.allclose(last.confidence, 1.0)


def test_zero_probability_tokens_never_sampled():
    allowed = np.array([3, 9])
    table = np.full((N, K), -np.inf, dtype=np.float32)
    table[:, allowed] = 0.0

    def fn(ids):
        return np.broadcast_to(table, (ids.shape[0], N, K)).copy()

    last = last_step(iterative_decode(all_masked(), fn, mask_token_id=MASK, rngs=make_rngs([0])))
    assert set(np.unique(last.tokens)) == {3, 9}
    assert np.allclose(last.confidence, 0.5)


def test_sampling_follows_distribution():
    # Two-way categorical with p = 0.8 / 0.2: the sample frequency must match.
    table = np.full((4096, 4), -np.inf, dtype=np.float32)
    table[:, 0] = np.log(0.8)
    table[:, 1] = np.log(0.2)

    def fn(ids):
        return np.broadcast_to(table, (ids.shape[0], 4096, 4)).copy()

    last = last_step(
        iterative_decode(all_masked(1, 4096), fn, mask_token_id=MASK, steps=1, rngs=make_rngs([0]))
    )
    share = (last.tokens == 0).mean()
    assert 0.78 < share < 0.82


def test_row_with_nothing_masked_passes_through():
    rng = np.random.default_rng(6)
    tokens = rng.integers(0, K, size=(2, N))
    tokens[1, :30] = MASK
    out = collect(tokens, fixed_logits(), [0, 1], steps=6)
    assert len(out) == 6
    for step in out:
        assert np.array_equal(step.tokens[0], tokens[0])
        assert np.array_equal(step.candidates[0], tokens[0])
        assert step.remaining[0] == 0
    assert (out[-1].tokens[1] != MASK).all()


def test_nothing_masked_anywhere_yields_unchanged_without_model_calls():
    tokens = np.random.default_rng(6).integers(0, K, size=(1, N))

    def fn(ids):
        raise AssertionError("model must not run when nothing is unknown")

    out = collect(tokens, fn, [0], steps=3)
    assert len(out) == 3
    assert all(np.array_equal(s.tokens, tokens) for s in out)
    assert out[-1].done


def test_output_dtypes_and_shapes():
    out = collect(all_masked(2, 16), fixed_logits(n=16, k=8), [0, 1], steps=3)
    step = out[0]
    assert isinstance(step, DecodeStep)
    assert step.tokens.dtype == np.int64
    assert step.tokens.shape == (2, 16)
    assert step.candidates.dtype == np.int64
    assert step.candidates.shape == (2, 16)
    assert step.confidence.dtype == np.float32
    assert step.confidence.shape == (2, 16)
    assert step.remaining.dtype == np.int64
    assert step.remaining.shape == (2,)
    # Every candidate is a codebook id, including at still-masked positions.
    assert step.candidates.min() >= 0
    assert step.candidates.max() < 8


def test_steps_yielded_are_independent_copies():
    out = collect(all_masked(1, 16), fixed_logits(n=16, k=8), [0], steps=4)
    assert not np.array_equal(out[0].tokens, out[-1].tokens)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tokens": np.zeros((4,), np.int64)}, "shape"),
        ({"tokens": np.zeros((1, 4), np.float32)}, "integer"),
        ({"steps": 0}, "steps"),
        ({"start_step": 3, "steps": 3}, "start_step"),
        ({"start_step": -1}, "start_step"),
        ({"rngs": make_rngs([0, 1])}, "one rng per row"),
        ({"rngs": [0]}, "Generator"),
        ({"choice_temperature": -1.0}, "choice_temperature"),
        ({"schedule": "nope"}, "schedule"),
    ],
)
def test_validation_raises_at_call_time(kwargs, match):
    args = {"tokens": all_masked(1, 4), "rngs": make_rngs([0]), "mask_token_id": MASK}
    args.update(kwargs)
    tokens = args.pop("tokens")
    with pytest.raises(ValueError, match=match):
        iterative_decode(tokens, fixed_logits(n=4, k=8), **args)


def test_last_step_of_an_empty_iterator():
    with pytest.raises(ValueError, match="yielded no step"):
        last_step(iter([]))


def test_reroll_least_confident_picks_lowest_in_region():
    tokens = np.arange(10, dtype=np.int64)[None].repeat(2, axis=0)
    conf = np.array([[0.9, 0.1, 0.5, 0.2, 0.8, 0.05, 0.7, 0.3, 0.6, 0.4]] * 2, np.float32)
    region = np.zeros((2, 10), bool)
    region[:, 1:5] = True
    out = reroll(tokens, conf, 2, MASK, region=region)
    assert (np.flatnonzero(out[0] == MASK)).tolist() == [1, 3]  # 0.05 at index 5 is outside
    out_all = reroll(tokens, conf, [1, 3], MASK)
    assert np.flatnonzero(out_all[0] == MASK).tolist() == [5]
    assert np.flatnonzero(out_all[1] == MASK).tolist() == [1, 3, 5]
    assert np.array_equal(tokens, np.arange(10)[None].repeat(2, axis=0))  # input untouched


def test_reroll_clamps_and_skips_masked():
    tokens = np.array([[MASK, 1, 2]], np.int64)
    conf = np.array([[0.0, 0.5, 0.6]], np.float32)
    out = reroll(tokens, conf, 10, MASK)
    assert out.tolist() == [[MASK, MASK, MASK]]
    with pytest.raises(ValueError, match="does not match tokens"):
        reroll(tokens, conf[:, :2], 1, MASK)
    with pytest.raises(ValueError, match="k must be >= 0"):
        reroll(tokens, conf, -1, MASK)


def test_reroll_then_decode_changes_only_rerolled():
    first = last_step(
        iterative_decode(all_masked(), fixed_logits(), mask_token_id=MASK, rngs=make_rngs([0]))
    )
    region = np.zeros((1, N), bool)
    region[0, 64:128] = True
    again = reroll(first.tokens, first.confidence, 10, MASK, region=region)
    assert int((again == MASK).sum()) == 10
    second = last_step(
        iterative_decode(again, fixed_logits(), mask_token_id=MASK, rngs=make_rngs([1]))
    )
    changed = second.tokens != first.tokens
    assert not changed[~(again == MASK)].any()


def test_choice_temperature_is_annealed():
    # The noise scale is tau * (1 - (s+1)/T): tiny in the last steps of a long schedule, so the
    # result there matches tau = 0 (same rng streams), while at the start it does not.
    for seed in range(3):
        late = [
            collect(
                all_masked(),
                fixed_logits(seed=seed),
                [seed],
                steps=100,
                start_step=97,
                choice_temperature=tau,
            )[-1].tokens
            for tau in (0.0, 4.5)
        ]
        assert np.array_equal(late[0], late[1])
        early = [
            collect(
                all_masked(), fixed_logits(seed=seed), [seed], steps=12, choice_temperature=tau
            )[0].tokens
            for tau in (0.0, 4.5)
        ]
        assert not np.array_equal(early[0] == MASK, early[1] == MASK)
