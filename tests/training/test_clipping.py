"""Clipping variants: the rules on known values (numpy, no TensorFlow), the adaptive norm's quantile tracking, the
sparsification mask, and each variant's step against an independent per-example GradientTape loop."""

import inspect
import math

import numpy as np
import pytest

from app.training import clipping
from app.training.clipping import AUTO_S_GAMMA, AdaptiveClip, get_rule, sparsification_mask, sparsification_rate
from tests.training.conftest import BATCH


def scale(name, squared, clip):
    return get_rule(name).scale(np, [np.asarray(s, np.float64) for s in squared], clip)


def test_an_unknown_clipping_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown clipping 'ghost'; known: flat, per_layer, automatic, adaptive"):
        get_rule("ghost")


def test_flat_clips_the_whole_norm_to_c():
    got = scale("flat", [[9.0, 0.09], [16.0, 0.16]], 1.0)  # norms 5 and 0.5
    np.testing.assert_allclose(got.norms, [5.0, 0.5])
    np.testing.assert_allclose(got.factors[0], [0.2, 1.0])
    assert got.factors[0] is got.factors[1] and list(got.clipped) == [True, False]


def test_per_layer_clips_each_tensor_to_c_over_sqrt_l():
    got = scale("per_layer", [[9.0, 0.25], [16.0, 0.25]], math.sqrt(2))  # share 1: norms (3, 4) and (0.5, 0.5)
    np.testing.assert_allclose(got.factors[0], [1 / 3, 1.0])
    np.testing.assert_allclose(got.factors[1], [1 / 4, 1.0])
    assert list(got.clipped) == [True, False]
    rng = np.random.default_rng(0)  # property: the clipped concatenation never exceeds C
    squared = [rng.exponential(5.0, 1000) for _ in range(4)]
    got = scale("per_layer", squared, 2.0)
    total = np.sqrt(sum(f ** 2 * s for f, s in zip(got.factors, squared)))
    assert total.max() <= 2.0 + 1e-12


def test_automatic_normalises_every_gradient_below_one():
    got = scale("automatic", [[16.0, 0.16], [9.0, 0.09]], 123.0)  # C does not enter
    np.testing.assert_allclose(got.factors[0], [1 / (5 + AUTO_S_GAMMA), 1 / (0.5 + AUTO_S_GAMMA)])
    assert list(got.clipped) == [True, False]  # 0.5 is scaled *up* (factor 1.96): not counted as clipped
    assert get_rule("automatic").sensitivity(123.0) == 1.0 and get_rule("flat").sensitivity(3.0) == 3.0
    scaled_norms = got.factors[0] * got.norms
    assert np.all(scaled_norms < 1.0)


def test_adaptive_clip_tracks_the_target_quantile_of_the_norms():
    """Andrew et al. 2021: on a fixed log-normal norm distribution C settles where the target fraction fits under
    it, despite the count's noise (std B/20 here)."""
    rng = np.random.default_rng(1)
    for quantile in (0.3, 0.5, 0.9):
        clip = AdaptiveClip(initial=0.01, target_quantile=quantile, batch_size=256, count_std=256 / 20, rng=rng)
        history = []
        for _ in range(600):
            norms = rng.lognormal(0.0, 1.0, 256)
            clip.update(int(np.sum(norms <= clip.value)))
            history.append(clip.value)
        settled = np.median(history[-200:])
        want = math.exp(0.0 + 1.0 * {0.3: -0.5244, 0.5: 0.0, 0.9: 1.2816}[quantile])  # log-normal quantiles
        assert abs(math.log(settled / want)) < 0.1, (quantile, settled, want)


@pytest.mark.parametrize("quantile", [0.0, 1.0, -0.1])
def test_adaptive_clip_refuses_a_quantile_outside_0_1(quantile):
    with pytest.raises(ValueError, match=f"target_quantile must be strictly between 0 and 1, got {quantile!r}"):
        AdaptiveClip(initial=1.0, target_quantile=quantile, batch_size=8, count_std=1.0,
                     rng=np.random.default_rng(0))


def test_sparsification_mask_drops_exactly_the_rate_and_depends_only_on_seed_and_period():
    sizes = [1000, 10, 4321]
    masks = sparsification_mask(sizes=sizes, rate=0.9, seed=3, period=2)
    assert [m.size for m in masks] == sizes
    keep = np.concatenate(masks)
    assert int(keep.sum()) == sum(sizes) - round(0.9 * sum(sizes)) and set(np.unique(keep)) == {0.0, 1.0}
    again = np.concatenate(sparsification_mask(sizes=sizes, rate=0.9, seed=3, period=2))
    other = np.concatenate(sparsification_mask(sizes=sizes, rate=0.9, seed=3, period=3))
    assert np.array_equal(keep, again) and not np.array_equal(keep, other)
    # its only inputs are the tensor sizes, the rate, the seed and the period: no data can enter it
    assert list(inspect.signature(sparsification_mask).parameters) == ["sizes", "rate", "seed", "period"]
    assert np.concatenate(sparsification_mask(sizes=sizes, rate=0.0, seed=3, period=0)).min() == 1.0


def test_sparsification_rate_rises_linearly_to_the_final_rate():
    rates = [sparsification_rate(final_rate=0.9, period=k, periods=10) for k in range(10)]
    np.testing.assert_allclose(rates, np.linspace(0, 0.9, 10))
    assert sparsification_rate(final_rate=0.5, period=0, periods=1) == 0.5


def test_every_rule_is_registered_once():
    assert list(clipping.CLIPPING) == ["flat", "per_layer", "automatic", "adaptive"]


# --- with TensorFlow: each variant's step against a per-example GradientTape loop ----------------------------------

B = 32


def model_and_gradients(tf, x, y):
    from app.training.model import build_model

    from tests.training.test_dpsgd import per_example_gradients

    model = build_model(seed=1)
    grads, norms = per_example_gradients(tf, model, x, y)
    return model, grads, norms


def moved_by(model, step, x, y, learning_rate, **knobs):
    before = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    result = step(x, y, learning_rate=learning_rate, **knobs)
    return [b - v.numpy() for b, v in zip(before, model.trainable_variables)], result


def weighted(grads, factors):
    """sum_i factors[i][j] * grads[i][j] per variable j (factors per example, per variable)."""
    return [sum(f[j] * g[j] for f, g in zip(factors, grads)) for j in range(len(grads[0]))]


def assert_close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.training
@pytest.mark.parametrize("clip", [0.05, 5.0])
def test_per_layer_step_clips_each_tensor_like_the_loop(tf, batch, clip):
    from app.training.dpsgd import DPStep

    x, y = batch
    model, grads, _ = model_and_gradients(tf, x, y)
    share = clip / math.sqrt(len(grads[0]))  # 8 tensors
    factors = [[min(1.0, share / np.linalg.norm(t)) for t in example] for example in grads]
    step = DPStep(model, batch_size=B, seed=0, clipping="per_layer")
    moved, result = moved_by(model, step, x, y, float(B), max_grad_norm=clip, noise_multiplier=0.0)
    assert_close(moved, weighted(grads, factors))
    assert result.clipped == sum(any(f < 1 for f in example) for example in factors)


@pytest.mark.training
def test_automatic_step_normalises_like_the_loop_and_its_noise_is_sigma(tf, batch):
    from app.training.dpsgd import DPStep

    x, y = batch
    model, grads, norms = model_and_gradients(tf, x, y)
    factors = [[1 / (n + AUTO_S_GAMMA)] * len(grads[0]) for n in norms]
    step = DPStep(model, batch_size=B, seed=0, clipping="automatic")
    moved, result = moved_by(model, step, x, y, float(B), max_grad_norm=7.0, noise_multiplier=0.0)
    assert_close(moved, weighted(grads, factors))
    assert result.clipped == int(np.sum(norms + AUTO_S_GAMMA > 1))
    noisy = DPStep(model, batch_size=B, seed=0, clipping="automatic")  # C = 7 must not scale the noise
    empty = (np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int32))
    noise, _ = moved_by(model, noisy, *empty, float(B), max_grad_norm=7.0, noise_multiplier=0.5)
    assert abs(np.concatenate([n.ravel() for n in noise]).std() - 0.5) < 0.02


@pytest.mark.training
@pytest.mark.parametrize("capacity", [None, 10], ids=["one_chunk", "three_chunks"])
def test_microbatch_step_clips_each_microbatch_mean_like_the_loop(tf, batch, capacity):
    """TF Privacy's microbatching: the mean gradient of each microbatch is clipped; the sum is divided by M. Here an
    example's microbatch is its dataset index mod M, so members are spread over chunks."""
    from app.training.dpsgd import DPStep

    x, y = batch
    model, grads, _ = model_and_gradients(tf, x, y)
    m, clip = 8, 0.3
    groups = np.arange(BATCH) % m
    means = [[np.mean([grads[i][j] for i in np.flatnonzero(groups == k)], axis=0) for j in range(len(grads[0]))]
             for k in range(m)]
    mean_norms = [np.sqrt(sum(np.sum(t ** 2) for t in group)) for group in means]
    want = weighted(means, [[min(1.0, clip / n)] * len(grads[0]) for n in mean_norms])
    step = DPStep(model, batch_size=B, seed=0, microbatches=m, capacity=capacity)
    moved, result = moved_by(model, step, x, y, float(m), max_grad_norm=clip, noise_multiplier=0.0, groups=groups)
    assert_close(moved, want)  # learning rate M: the update is the clipped sum
    np.testing.assert_allclose(np.sort(result.grad_norms), np.sort(mean_norms), rtol=1e-5)


@pytest.mark.training
def test_sparsified_step_clips_the_masked_gradient_and_never_moves_a_dropped_coordinate(tf, batch):
    from app.training.dpsgd import DPStep

    x, y = batch
    model, grads, _ = model_and_gradients(tf, x, y)
    step = DPStep(model, batch_size=B, seed=0, sparsified=True)
    keep = sparsification_mask(sizes=step._sizes, rate=0.7, seed=5, period=1)
    masks = step.variable_masks(keep)
    masked = [[g * k for g, k in zip(example, masks)] for example in grads]
    norms = [np.sqrt(sum(np.sum(t ** 2) for t in example)) for example in masked]
    clip = 0.2
    want = weighted(masked, [[min(1.0, clip / n)] * len(masks) for n in norms])
    moved, result = moved_by(model, step, x, y, float(B), max_grad_norm=clip, noise_multiplier=0.0, keep=keep)
    assert_close(moved, want)
    np.testing.assert_allclose(result.grad_norms, norms, rtol=1e-5)
    other = (x[::-1] * 0.5, y[::-1])  # different data, noise on: the dropped coordinates still never move
    moved, _ = moved_by(model, step, *other, float(B), max_grad_norm=clip, noise_multiplier=2.0, keep=keep)
    dropped = np.concatenate([(m * (1 - k)).ravel() for m, k in zip(moved, masks)])
    kept = np.concatenate([m[k > 0].ravel() for m, k in zip(moved, masks)])
    assert np.all(dropped == 0)
    assert abs(kept.std() / (2.0 * clip) - 1) < 0.1  # the kept ones got the noise, std sigma C (plus the small sum)
