"""One DP-SGD step, fast: per-example gradient norms from one forward and one backward pass, clip, sum, noise, SGD.

What runs is exactly what ``app.privacy`` analyses (Abadi et al. 2016, "Deep Learning with Differential Privacy",
arXiv:1607.00133): a Poisson batch (:func:`poisson_sample`); the gradient of each example's loss over all trainable
variables; each clipped to L2 norm C (factor ``min(1, C / norm)``); summed; Gaussian noise of std ``sigma * C`` added to
the sum; divided by the *expected* batch size B; an SGD update, with optional heavy-ball momentum on that noisy
average in Keras' ``SGD(momentum=...)`` form (``u <- momentum * u + lr * g``, ``w <- w - u``). Momentum only
post-processes the released noisy gradients, so it changes no epsilon.

How it is fast. One forward pass records each trainable layer's input ``a_i`` and pre-activation output ``z_i``; one
backward pass of the summed loss gives ``g_i = dL/dz_i``, which for example i depends on that example alone. The
per-example weight gradients follow from (a, g) without a per-example backward pass (Goodfellow 2015, "Efficient
Per-Example Gradient Computations", arXiv:1510.01799):

- Dense: the gradient is ``a_i g_i^T``, so its squared norm is ``|a_i|^2 |g_i|^2`` and the bias adds ``|g_i|^2``,
  never materialised (the "ghost norm" of Goodfellow 2015, used for ghost clipping by Li et al. 2022, "Large Language
  Models Can Be Strong Differentially Private Learners", arXiv:2110.05679, and Bu et al. 2022, arXiv:2205.10683).
- Conv2D: the gradient is ``sum_p patch_p(a_i) g_ip^T`` over output positions p. Here it is materialised per example
  with one batched matmul over patches (as Opacus does with ``unfold``); the ghost norm (Gram matrices over positions)
  costs P^2 (K + O) against P K O and measured no faster on this model's second convolution (P = 25) and 13x slower
  on its first (P = 196).
- Where the time goes (the first convolution's per-example gradients, mostly): ``bench/dp_step_floor.py``.
- XLA (``tf.function(jit_compile=True)``, which needs ``reduce_sum(square)`` for the norm) measured 10x slower on
  this CPU for both steps (725 against 8,400 examples/s non-private at B 256): XLA's CPU convolutions are not oneDNN's.

The clipped sum then needs no second backward pass: with clip factors ``c_i``, a Dense layer's clipped sum is
``a^T (c * g)``, a normal weight-gradient matmul with per-example rescaled output gradients, and a Conv2D layer's is
``sum_i c_i G_i`` over the per-example gradients already at hand.

Fixed shapes: a batch is split into chunks of a fixed ``capacity``, the last padded with a mask, and C, the noise std
and the learning rate are tensors, so each step function is traced once per model whatever the batch size or knobs.
The chunks' clipped sums are added before the one noisy update: however large a Poisson batch, nothing is dropped.

Variants (``app.training.clipping``): the clipping rule is the one seam, where per-example (per-tensor) squared norms
become per-example (per-tensor) factors; the noise std is sigma times the rule's sensitivity (C, or 1 for automatic
clipping). Microbatches (TF Privacy's ``num_microbatches``) and random sparsification need the per-example gradients
themselves (a microbatch's gradient is the mean of its examples', and a masked gradient's norm is not a ghost norm), so
they take a materialised path: per-example flat gradients, summed per microbatch across chunks, masked, clipped by the
same rule, summed, noised (masked noise), applied.

The non-private baseline (``private=False``) takes the ordinary backward pass over the weights, which is what makes it
the honest baseline: computing per-example norms costs about as much again. It measures the norms (to show what C
would clip) only on the steps the caller asks for, through the per-example path with C infinite and no noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

MAX_CHUNK = 1024  # examples per compiled call at most


def poisson_sample(rng: np.random.Generator, n: int, q: float) -> np.ndarray:
    """Indices of a Poisson batch: each of ``n`` examples independently with probability ``q``, in increasing order."""
    return np.flatnonzero(rng.random(n) < q)


def default_capacity(batch_size: int) -> int:
    """Padded chunk size: B plus two standard deviations of the Poisson batch size, in equal chunks of at most
    ``MAX_CHUNK``, rounded up to a multiple of 8.

    Padding costs work on every step and overflow costs another chunk on a few: B + 2 sqrt(B) keeps the expected
    padded work within 3% of the best margin for B from 64 to 4096 (15% above B at B = 256, against 25% for
    B + 4 sqrt(B)); about one step in 40 takes an extra chunk. Chunks of 272 to 1,088 examples measured equally fast,
    and a cap bounds memory: B = 4096 in one chunk peaked 1 GB above the chunked step's 0.25 GB.
    """
    padded = batch_size + 2 * math.sqrt(batch_size)
    chunks = math.ceil(padded / MAX_CHUNK)
    return 8 * math.ceil(padded / chunks / 8)


@dataclass(frozen=True)
class StepResult:
    """What one step reports: the mean loss over its real examples, the gradient norms of what it clipped (examples,
    or non-empty microbatches) before clipping (None when the step did not measure them) and how many of those the
    clipping rule scaled down."""

    loss: float
    grad_norms: np.ndarray | None
    clipped: int


class DPStep:
    """One DP-SGD (or, with ``private=False``, plain SGD) step on ``model``, compiled once.

    Args:
        model: a Keras model whose trainable layers are linear ``Dense`` and ``Conv2D`` layers (activations as separate
            layers, as ``app.training.model`` builds them).
        batch_size: the expected batch size B; the summed gradient is divided by it.
        private: False trains the same loop without clipping and noise (the non-private baseline).
        seed: seeds the noise generator.
        capacity: examples per compiled call, the batch padded or split to it (default :func:`default_capacity`);
            results do not depend on it.
        clipping: a name in ``app.training.clipping.CLIPPING`` (a private step's rule; the baseline ignores it).
        microbatches: 0 clips each example; M > 0 clips the mean gradient of each of M microbatches (each call then
            takes ``groups``, every example's microbatch) and divides the noised sum by M instead of B.
        sparsified: each call takes ``keep`` masks over the gradient coordinates (random sparsification).
        momentum: SGD momentum on the noisy averaged gradient (0: plain SGD); post-processing, epsilon unchanged.

    Raises:
        ValueError: the model has a trainable layer this step cannot take per-example gradients of, or an unknown
            clipping.
    """

    def __init__(self, model, *, batch_size: int, private: bool = True, seed: int, capacity: int | None = None,
                 clipping: str = "flat", microbatches: int = 0, sparsified: bool = False, momentum: float = 0.0):
        import tensorflow as tf

        from app.training.clipping import get_rule

        self._tf = tf
        self._model = model
        self._layers = [_rule(tf, layer) for layer in model.layers if layer.trainable_weights]
        self._variables = [v for rule in self._layers for v in rule.variables]
        missing = {v.name for v in model.trainable_variables} - {v.name for v in self._variables}
        if missing:
            raise ValueError(f"trainable variables outside Dense/Conv2D layers are not supported: {sorted(missing)}")
        self._sizes = [int(np.prod(v.shape)) for v in self._variables]
        self.sizes = list(self._sizes)  # coordinates per trainable variable (what sparsification masks cover)
        self.batch_size = batch_size
        self.private = private
        self._rule = get_rule(clipping if private else "flat")
        self.microbatches = microbatches if private else 0
        self._materialised = private and (microbatches > 0 or sparsified)
        self.capacity = capacity or default_capacity(batch_size)
        self._noise = tf.random.Generator.from_seed(seed)
        self._zeros = [tf.zeros_like(v) for v in self._variables]
        self.momentum = float(momentum)
        self._velocity = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self._variables] if momentum else []
        batch = [tf.TensorSpec([self.capacity, *model.input_shape[1:]], tf.float32),
                 tf.TensorSpec([self.capacity], tf.int32), tf.TensorSpec([self.capacity], tf.float32),
                 tf.TensorSpec([], tf.float32)]
        update = [[tf.TensorSpec(v.shape, tf.float32) for v in self._variables], tf.TensorSpec([], tf.float32),
                  tf.TensorSpec([], tf.float32)]
        paths = (True,) if private else (True, False)  # per-example path or not
        self._chunk_sums = {per_example: tf.function(partial(self._sums, per_example=per_example),
                                                     input_signature=batch) for per_example in paths}
        self._steps = {per_example: tf.function(partial(self._step, per_example=per_example),
                                                input_signature=batch + update) for per_example in paths}
        if self._materialised:
            groups = self.microbatches or self.capacity
            flat = [tf.TensorSpec([groups, size], tf.float32) for size in self._sizes]
            keep = [tf.TensorSpec([size], tf.float32) for size in self._sizes]
            self._steps, self._chunk_sums = {}, {}
            self._grouped = tf.function(self._group_sums, input_signature=batch[:3] + [tf.TensorSpec([self.capacity],
                                                                                                      tf.int32)])
            self._clip_sum = tf.function(self._clipped_group_sum, input_signature=[
                flat, tf.TensorSpec([groups], tf.float32), tf.TensorSpec([], tf.float32), keep])
            self._apply = tf.function(self._noise_and_apply, input_signature=[
                keep, tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32), keep])  # flat totals: as keep

    def trace(self) -> None:
        """Compile every function a step may call now, so that no step pays for it (about a second in all)."""
        extra = (self._grouped, self._clip_sum, self._apply) if self._materialised else ()
        for function in (*self._steps.values(), *self._chunk_sums.values(), *extra):
            function.get_concrete_function()

    def __call__(self, x: np.ndarray, y: np.ndarray, *, max_grad_norm: float, noise_multiplier: float,
                 learning_rate: float, measure_norms: bool = True, groups: np.ndarray | None = None,
                 keep: list | None = None) -> StepResult:
        """Take one step on the batch ``(x, y)`` (any size, including 0).

        Args:
            max_grad_norm: C (for automatic clipping it only enters the reported clip statistics of the baseline).
            noise_multiplier: the gradient noise multiplier; the noise std is it times the rule's sensitivity.
            measure_norms: for a non-private step, whether to compute the per-example norms (a private step always
                does: it clips with them).
            groups: with microbatches, each example's microbatch in [0, M).
            keep: with sparsification, one 0/1 mask per trainable variable over its (flattened) coordinates.
        """
        tf = self._tf
        clip = tf.constant(max_grad_norm if self.private else math.inf, tf.float32)
        noise_std = tf.constant(noise_multiplier * self._rule.sensitivity(max_grad_norm) if self.private else 0.0,
                                tf.float32)
        if self._materialised:
            return self._materialised_step(x, y, groups, keep, clip, noise_std, learning_rate)
        per_example = self.private or measure_norms
        n = len(y)
        starts = range(0, max(n, 1), self.capacity)
        earlier, loss_sum, norms, clipped = self._zeros, 0.0, [], 0
        for start in starts:  # earlier chunks only sum; the last one adds their sums, the noise and the update
            chunk = self._pad(x[start:start + self.capacity], y[start:start + self.capacity])
            if start == starts[-1]:
                chunk_loss, chunk_norms, chunk_clipped = self._steps[per_example](
                    *chunk, clip, earlier, noise_std, tf.constant(learning_rate, tf.float32))
            else:
                sums, chunk_loss, chunk_norms, chunk_clipped = self._chunk_sums[per_example](*chunk, clip)
                earlier = [e + s for e, s in zip(earlier, sums)]
            loss_sum += float(chunk_loss)
            if per_example:
                real = min(self.capacity, n - start)
                norms.append(chunk_norms.numpy()[:real])
                clipped += int(np.sum(chunk_clipped.numpy()[:real]))
        grad_norms = np.concatenate(norms) if per_example else None
        if per_example and not self.private:  # what flat clipping at C would have scaled down
            clipped = int(np.sum(grad_norms > max_grad_norm))
        return StepResult(loss=loss_sum / n if n else math.nan, grad_norms=grad_norms, clipped=clipped)

    def _materialised_step(self, x, y, groups, keep, clip, noise_std, learning_rate) -> StepResult:
        """Microbatches and/or sparsification: flat per-example gradients, grouped (per microbatch, across chunks),
        masked, clipped by the rule, summed, noised and applied (see the module docstring)."""
        tf = self._tf
        n = len(y)
        keep = [tf.constant(k, tf.float32) for k in keep] if keep is not None else self._all_kept()
        if self.microbatches:
            groups = np.asarray(groups, np.int32)
        totals, loss_sum, norms, clipped = None, 0.0, [], 0
        pending = None  # microbatch sums accumulate over chunks before they are clipped
        for start in range(0, max(n, 1), self.capacity):
            stop = min(n, start + self.capacity)
            chunk = self._pad(x[start:stop], y[start:stop])
            chunk_groups = np.zeros(self.capacity, np.int32)
            if self.microbatches:
                chunk_groups[:stop - start] = groups[start:stop]
            sums, counts, chunk_loss = self._grouped(*chunk, chunk_groups)
            loss_sum += float(chunk_loss)
            if self.microbatches:
                pending = (sums, counts) if pending is None else (
                    [p + s for p, s in zip(pending[0], sums)], pending[1] + counts)
                continue
            totals, norms, clipped = self._accumulate(totals, norms, clipped, sums, counts, clip, keep)
        if self.microbatches:
            totals, norms, clipped = self._accumulate(None, norms, clipped, *pending, clip, keep)
        divisor = self.microbatches or self.batch_size
        self._apply(totals, noise_std, tf.constant(learning_rate / divisor, tf.float32), keep)
        return StepResult(loss=loss_sum / n if n else math.nan, grad_norms=np.concatenate(norms), clipped=clipped)

    def _accumulate(self, totals, norms, clipped, sums, counts, clip, keep):
        summed, unit_norms, unit_clipped = self._clip_sum(sums, counts, clip, keep)
        present = counts.numpy() > 0
        norms.append(unit_norms.numpy()[present])
        clipped += int(np.sum(unit_clipped.numpy()[present]))
        return (summed if totals is None else [t + s for t, s in zip(totals, summed)]), norms, clipped

    def variable_masks(self, keep: list) -> list[np.ndarray]:
        """Keep-masks over flattened coordinates (what a call takes) in the variables' own shapes."""
        tf = self._tf
        flat = [tf.constant(k, tf.float32) for k in keep]
        return [m.numpy() for rule, masks in zip(self._layers, self._per_layer(flat)) for m in rule.from_flat(masks)]

    def _all_kept(self):
        if not hasattr(self, "_ones"):
            self._ones = [self._tf.ones([size], self._tf.float32) for size in self._sizes]
        return self._ones

    def _pad(self, x: np.ndarray, y: np.ndarray) -> tuple:
        padded_x = np.zeros((self.capacity, *x.shape[1:]), np.float32)
        padded_y = np.zeros(self.capacity, np.int32)
        mask = np.zeros(self.capacity, np.float32)
        padded_x[:len(y)], padded_y[:len(y)], mask[:len(y)] = x, y, 1.0
        return padded_x, padded_y, mask

    def _sums(self, x, y, mask, clip, *, per_example: bool):
        """Per-variable sums of the clipped per-example gradients, the summed loss, and the per-example norms (or, off
        the per-example path, the plain summed gradient and no norms)."""
        tf = self._tf
        if not per_example:
            with tf.GradientTape() as tape:
                loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=self._model(x)) * mask)
            return tape.gradient(loss_sum, self._variables), loss_sum, tf.zeros([0]), tf.zeros([0])
        loss_sum, inputs, output_grads = self._forward_backward(x, y, mask)
        prepared = [rule.per_example(a, g) for rule, a, g in zip(self._layers, inputs, output_grads)]
        # The seam: per-tensor squared norms -> per-tensor factors, by the clipping rule.
        scaled = self._rule.scale(tf, [s for rule, p in zip(self._layers, prepared) for s in rule.squared_norms(p)],
                                  clip)
        sums = [s for rule, p, factors in zip(self._layers, prepared, self._per_layer(scaled.factors))
                for s in rule.weighted_sums(p, factors)]
        return sums, loss_sum, scaled.norms, tf.cast(scaled.clipped, tf.float32) * mask

    def _per_layer(self, per_variable: list) -> list:
        """A flat per-variable list regrouped as one list per layer rule."""
        grouped, start = [], 0
        for rule in self._layers:
            grouped.append(per_variable[start:start + len(rule.variables)])
            start += len(rule.variables)
        return grouped

    def _forward_backward(self, x, y, mask):
        """The summed masked loss, each trainable layer's input, and the loss's gradient at its output."""
        tf = self._tf
        with tf.GradientTape() as tape:
            inputs, outputs, h = [], [], x
            for layer in self._model.layers:
                if layer.trainable_weights:
                    inputs.append(h)
                    h = layer(h)
                    outputs.append(h)
                else:
                    h = layer(h)
            loss_sum = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h) * mask)
        return loss_sum, inputs, tape.gradient(loss_sum, outputs)

    def _group_sums(self, x, y, mask, groups):
        """Flat per-example gradients per variable ([capacity, size]), or with microbatches their sums per
        microbatch ([M, size]); the examples (or members) each row holds; the summed loss."""
        tf = self._tf
        loss_sum, inputs, output_grads = self._forward_backward(x, y, mask)
        flat = [f for rule, a, g in zip(self._layers, inputs, output_grads)
                for f in rule.flat_gradients(rule.per_example(a, g))]
        if not self.microbatches:
            return flat, mask, loss_sum
        return ([tf.math.unsorted_segment_sum(f, groups, self.microbatches) for f in flat],
                tf.math.unsorted_segment_sum(mask, groups, self.microbatches), loss_sum)

    def _clipped_group_sum(self, sums, counts, clip, keep):
        """Mean gradient of each row (an example, or a microbatch's members), masked, scaled by the rule, summed."""
        tf = self._tf
        present = tf.cast(counts > 0, tf.float32)
        means = [s / tf.maximum(counts, 1.0)[:, None] * k[None, :] for s, k in zip(sums, keep)]
        scaled = self._rule.scale(tf, [tf.reduce_sum(tf.square(m), axis=1) for m in means], clip)
        summed = [tf.linalg.matvec(m, f * present, transpose_a=True) for m, f in zip(means, scaled.factors)]
        return summed, scaled.norms, tf.cast(scaled.clipped, tf.float32) * present

    def _noise_and_apply(self, totals, noise_std, scale, keep):
        """Masked noise on the flat sums, mapped back to the variables' shapes, an SGD step of ``scale`` times it."""
        tf = self._tf
        noise = tf.split(self._noise.normal([sum(self._sizes)]), self._sizes)
        noised = [t + noise_std * z * k for t, z, k in zip(totals, noise, keep)]
        shaped = [s for rule, flat in zip(self._layers, self._per_layer(noised)) for s in rule.from_flat(flat)]
        self._descend(shaped, scale)

    def _descend(self, totals, scale):
        """``w -= scale * total`` (scale: the learning rate over the divisor); with momentum, Keras' heavy ball on
        that step: ``u <- momentum * u + scale * total``, ``w -= u`` (post-processing of the noisy totals)."""
        if not self._velocity:
            for variable, total in zip(self._variables, totals):
                variable.assign_sub(scale * total)
            return
        for variable, velocity, total in zip(self._variables, self._velocity, totals):
            velocity.assign(self.momentum * velocity + scale * total)
            variable.assign_sub(velocity)

    def _step(self, x, y, mask, clip, earlier, noise_std, learning_rate, *, per_example: bool):
        """This chunk's sum plus the ``earlier`` chunks' sums, noised once, divided by B, applied by SGD."""
        tf = self._tf
        sums, loss_sum, norms, clipped = self._sums(x, y, mask, clip, per_example=per_example)
        totals = [total + before for total, before in zip(sums, earlier)]
        if self.private:
            noise = tf.split(self._noise.normal([sum(self._sizes)]), self._sizes)  # one draw, not one per variable
            totals = [total + noise_std * tf.reshape(z, total.shape) for total, z in zip(totals, noise)]
        self._descend(totals, learning_rate / self.batch_size)
        return loss_sum, norms, clipped


class _Dense:
    """Dense: per-example norms from |a|^2 |g|^2 (ghost norm), clipped sum as one rescaled matmul."""

    def __init__(self, tf, layer):
        self._tf = tf
        self.variables = list(layer.trainable_weights)
        self._bias = layer.use_bias

    def per_example(self, a, g):
        return a, g

    def squared_norms(self, prepared):
        """One ``[n]`` squared norm per variable (kernel, then bias)."""
        tf = self._tf
        a, g = prepared
        g_sq = tf.reduce_sum(tf.square(g), axis=1)
        kernel = g_sq * tf.reduce_sum(tf.square(a), axis=1)
        return [kernel, g_sq] if self._bias else [kernel]

    def weighted_sums(self, prepared, factors):
        """The factor-weighted sums, ``factors`` one ``[n]`` per variable."""
        tf = self._tf
        a, g = prepared
        sums = [tf.matmul(a, g * factors[0][:, None], transpose_a=True)]
        return sums + [tf.reduce_sum(g * factors[-1][:, None], axis=0)] if self._bias else sums

    def flat_gradients(self, prepared):
        """Per-example gradients, materialised and flattened: ``[n, size]`` per variable."""
        tf = self._tf
        a, g = prepared
        kernel = tf.reshape(a[:, :, None] * g[:, None, :], [tf.shape(a)[0], -1])
        return [kernel, g] if self._bias else [kernel]

    def from_flat(self, flat):
        return [self._tf.reshape(f, v.shape) for f, v in zip(flat, self.variables)]


class _Conv2D:
    """Conv2D: per-example gradients materialised from input patches with one batched matmul.

    Patches come from one of two exact rewrites of the same gather (measured on this model's convolutions, both
    several times faster than ``tf.image.extract_patches``):

    - space-to-depth, when the (square) stride divides the kernel and a block carries at least ``MIN_BLOCK_CHANNELS``
      channels: blocks of stride x stride pixels become channels, the kernel becomes (k / s)^2 stride-1 shifts, and
      the patches are those few shifted slices side by side (conv 32@4x4/2 on 16 channels: 4 slices);
    - otherwise a convolution with an identity kernel, which emits each output position's patch as its channels
      (conv 16@8x8/2 on 1 channel, where space-to-depth would need 16 slices of 4 channels).

    Patch features are ordered (shift row, shift column, block row, block column, channel); ``_to_kernel`` maps a
    summed gradient back to the kernel's (row, column, channel, filter) layout.
    """

    MIN_BLOCK_CHANNELS = 16

    def __init__(self, tf, layer):
        self._tf = tf
        self.variables = list(layer.trainable_weights)
        self._bias = layer.use_bias
        (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
        (_, height, width, cin), (_, out_h, out_w, cout) = layer.input_shape, layer.output_shape
        self._kernel_shape = layer.kernel.shape
        self._strides, self._padding, self._out = (sh, sw), layer.padding.upper(), (out_h, out_w)
        if sh == sw and kh % sh == 0 and kw % sw == 0 and sh * sw * cin >= self.MIN_BLOCK_CHANNELS:
            self._block = (sh, sw)
            self._shifts = (kh // sh, kw // sw)
            self._pad = [list(_same_padding(size, out, k, s)) if self._padding == "SAME" else [0, 0]
                         for size, out, k, s in ((height, out_h, kh, sh), (width, out_w, kw, sw))]
            self._span = (sh * (out_h - 1) + kh, sw * (out_w - 1) + kw)
        else:
            self._block, self._shifts = (1, 1), (kh, kw)
            self._eye = tf.reshape(tf.eye(kh * kw * cin), [kh, kw, cin, kh * kw * cin])
        self._layout = [*self._shifts, *self._block, cin, cout]

    def _patches(self, a):
        tf = self._tf
        if self._block == (1, 1):
            patches = tf.nn.conv2d(a, self._eye, strides=self._strides, padding=self._padding)
        else:
            padded = tf.pad(a, [[0, 0], self._pad[0], self._pad[1], [0, 0]])
            blocks = tf.nn.space_to_depth(padded[:, :self._span[0], :self._span[1], :], self._block[0])
            out_h, out_w = self._out
            patches = tf.concat([blocks[:, u:u + out_h, v:v + out_w, :]
                                 for u in range(self._shifts[0]) for v in range(self._shifts[1])], axis=3)
        return tf.reshape(patches, [tf.shape(a)[0], -1, patches.shape[-1]])

    def per_example(self, a, g):
        tf = self._tf
        flat_g = tf.reshape(g, [tf.shape(g)[0], -1, g.shape[-1]])
        kernel = tf.matmul(flat_g, self._patches(a), transpose_a=True)  # [n, filters, patch features]
        return kernel, tf.reduce_sum(flat_g, axis=1)

    def squared_norms(self, prepared):
        """One ``[n]`` squared norm per variable (kernel, then bias)."""
        tf = self._tf
        kernel, bias = prepared
        squared = tf.square(tf.math.reduce_euclidean_norm(kernel, axis=[1, 2]))  # one pass, no squared copy
        return [squared, tf.reduce_sum(tf.square(bias), axis=1)] if self._bias else [squared]

    def weighted_sums(self, prepared, factors):
        """The factor-weighted sums, ``factors`` one ``[n]`` per variable."""
        tf = self._tf
        kernel, bias = prepared
        n = tf.shape(kernel)[0]
        summed = tf.linalg.matvec(tf.reshape(kernel, [n, -1]), factors[0], transpose_a=True)
        sums = [self._to_kernel(summed)]
        return sums + [tf.linalg.matvec(bias, factors[-1], transpose_a=True)] if self._bias else sums

    def flat_gradients(self, prepared):
        """Per-example gradients flattened, ``[n, size]`` per variable (the kernel in patch-feature order)."""
        kernel, bias = prepared
        flat = [self._tf.reshape(kernel, [self._tf.shape(kernel)[0], -1])]
        return flat + [bias] if self._bias else flat

    def from_flat(self, flat):
        return [self._to_kernel(flat[0]), *flat[1:]]

    def _to_kernel(self, flat):
        """[filters x patch features] (flattened) -> the kernel's [rows, columns, channels, filters]."""
        tf = self._tf
        u, v, bh, bw, cin, cout = self._layout
        grouped = tf.reshape(flat, [cout, u, v, bh, bw, cin])
        return tf.reshape(tf.transpose(grouped, [1, 3, 2, 4, 5, 0]), self._kernel_shape)


def _same_padding(size: int, out: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) along one axis."""
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _rule(tf, layer):
    kinds = {tf.keras.layers.Dense: _Dense, tf.keras.layers.Conv2D: _Conv2D}
    kind = kinds.get(type(layer))
    if kind is None:
        raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has trainable weights; only Dense and Conv2D "
                         "layers are supported")
    if layer.activation is not tf.keras.activations.linear:
        raise ValueError(f"layer {layer.name} has a fused activation; put it in a separate layer (see app.training.model)")
    if kind is _Conv2D and (tuple(layer.dilation_rate) != (1, 1) or layer.data_format != "channels_last"):
        raise ValueError(f"layer {layer.name}: only undilated channels_last convolutions are supported")
    return kind(tf, layer)
