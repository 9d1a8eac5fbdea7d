"""The DP step against independent computations: a per-example GradientTape loop and TF Privacy's DP optimizer.

Each check drives the step's real path (padding, per-example norms, clipped sum, noise, SGD update) and reads the
summed gradient back from the update: with learning rate B the update is exactly the noised clipped sum.
"""

import numpy as np
import pytest

from app.training.dpsgd import default_capacity, poisson_sample
from tests.training.conftest import BATCH

B = 32  # expected batch size the sums are divided by


def test_poisson_batches_have_binomial_mean_and_variance():
    rng = np.random.default_rng(7)
    n, q, draws = 2000, 0.03, 4000
    batches = [poisson_sample(rng, n, q) for _ in range(draws)]
    sizes = np.array([len(b) for b in batches])
    mean, var = n * q, n * q * (1 - q)
    assert abs(sizes.mean() - mean) < 4 * np.sqrt(var / draws)
    assert abs(sizes.var(ddof=1) / var - 1) < 4 * np.sqrt(2 / (draws - 1))
    counts = np.bincount(np.concatenate(batches), minlength=n)  # every example is in with probability q
    assert abs(counts.mean() / draws - q) < 1e-3 and counts.min() > 0
    assert all(np.all(np.diff(b) > 0) and (len(b) == 0 or 0 <= b[0] <= b[-1] < n) for b in batches)


def test_poisson_sample_is_seeded():
    first = poisson_sample(np.random.default_rng(3), 1000, 0.1)
    assert np.array_equal(first, poisson_sample(np.random.default_rng(3), 1000, 0.1))
    assert not np.array_equal(first, poisson_sample(np.random.default_rng(4), 1000, 0.1))


@pytest.mark.parametrize("batch_size, capacity", [(1, 8), (256, 288), (1000, 536), (4096, 848)])
def test_capacity_is_b_plus_two_standard_deviations_in_chunks_of_at_most_1024(batch_size, capacity):
    assert default_capacity(batch_size) == capacity  # 4096 + 128 = 4224 padded: five chunks of 848


# --- with TensorFlow ------------------------------------------------------------------------------------------------


def tutorial_model(tf):
    from app.training.model import build_model

    return build_model(seed=1)


def odd_model(tf):
    """Covers the Conv2D paths the tutorial CNN does not: space-to-depth with 'same' padding, stride 1, no biases."""
    layers = tf.keras.layers
    init = tf.keras.initializers.GlorotUniform(seed=5)
    return tf.keras.Sequential([
        tf.keras.Input(shape=(28, 28, 1)),
        layers.AveragePooling2D(2),  # 14x14x1 ...
        layers.Conv2D(16, 2, strides=1, kernel_initializer=init),  # ... 13x13x16 (identity-kernel patches)
        layers.Activation("tanh"),
        layers.Conv2D(8, 4, strides=2, padding="same", use_bias=False, kernel_initializer=init),  # space-to-depth
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(10, use_bias=False, kernel_initializer=init),
    ])


def per_example_gradients(tf, model, x, y):
    """The reference: one GradientTape per example, float64 norms."""
    grads = []
    for i in range(len(y)):
        with tf.GradientTape() as tape:
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y[i:i + 1], logits=model(x[i:i + 1]))
        grads.append([g.numpy().astype(np.float64) for g in tape.gradient(loss, model.trainable_variables)])
    norms = np.array([np.sqrt(sum(np.sum(g ** 2) for g in example)) for example in grads])
    return grads, norms


def clipped_sum(grads, norms, clip):
    factors = np.minimum(1.0, clip / norms)
    return [sum(f * example[j] for f, example in zip(factors, grads)) for j in range(len(grads[0]))]


def summed_update(model, step, x, y, **knobs):
    """Run one step with learning rate B, so the weights move by exactly the (noised) clipped sum."""
    before = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    result = step(x, y, learning_rate=float(step.batch_size), **knobs)
    return [b - v.numpy() for b, v in zip(before, model.trainable_variables)], result


@pytest.mark.training
@pytest.mark.parametrize("make_model", [tutorial_model, odd_model], ids=["tutorial_cnn", "other_conv_paths"])
@pytest.mark.parametrize("clip", [1e-3, 1e3], ids=["all_clipped", "none_clipped"])
def test_clipped_sum_and_norms_match_a_per_example_loop(tf, batch, make_model, clip):
    from app.training.dpsgd import DPStep

    x, y = batch
    model = make_model(tf)
    grads, norms = per_example_gradients(tf, model, x, y)
    step = DPStep(model, batch_size=B, seed=0)
    moved, result = summed_update(model, step, x, y, max_grad_norm=clip, noise_multiplier=0.0)
    np.testing.assert_allclose(result.grad_norms, norms, rtol=1e-5)
    assert result.clipped == (BATCH if clip < 1 else 0)
    for got, want in zip(moved, clipped_sum(grads, norms, clip)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.training
def test_clipped_sum_matches_tf_privacy_dp_optimizer(tf, batch):
    """TF Privacy's DPKerasSGDOptimizer, one microbatch per example and no noise, divides the same clipped sum by the
    realised batch size; scaled back, it must agree with ours."""
    import tensorflow_privacy
    from app.training.dpsgd import DPStep

    x, y = batch
    clip = 0.5
    reference = tutorial_model(tf)
    optimizer = tensorflow_privacy.DPKerasSGDOptimizer(l2_norm_clip=clip, noise_multiplier=0.0,
                                                       num_microbatches=BATCH, learning_rate=float(BATCH))
    before = [v.numpy() for v in reference.trainable_variables]
    optimizer.minimize(lambda: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=reference(x)),
                       reference.trainable_variables)
    theirs = [b - v.numpy() for b, v in zip(before, reference.trainable_variables)]
    model = tutorial_model(tf)
    ours, _ = summed_update(model, DPStep(model, batch_size=B, seed=0), x, y, max_grad_norm=clip,
                            noise_multiplier=0.0)
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.training
def test_update_does_not_depend_on_capacity_even_beyond_it(tf, batch):
    from app.training.dpsgd import DPStep

    x, y = batch
    updates = {}
    for capacity in (BATCH, 64, 10):  # exact fit, padded, and a batch 2.4 times the capacity (three chunks)
        model = tutorial_model(tf)
        moved, result = summed_update(model, DPStep(model, batch_size=B, seed=0, capacity=capacity), x, y,
                                      max_grad_norm=0.1, noise_multiplier=0.0)
        updates[capacity] = moved
        assert len(result.grad_norms) == BATCH
    for capacity in (64, 10):
        for got, want in zip(updates[capacity], updates[BATCH]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.training
def test_batch_sizes_and_knobs_never_retrace(tf, batch):
    from app.training.dpsgd import DPStep

    x, y = batch
    step = DPStep(tutorial_model(tf), batch_size=B, seed=0, capacity=16)
    for size, clip, lr in ((0, 1.0, 0.1), (5, 0.5, 0.2), (16, 2.0, 0.1), (24, 1.0, 0.3), (3, 0.1, 0.1)):
        step(x[:size], y[:size], max_grad_norm=clip, noise_multiplier=clip, learning_rate=lr)
    compiled = [*step._steps.values(), *step._chunk_sums.values()]
    assert [f.experimental_get_tracing_count() for f in compiled] == [1, 1]


@pytest.mark.training
@pytest.mark.parametrize("capacity", [None, 8], ids=["one_chunk", "three_chunks"])
def test_noise_on_the_sum_has_std_sigma_times_c_once_per_step(tf, batch, capacity):
    """Two steps with the same seed and batch, with and without noise: the difference of their updates is the noise
    alone, which must be N(0, (sigma C)^2) per coordinate, drawn once per step however many chunks the batch takes."""
    from app.training.dpsgd import DPStep

    x, y = batch
    sigma, clip = 1.3, 0.7
    updates = []
    for noise_multiplier in (sigma, 0.0):
        model = tutorial_model(tf)
        step = DPStep(model, batch_size=B, seed=11, capacity=capacity)
        updates.append(summed_update(model, step, x, y, max_grad_norm=clip, noise_multiplier=noise_multiplier)[0])
    noise = np.concatenate([(a - b).ravel() for a, b in zip(*updates)])
    assert noise.size == 26010
    assert abs(noise.std() / (sigma * clip) - 1) < 4 / np.sqrt(2 * noise.size)  # 4 standard errors: 2.5%
    assert abs(noise.mean()) < 4 * sigma * clip / np.sqrt(noise.size)
    kurtosis = np.mean((noise - noise.mean()) ** 4) / noise.var() ** 2
    assert abs(kurtosis - 3) < 0.2  # Gaussian, not uniform (1.8) or heavy-tailed


@pytest.mark.training
def test_an_empty_batch_still_adds_the_noise(tf):
    from app.training.dpsgd import DPStep

    model = tutorial_model(tf)
    moved, result = summed_update(model, DPStep(model, batch_size=B, seed=3), np.zeros((0, 28, 28, 1), np.float32),
                                  np.zeros(0, np.int32), max_grad_norm=2.0, noise_multiplier=0.5)
    noise = np.concatenate([m.ravel() for m in moved])
    assert abs(noise.std() - 1.0) < 0.03 and len(result.grad_norms) == 0 and np.isnan(result.loss)


@pytest.mark.training
@pytest.mark.parametrize("measure_norms", [True, False])
def test_non_private_step_is_the_plain_mean_gradient(tf, batch, measure_norms):
    from app.training.dpsgd import DPStep

    x, y = batch
    model = tutorial_model(tf)
    grads, norms = per_example_gradients(tf, model, x, y)
    step = DPStep(model, batch_size=B, private=False, seed=0)
    moved, result = summed_update(model, step, x, y, max_grad_norm=0.01, noise_multiplier=5.0,
                                  measure_norms=measure_norms)
    for got, want in zip(moved, clipped_sum(grads, norms, np.inf)):  # no clipping, no noise
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if measure_norms:
        np.testing.assert_allclose(result.grad_norms, norms, rtol=1e-5)
        assert result.clipped == int(np.sum(norms > 0.01))  # what C would have clipped
    else:
        assert result.grad_norms is None and result.clipped == 0


@pytest.mark.training
def test_loss_is_the_mean_over_real_examples(tf, batch):
    from app.training.dpsgd import DPStep

    x, y = batch
    model = tutorial_model(tf)
    expected = float(np.mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x))))
    result = DPStep(model, batch_size=B, seed=0, capacity=64)(x, y, max_grad_norm=1.0, noise_multiplier=1.0,
                                                              learning_rate=0.1)
    assert result.loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.training
@pytest.mark.parametrize("layer, message", [
    ("dense_relu", "fused activation"),
    ("batch_norm", "only Dense and Conv2D"),
])
def test_unsupported_layers_are_refused_by_name(tf, layer, message):
    from app.training.dpsgd import DPStep

    layers = tf.keras.layers
    extra = layers.Dense(10, activation="relu") if layer == "dense_relu" else layers.BatchNormalization()
    model = tf.keras.Sequential([tf.keras.Input(shape=(28, 28, 1)), layers.Flatten(), extra, layers.Dense(10)])
    with pytest.raises(ValueError, match=message):
        DPStep(model, batch_size=B, seed=0)
