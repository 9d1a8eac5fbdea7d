import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SPEC } from './fixtures.mjs';
import { computePreview, livePreview, plannedReport, previewFields } from '../../static/js/preview.js';
import { defaultsOf, rowsOf } from '../../static/js/state.js';

const DEFAULTS = defaultsOf(rowsOf(SPEC.params));
const abortError = () => Object.assign(new Error('aborted'), { name: 'AbortError' });
const apiError = (errors) => Object.assign(new Error(Object.values(errors).join('; ')), { name: 'ApiError', errors });

/**
 * A fake of api.js's privacy and calibrate: each answers like the server (the body's basis, one epsilon per epoch)
 * with an epsilon that tells the accountant, the sampling and σ apart; `fail(body)` returns an error to reject with.
 */
function fakeApi({ fail = () => null } = {}) {
  const calls = [];
  const epsilonOf = (b) => (b.accountant === 'pld' ? 1 : 2) * (b.sampling === 'shuffle' ? 10 : 1) / b.noise_multiplier;
  const answer = (kind, body, signal, report) => {
    calls.push({ kind, body, signal });
    const error = fail({ kind, ...body });
    return error ? Promise.reject(error) : Promise.resolve(report);
  };
  return {
    calls,
    privacy: (body, signal) => answer('privacy', body, signal, { accountant: body.accountant, sampling: body.sampling,
      delta: body.delta, epochs: body.epochs, epsilon: epsilonOf(body),
      epsilon_per_epoch: Array.from({ length: body.epochs }, (_, i) => (epsilonOf(body) * (i + 1)) / body.epochs) }),
    calibrate: (body, signal) => answer('calibrate', body, signal, { noise_multiplier: 0.5, epsilon: 2.9,
      accountant: body.accountant, sampling: body.sampling, delta: body.delta }),
  };
}

const preview = (state, api, signal = new AbortController().signal) => computePreview({ ...DEFAULTS, ...state },
  { api, spec: SPEC, signal });
const asked = (api) => api.calls.map(({ kind, body }) => `${kind} ${body.accountant} ${body.sampling}`);

test('a non-private setting asks the accountant nothing: there is no epsilon to compute', async () => {
  const api = fakeApi();
  assert.deepEqual(await preview({ private: false, accountant: 'pld' }, api), { private: false, accountant: 'pld' });
  assert.deepEqual(api.calls, []);
  assert.equal(plannedReport({ private: false }), null);
});

test('RDP and PLD for the settings, with only the privacy fields, the signal passed on; runs spend the chosen one',
  async () => {
    const api = fakeApi();
    const signal = new AbortController().signal;
    const p = await preview({ accountant: 'pld' }, api, signal);
    assert.deepEqual(asked(api), ['privacy rdp poisson', 'privacy pld poisson']);
    assert.deepEqual(Object.keys(api.calls[0].body), SPEC.fields.privacy);
    assert.ok(api.calls.every((c) => c.signal === signal));
    assert.equal(p.rdp.epsilon, 2 / 1.1);
    assert.equal(p.pld.epsilon, 1 / 1.1);
    assert.equal(p.forRuns, p.pld);
    assert.equal(plannedReport(p), p.pld);
    assert.equal(p.pldError, null);
    assert.equal(p.solved, null);
    assert.equal(p.target, 3);
    assert.equal('budgetStop' in p, false, 'no budget stop asked for');
    assert.equal((await preview({ accountant: 'rdp' }, fakeApi())).forRuns.accountant, 'rdp');
  });

test('when PLD cannot answer, its reason is shown and runs are planned under RDP', async () => {
  const api = fakeApi({ fail: (b) => b.accountant === 'pld' && apiError({ accountant: 'PLD needs q below 0.5' }) });
  const p = await preview({ accountant: 'pld' }, api);
  assert.equal(p.pld, null);
  assert.equal(p.pldError, 'PLD needs q below 0.5');
  assert.equal(p.forRuns, p.rdp);
  const other = await preview({}, fakeApi({ fail: (b) => b.accountant === 'pld' && new Error('network down') }));
  assert.equal(other.pldError, 'network down', 'no field message: the error itself');
});

test('an RDP failure, or an abort of either request, rejects the whole preview', async () => {
  const bad = apiError({ noise_multiplier: 'must be positive, got -1' });
  await assert.rejects(preview({}, fakeApi({ fail: (b) => b.accountant === 'rdp' && bad })), (e) => e === bad);
  await assert.rejects(preview({}, fakeApi({ fail: (b) => b.accountant === 'pld' && abortError() })),
    { name: 'AbortError' });
});

test('solving σ calibrates under the runs\' sampling, then previews the solved σ', async () => {
  const api = fakeApi();
  const p = await preview({ solve: true, sampling: 'shuffle', target_epsilon: 2 }, api);
  assert.equal(api.calls[0].kind, 'calibrate');
  assert.deepEqual(Object.keys(api.calls[0].body), SPEC.fields.calibrate);
  assert.equal(api.calls[0].body.sampling, 'poisson');
  assert.equal(api.calls[0].body.target_epsilon, 2);
  assert.ok(api.calls.slice(1).every((c) => c.body.noise_multiplier === 0.5), 'every epsilon is of the solved σ');
  assert.equal(p.solved.noise_multiplier, 0.5);
  assert.equal(p.target, 2);
});

test('shuffle figures are a what-if: a run is planned under the runs\' sampling, RDP if its accountant fails',
  async () => {
    const api = fakeApi();
    const p = await preview({ sampling: 'shuffle', accountant: 'pld' }, api);
    assert.deepEqual(asked(api), ['privacy rdp shuffle', 'privacy pld shuffle', 'privacy pld poisson']);
    assert.equal(p.rdp.sampling, 'shuffle');
    assert.deepEqual([p.forRuns.accountant, p.forRuns.sampling], ['pld', 'poisson']);

    const failing = fakeApi({ fail: (b) => b.accountant === 'pld' && b.sampling === 'poisson'
      && apiError({ accountant: 'no' }) });
    const fallback = await preview({ sampling: 'shuffle', accountant: 'pld' }, failing);
    assert.deepEqual(asked(failing).slice(2), ['privacy pld poisson', 'privacy rdp poisson']);
    assert.deepEqual([fallback.forRuns.accountant, fallback.forRuns.sampling], ['rdp', 'poisson']);

    const aborting = fakeApi({ fail: (b) => b.sampling === 'poisson' && abortError() });
    await assert.rejects(preview({ sampling: 'shuffle' }, aborting), { name: 'AbortError' });
    assert.equal(aborting.calls.length, 3, 'an abort is not retried under RDP');
  });

test('the budget stop is where the runs\' planned epsilon first passes the target', async () => {
  // noise 1: RDP epsilon 2 over 5 epochs, 0.4 a epoch; the target 1 is passed in the third epoch
  const p = await preview({ budget_stop: true, noise_multiplier: 1, target_epsilon: 1 }, fakeApi());
  assert.equal(p.budgetStop, 2);
  assert.equal((await preview({ budget_stop: true, noise_multiplier: 1, target_epsilon: 5 }, fakeApi())).budgetStop,
    null);
});

test('the preview depends on the privacy and calibration fields and the page\'s switches, not on the rest', () => {
  const fields = previewFields(SPEC.fields);
  for (const name of ['noise_multiplier', 'target_epsilon', 'sampling', 'private', 'solve', 'budget_stop']) {
    assert.ok(fields.has(name), name);
  }
  for (const name of ['learning_rate', 'max_grad_norm', 'seed', 'mode']) assert.ok(!fields.has(name), name);
});

function fakeTimers() {
  const timers = { pending: new Map(), next: 1, delays: [] };
  return Object.assign(timers, {
    setTimer: (fn, ms) => { timers.delays.push(ms); timers.pending.set(timers.next, fn); return timers.next++; },
    clearTimer: (id) => { timers.pending.delete(id); },
    fire() { const due = [...timers.pending.values()]; timers.pending.clear(); due.forEach((fn) => fn()); },
  });
}

test('live: a change of a field it depends on asks again after the pause, with the state of that moment', async () => {
  const api = fakeApi();
  const timers = fakeTimers();
  let state = { ...DEFAULTS };
  const results = [];
  const live = livePreview({ api, spec: SPEC, getState: () => state, onResult: (r) => results.push(r),
    onError: assert.fail, timers });
  live.changed(['learning_rate', 'seed']);
  assert.equal(timers.pending.size, 0, 'nothing to ask for a change the preview does not depend on');
  assert.equal(live.pending, false);
  live.changed(['seed', 'noise_multiplier']);
  assert.equal(live.pending, true);
  assert.deepEqual(timers.delays, [150]);
  state = { ...state, noise_multiplier: 2 };
  timers.fire();
  assert.equal(live.pending, true, 'in flight');
  await new Promise((r) => setImmediate(r));
  assert.equal(live.pending, false);
  assert.equal(results.length, 1);
  assert.equal(results[0].rdp.epsilon, 1, 'computed for σ 2, the state when the pause ended');
  live.now();
  assert.deepEqual(timers.delays, [150, 0]);
});

test('live: a failed preview reaches onError', async () => {
  const timers = fakeTimers();
  const errors = [];
  const live = livePreview({ api: fakeApi({ fail: () => apiError({ delta: 'too big' }) }), spec: SPEC,
    getState: () => DEFAULTS, onResult: assert.fail, onError: (e) => errors.push(e.errors), timers });
  live.now();
  timers.fire();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(errors, [{ delta: 'too big' }]);
});

test('above the server\'s PLD limit on RDP\'s epsilon, PLD is not asked (it would be refused) and says why', async () => {
  const api = fakeApi();
  const p = await preview({ accountant: 'pld', noise_multiplier: 0.03 }, api); // RDP ε 2/0.03 = 66.7 > 50
  assert.deepEqual(asked(api), ['privacy rdp poisson']);
  assert.equal(p.pld, null);
  assert.match(p.pldError, /^skipped: RDP's ε is above 50/);
  assert.equal(p.forRuns, p.rdp);
});
