// Numbers and words for people: knob values, epsilon with its assumptions, durations, and what an epsilon means to
// a membership attacker. Pure: no DOM.

const GROUPED = new Intl.NumberFormat('en-US');

/** A number with at most `digits` significant digits, no trailing zeros; exponent form when tiny or huge. */
export function sig(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 1e6 || abs < 1e-3) {
    const [mantissa, exponent] = x.toExponential(digits - 1).split('e');
    return `${Number(mantissa)}e${Number(exponent)}`;
  }
  const text = String(Number(x.toPrecision(digits)));
  return abs >= 1e4 ? GROUPED.format(Number(text)) : text;
}

/** A whole number grouped ("60,000"), or '–' where a record (an older page's, a restored run's) lacks it. */
export const whole = (x) => (Number.isFinite(x) ? GROUPED.format(x) : '–');

/** A knob's value as the page shows it (whole numbers grouped, delta in exponent form, booleans as words). */
export function formatValue(row, value) {
  if (row.type === 'bool') return value ? 'on' : 'off';
  if (row.type === 'choice') return String(value);
  if (row.type === 'int') return GROUPED.format(value);
  return sig(value, 4);
}

export function percent(fraction, digits = 1) {
  if (fraction === null || fraction === undefined) return '–';
  return `${(fraction * 100).toFixed(digits)}%`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function formatEpsilon(epsilon) {
  return epsilon === null || epsilon === undefined ? '∞' : sig(epsilon, 3);
}

/**
 * The words for the knobs' choices and the runs' sampling, from GET /api/params, built once and passed to what writes
 * an epsilon's assumptions, so no label is written here a second time.
 * @param spec {{params: object[], run_sampling: string}} the answer of GET /api/params.
 * @returns {{phrases: Object<string, Object<string, string>>, runSampling: string}} phrases: per choice knob, how a
 *   sentence names each choice (its choice_phrases, else its choice_labels).
 */
export function wordsOf(spec) {
  const phrases = Object.fromEntries(spec.params.filter((row) => row.type === 'choice')
    .map((row) => [row.name, { ...row.choice_labels, ...row.choice_phrases }]));
  return { phrases, runSampling: spec.run_sampling };
}

/** How a sentence names a knob's choice ("shuffled batches"); the choice itself where the table names none. */
export const phrase = (words, knob, choice) => words.phrases[knob]?.[choice] ?? choice;

/** What a run's epsilon assumes: its accountant and δ, and the sampling its runner used. */
export const runBasis = (params, words) => ({ accountant: params.accountant, delta: params.delta,
  sampling: params.sampling ?? words.runSampling });

/** The assumptions every epsilon is shown with: "RDP · δ = 1e-5 · Poisson sampling". */
export function assumptions({ accountant, delta, sampling }, words) {
  return `${phrase(words, 'accountant', accountant)} · δ = ${sig(delta, 3)} · ${phrase(words, 'sampling', sampling)}`;
}

// Bands for the colour and the one-word verdict. Upper bounds are inclusive.
const BANDS = [
  { id: 'strong', upTo: 1, word: 'strong privacy' },
  { id: 'moderate', upTo: 3, word: 'moderate privacy' },
  { id: 'weak', upTo: 8, word: 'weak privacy' },
  { id: 'very-weak', upTo: Infinity, word: 'very weak privacy' },
];

/** The band of an epsilon (null means infinite: no privacy). */
export function epsilonBand(epsilon) {
  if (epsilon === null || epsilon === undefined || !Number.isFinite(epsilon)) {
    return { id: 'none', word: 'no privacy guarantee' };
  }
  return BANDS.find((b) => epsilon <= b.upTo);
}

/**
 * What (epsilon, delta)-DP promises against a membership attacker: for every false-positive rate FPR, the true
 * positive rate is at most e^eps * FPR + delta, and also 1 - (1 - FPR - delta) / e^eps (the same bound applied to
 * the attacker's "no" answers); from a 50/50 prior its accuracy is at most (e^eps + delta) / (1 + e^eps).
 * Kairouz, Oh & Viswanath 2015, "The composition theorem for differential privacy", Theorem 2.1.
 */
export function attackerBound(epsilon, delta, fpr = 0.01) {
  if (epsilon === null || epsilon === undefined || !Number.isFinite(epsilon)) return { tpr: 1, accuracy: 1 };
  const e = Math.exp(Math.min(epsilon, 700));
  const tpr = Math.min(1, e * fpr + delta, 1 - (1 - fpr - delta) / e);
  return { tpr, accuracy: Math.min(1, (e + delta) / (1 + e)) };
}

/** One or two sentences saying what this epsilon means in practice. */
export function meaning(epsilon, delta) {
  if (epsilon === null || epsilon === undefined || !Number.isFinite(epsilon)) {
    return 'No guarantee: an attacker may be able to tell with certainty whether a given person\'s example was used.';
  }
  const { tpr, accuracy } = attackerBound(epsilon, delta);
  const tprText = tpr > 0.999 ? 'nearly every member: the bound hardly limits it'
    : `at most ${percent(tpr)} of members`;
  return `An attacker guessing whether one person's example was in the training set, and wrongly accusing 1% of `
    + `non-members, catches ${tprText} (TPR ≤ e^ε·FPR + δ). Guessing from a 50/50 prior, it is right at most `
    + `${percent(accuracy)} of the time; a coin flip is right 50%.`;
}

/** "Epoch 3 of 5 · step 700 of 1,170 · about 12 s left" from a snapshot's progress. */
export function progressText(progress) {
  if (!progress) return '';
  const parts = [`Epoch ${progress.epoch} of ${progress.epochs}`];
  if (progress.steps) parts.push(`step ${GROUPED.format(progress.step)} of ${GROUPED.format(progress.steps)}`);
  if (progress.eta_seconds !== null && progress.eta_seconds !== undefined) {
    parts.push(`about ${duration(progress.eta_seconds)} left`);
  }
  return parts.join(' · ');
}
