import assert from 'node:assert/strict';
import { test } from 'node:test';

import { epochRecord } from './fixtures.mjs';
import { merge, newRun, Poller } from '../../static/js/run.js';

const started = { id: 'r1', token: 'secret', status: 'queued', queue_position: 2 };

test('merge appends new records once and keeps the token', () => {
  let run = newRun(started, { epochs: 3 }, 'real');
  run = merge(run, { status: 'running', cursor: 3, epochs: [epochRecord(1)], steps: [{ step: 1 }, { step: 2 }] });
  run = merge(run, { status: 'running', cursor: 5, epochs: [epochRecord(1), epochRecord(2)], steps: [{ step: 2 }, { step: 3 }] });
  assert.deepEqual(run.epochs.map((e) => e.epoch), [1, 2]);
  assert.deepEqual(run.steps.map((s) => s.step), [1, 2, 3]);
  assert.equal(run.token, 'secret');
  assert.equal(run.cursor, 5);
  assert.equal(run.mode, 'real');
});

// A hand-cranked clock: timers run only when the test says so.
function fakeTimers() {
  const pending = new Map();
  let next = 1;
  return {
    setTimer: (fn, ms) => { pending.set(next, { fn, ms }); return next++; },
    clearTimer: (id) => pending.delete(id),
    pending,
    async fire() {
      const [id, { fn }] = [...pending][0];
      pending.delete(id);
      fn();
      await new Promise((r) => setImmediate(r));
    },
  };
}
const flush = () => new Promise((r) => setImmediate(r));

test('polls with ?since=cursor until the run ends', async () => {
  const timers = fakeTimers();
  const calls = [];
  const answers = [{ status: 'running', cursor: 2 }, { status: 'running', cursor: 4 }, { status: 'succeeded', cursor: 5 }];
  const seen = [];
  const poller = new Poller({ ...timers, fetchSnapshot: async (id, since) => { calls.push([id, since]); return answers.shift(); },
    onSnapshot: (s) => seen.push(s.status), onError: assert.fail });
  poller.start('r1');
  await flush();
  await timers.fire();
  await timers.fire();
  assert.deepEqual(calls, [['r1', null], ['r1', 2], ['r1', 4]]);
  assert.deepEqual(seen, ['running', 'running', 'succeeded']);
  assert.equal(timers.pending.size, 0, 'no poll after the end');
});

test('a stale answer from an older run is dropped (generation counter)', async () => {
  const timers = fakeTimers();
  const resolvers = {};
  const seen = [];
  const poller = new Poller({ ...timers,
    fetchSnapshot: (id) => new Promise((resolve) => { resolvers[id] = resolve; }),
    onSnapshot: (s) => seen.push(s.id), onError: assert.fail });
  poller.start('old');
  poller.start('new');
  resolvers.new({ id: 'new', status: 'running', cursor: 1 });
  await flush();
  resolvers.old({ id: 'old', status: 'running', cursor: 9 });
  await flush();
  assert.deepEqual(seen, ['new']);
  assert.equal(poller.cursor, 1);
  assert.equal(timers.pending.size, 1, 'only the new run keeps polling');
});

test('hidden tabs poll slowly, errors back off, a 404 stops, wake polls at once', async () => {
  const timers = fakeTimers();
  let hidden = true;
  const answers = [Promise.resolve({ status: 'running', cursor: 1 }), Promise.reject(Object.assign(new Error('x'), { status: 503 })),
    Promise.reject(Object.assign(new Error('x'), { status: 503 })), Promise.resolve({ status: 'running', cursor: 2 }),
    Promise.reject(Object.assign(new Error('gone'), { status: 404 }))];
  answers.slice(1).forEach((p) => p.catch(() => {}));
  const errors = [];
  const poller = new Poller({ ...timers, interval: 100, hiddenInterval: 5000, isHidden: () => hidden,
    fetchSnapshot: () => answers.shift(), onSnapshot: () => {}, onError: (e, n) => errors.push(n) });
  poller.start('r');
  await flush();
  assert.equal([...timers.pending.values()][0].ms, 5000);
  await timers.fire();
  assert.equal([...timers.pending.values()][0].ms, 200, 'first error: twice the interval');
  await timers.fire();
  assert.equal([...timers.pending.values()][0].ms, 400);
  hidden = false;
  poller.wake();
  await flush();
  assert.equal([...timers.pending.values()][0].ms, 100, 'recovered, visible');
  await timers.fire();
  assert.deepEqual(errors, [1, 2, 1]);
  assert.equal(timers.pending.size, 0, 'a 404 ends the loop');
});

test('stop cancels the pending poll', async () => {
  const timers = fakeTimers();
  const poller = new Poller({ ...timers, fetchSnapshot: async () => ({ status: 'running', cursor: 1 }),
    onSnapshot: () => {}, onError: assert.fail });
  poller.start('r');
  await flush();
  poller.stop();
  assert.equal(timers.pending.size, 0);
});
