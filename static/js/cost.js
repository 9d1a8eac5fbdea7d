// The cost of privacy, as the page shows it: a private real run's time per epoch and memory against the last
// non-private real run of the same model and batch size in this browser's history (history.costBaselineFor), both
// as measured on this server (summary.profile), and the private step split by phase. Pure: no DOM, so node tests
// cover it.

import { sig } from './format.js';

// Below this an epoch is mostly sampling, evaluation set-up and first calls: its time says little of the step's.
export const MIN_EPOCH_SECONDS = 1;
const PHASE_NAMES = { forward_backward: 'forward and backward', per_example_norms: 'per-example norms',
  clip_and_sum: 'clipping and sum', noise: 'noise', update: 'update' };

const ms = (seconds) => `${sig(seconds * 1000)} ms`;
const mb = (value) => (value == null ? '–' : `${Math.round(value)} MB`);

/** What a history entry keeps of a real run's profile (null for a run without one). */
export function costEntry(summary) {
  const p = summary?.profile;
  if (!p) return null;
  return { train_seconds_per_epoch: p.train_seconds_per_epoch ?? null,
    evaluation_seconds_per_epoch: p.evaluation_seconds_per_epoch ?? null,
    rss_increase_mb: p.rss_increase_mb ?? null, rss_peak_mb: p.rss_peak_mb ?? null };
}

/** The private step's phases as one clause, or why it has none. */
export function phasesText(profile) {
  if (!profile.phases) return profile.phases_note ?? 'no split by phase';
  const known = Object.keys(PHASE_NAMES).filter((name) => name in profile.phases); // the step's order, not JSON's
  const others = Object.keys(profile.phases).filter((name) => !(name in PHASE_NAMES));
  return `per private step: ${[...known, ...others]
    .map((name) => `${PHASE_NAMES[name] ?? name} ${ms(profile.phases[name])}`).join(', ')}`;
}

/** {value, detail} of the "Cost of privacy" card for a real run's `profile`, against `baseline` (an entry of
 * history.costBaselineFor) when there is one; `run` is the run the profile belongs to. */
export function costReading(run, profile, baseline) {
  const own = profile.train_seconds_per_epoch;
  const memory = `peak memory ${mb(profile.rss_peak_mb)} (+${mb(profile.rss_increase_mb)} during the run)`;
  const paired = `${sig(profile.private_to_public)}× per step against a public step paired after the run `
    + `(${ms(profile.private_step_seconds)} vs ${ms(profile.public_step_seconds)})`;
  const evaluation = profile.evaluation_seconds_per_epoch == null ? ''
    : `; evaluation ${sig(profile.evaluation_seconds_per_epoch)} s per epoch`;
  if (!run.params.private) {
    return { value: `${sig(own)} s per epoch`, detail: `non-private: training ${sig(own)} s per epoch${evaluation}, `
      + `${memory}; measured on this server. Run the same model and batch privately to compare.` };
  }
  if (baseline && own) {
    const b = baseline.cost;
    const comparable = Math.min(own, b.train_seconds_per_epoch) >= MIN_EPOCH_SECONDS;
    const why = comparable ? '' : `Epochs under ${MIN_EPOCH_SECONDS} s are mostly fixed costs, so the headline is `
      + 'the paired step ratio. ';
    return { value: comparable ? `${sig(own / b.train_seconds_per_epoch)}× time per epoch`
      : `${sig(profile.private_to_public)}× time per step`,
    detail: `${why}This run: training ${sig(own)} s per epoch, ${memory}; last non-private run (run `
        + `${baseline.number ?? '?'}, same model, batch ${run.params.batch_size}): ${sig(b.train_seconds_per_epoch)} s `
        + `per epoch, peak memory ${mb(b.rss_peak_mb)} (+${mb(b.rss_increase_mb)}); both measured on this server. `
        + `${paired}; ${phasesText(profile)}${evaluation}.` };
  }
  return { value: `${sig(profile.private_to_public)}× time per step`,
    detail: `No non-private real run of this model and batch ${run.params.batch_size} in this browser yet: `
      + `turn off “Private” and run it to compare epochs. Meanwhile: ${paired}; ${phasesText(profile)}; training `
      + `${sig(own)} s per epoch${evaluation}, ${memory}; measured on this server.` };
}
