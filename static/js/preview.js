// The live epsilon preview: what the accountant says the current settings spend (POST /api/privacy, and
// /api/privacy/calibrate when σ is solved for the target), asked again as the sliders move, debounced and latest
// only. The API is passed in, so node tests use a fake one and no fetch or DOM.

import { budgetStopEpoch } from './series.js';
import { bodyFor } from './state.js';
import { Latest } from './timing.js';

/** The settings whose change asks for a new preview (fields: GET /api/params's request fields). */
export const previewFields = (fields) => new Set([...fields.privacy, ...fields.calibrate, 'private', 'solve',
  'budget_stop']);

/**
 * What the settings spend: epsilon under RDP and PLD for the chosen sampling, and what a run of them will spend.
 * @param s the page's state.
 * @param {{api: {privacy, calibrate}, spec: {fields, run_sampling}, signal: AbortSignal}} with
 * @returns {Promise<{private: boolean, accountant, solved?, target?, rdp?, pld?, pldError?, forRuns?, budgetStop?}>}
 *   forRuns: the report of the chosen accountant (RDP when PLD could not answer) under the runs' sampling.
 * @throws the RDP request's error, or an AbortError when a newer preview replaced this one.
 */
export async function computePreview(s, { api, spec, signal }) {
  const runSampling = spec.run_sampling;
  if (!s.private) return { private: false, accountant: s.accountant };
  let solved = null;
  let effective = s;
  if (s.solve) {  // solved for what a run will spend, so under the runs' sampling
    solved = await api.calibrate(bodyFor(s, spec.fields.calibrate, { sampling: runSampling }), signal);
    effective = { ...s, noise_multiplier: solved.noise_multiplier };
  }
  const ask = (accountant, sampling) => api.privacy(bodyFor(effective, spec.fields.privacy, { accountant, sampling }),
    signal);
  // RDP first: above the server's PLD limit (on RDP's epsilon) the page knows PLD would be refused, and does not ask
  const rdpAsked = ask('rdp', s.sampling);
  const limit = spec.pld_max_rdp_epsilon ?? Infinity;
  const pldAsked = rdpAsked.then((r) => (r.epsilon !== null && r.epsilon > limit
    ? Promise.reject(Object.assign(new Error('over the limit'), { errors: { accountant: `skipped: RDP's ε is above `
      + `${limit}, where PLD's fine discretisation would take too long; RDP's bound holds` } }))
    : ask('pld', s.sampling)), () => ask('pld', s.sampling));
  const [rdp, pld] = await Promise.allSettled([rdpAsked, pldAsked]);
  if (rdp.status === 'rejected') throw rdp.reason;
  if (pld.status === 'rejected' && pld.reason.name === 'AbortError') throw pld.reason;
  const preview = { private: true, accountant: s.accountant, solved, target: s.target_epsilon, rdp: rdp.value,
    pld: pld.value ?? null, pldError: pld.status === 'rejected' ? pld.reason.errors?.accountant ?? pld.reason.message : null };
  preview.forRuns = (s.accountant === 'pld' && preview.pld) || preview.rdp;
  if (s.sampling !== runSampling) {  // the shuffle figures are a what-if; a run is accounted as it samples
    preview.forRuns = await ask(s.accountant, runSampling).catch((error) => {
      if (error.name === 'AbortError') throw error;
      return ask('rdp', runSampling);
    });
  }
  if (s.budget_stop) preview.budgetStop = budgetStopEpoch(preview.forRuns, s.target_epsilon);
  return preview;
}

/** The report of what a run of these settings will spend: its accountant (RDP when PLD could not answer), Poisson. */
export const plannedReport = (preview) => (preview?.private ? preview.forRuns : null);

/**
 * The preview kept up to date: asked again after a pause when a setting it depends on changes.
 * @param {{api, spec, getState: function(): object, onResult, onError, timers?: {delay, setTimer, clearTimer}}} with
 *   onResult/onError get only the latest preview's answer (timing.Latest).
 * @returns {{changed(names: string[]), now(), pending: boolean}}
 */
export function livePreview({ api, spec, getState, onResult, onError, timers = {} }) {
  const fields = previewFields(spec.fields);
  const work = new Latest((signal) => computePreview(getState(), { api, spec, signal }),
    { onResult, onError, ...timers });
  return {
    changed(names) {
      if (names.some((n) => fields.has(n))) work.request();
    },
    now: () => work.request(0),
    /** Whether the latest preview has not answered yet: a run must not start on a σ still being solved. */
    get pending() { return work.pending; },
  };
}
