// Presets: settings worth trying, each with one sentence on what it shows. The first three rows and the non-private
// one are TF Privacy's MNIST tutorial table (tensorflow/privacy tutorials/README.md, "Select Parameters": accuracy
// averaged over 10 runs; its epsilons come from an older RDP conversion, so ours are a little smaller). "Best known"
// is Tramer & Boneh 2021 (ICLR), "Differentially Private Learning Needs Better Features (or Much More Data)", table of
// end-to-end CNNs on MNIST: the tutorial's layers with tanh, 98.1% at epsilon 2.93 (delta 1e-5).

const TUTORIAL = { batch_size: 256, dataset_size: 60000, private: true, model: 'tutorial_cnn', momentum: 0 };

export const PRESETS = [
  { id: 'best-known', group: 'State of the art', label: 'Best known on MNIST: tanh CNN, ε ≈ 2.6',
    params: { mode: 'real', private: true, dataset_size: 60000, model: 'tanh_cnn', batch_size: 512,
      learning_rate: 0.5, momentum: 0.9, max_grad_norm: 0.1, noise_multiplier: 1.23, epochs: 40 },
    note: 'The same CNN with tanh, large batches, momentum 0.9 and a small C reached 98.1% at ε below 3 '
      + '(Tramer & Boneh 2021, "Differentially Private Learning Needs Better Features"); a real run takes minutes.' },
  { id: 'tutorial', group: 'TF Privacy tutorial', label: 'Tutorial default: σ 1.1, 60 epochs',
    params: { ...TUTORIAL, noise_multiplier: 1.1, max_grad_norm: 1.0, learning_rate: 0.15, epochs: 60 },
    note: 'The tutorial\'s default reaches 96.6% test accuracy at a moderate ε (3.01 in its table).' },
  { id: 'tutorial-low-noise', group: 'TF Privacy tutorial', label: 'Less noise: σ 0.7, 45 epochs',
    params: { ...TUTORIAL, noise_multiplier: 0.7, max_grad_norm: 1.5, learning_rate: 0.25, epochs: 45 },
    note: 'Less noise buys 97.0% accuracy in the tutorial, at more than twice the epsilon (7.10 in its table).' },
  { id: 'tutorial-short', group: 'TF Privacy tutorial', label: 'Short and private: σ 1.3, 15 epochs',
    params: { ...TUTORIAL, noise_multiplier: 1.3, max_grad_norm: 1.5, learning_rate: 0.25, epochs: 15 },
    note: 'More noise and a quarter of the epochs keep ε near 1 for 95.0% accuracy in the tutorial.' },
  { id: 'strong', group: 'Strong privacy', label: 'ε below 1: σ 2.5, batch 1,024',
    params: { ...TUTORIAL, noise_multiplier: 2.5, max_grad_norm: 1.0, learning_rate: 0.5, batch_size: 1024,
      epochs: 15 },
    note: 'Large batches average the noise away: σ 2.5 on 1,024 examples a step gives ε below 1 at a modest cost.' },
  { id: 'clip-too-small', group: 'Instructive mistakes', label: 'Clip too small',
    params: { ...TUTORIAL, noise_multiplier: 1.1, max_grad_norm: 0.01, learning_rate: 0.15, epochs: 5 },
    note: 'With C = 0.01 every gradient is clipped: steps are tiny and biased, so watch the clip fraction sit at 100%.' },
  { id: 'too-much-noise', group: 'Instructive mistakes', label: 'Too much noise',
    params: { ...TUTORIAL, noise_multiplier: 20, max_grad_norm: 1.0, learning_rate: 0.15, batch_size: 64, epochs: 5 },
    note: 'σ 20 on batches of 64: the noise (std 20·C) drowns the signal of 64 clipped gradients, and accuracy stalls.' },
  { id: 'lr-too-high', group: 'Instructive mistakes', label: 'Learning rate too high',
    params: { ...TUTORIAL, noise_multiplier: 1.1, max_grad_norm: 1.0, learning_rate: 8, epochs: 5 },
    note: 'A learning rate of 8 makes each noisy step overshoot: the loss jumps or diverges instead of falling.' },
  { id: 'no-privacy', group: 'Instructive mistakes', label: 'No privacy (baseline)',
    params: { ...TUTORIAL, private: false, noise_multiplier: 0, max_grad_norm: 1.0, learning_rate: 0.1, epochs: 20 },
    note: 'No clipping and no noise: the accuracy ceiling (99.0% in the tutorial), with no guarantee at all (ε = ∞).' },
];

export const presetById = (id) => PRESETS.find((p) => p.id === id);

/** The state after applying a preset: its knobs replace the current ones; mode, seed, delta and budget stay. */
export function applyPreset(state, preset) {
  return { ...state, ...preset.params, solve: false };
}

/** The preset whose knobs all match the state, if any (so the menu can show it, or "Custom"). */
export function matchingPreset(state) {
  return PRESETS.find((p) => Object.entries(p.params).every(([k, v]) => state[k] === v));
}
