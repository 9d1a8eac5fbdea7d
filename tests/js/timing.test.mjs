import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Latest } from '../../static/js/timing.js';

const flush = () => new Promise((r) => setImmediate(r));

test('a burst of requests makes one call after the pause', async () => {
  let calls = 0;
  const results = [];
  const latest = new Latest(async () => { calls += 1; return calls; },
    { delay: 20, onResult: (r) => results.push(r), onError: assert.fail });
  for (let i = 0; i < 10; i += 1) latest.request();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(calls, 1);
  assert.deepEqual(results, [1]);
});

test('an answer that arrives after a newer request started is dropped, and the older one is aborted', async () => {
  const pending = [];
  const results = [];
  const latest = new Latest((signal) => new Promise((resolve) => pending.push({ resolve, signal })),
    { delay: 0, onResult: (r) => results.push(r), onError: assert.fail });
  latest.run();
  latest.run();
  assert.equal(pending[0].signal.aborted, true);
  pending[1].resolve('new');
  pending[0].resolve('old');
  await flush();
  assert.deepEqual(results, ['new']);
});

test('errors reach onError, aborts do not', async () => {
  const errors = [];
  const latest = new Latest(async () => { throw Object.assign(new Error('bad'), { name: 'ApiError' }); },
    { onResult: assert.fail, onError: (e) => errors.push(e.message) });
  await latest.run();
  const aborted = new Latest(async () => { throw Object.assign(new Error('stop'), { name: 'AbortError' }); },
    { onResult: assert.fail, onError: assert.fail });
  await aborted.run();
  assert.deepEqual(errors, ['bad']);
});

test('pending: from the request through its delay and flight, until the latest answer', async () => {
  const pending = [];
  const latest = new Latest((signal) => new Promise((resolve) => pending.push({ resolve, signal })),
    { delay: 5, onResult: () => {}, onError: assert.fail });
  assert.equal(latest.pending, false);
  latest.request();
  assert.equal(latest.pending, true);  // waiting out the delay
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(latest.pending, true);  // in flight
  latest.run();
  pending[0].resolve('old');
  await flush();
  assert.equal(latest.pending, true);  // an older answer does not settle the newer request
  pending[1].resolve('new');
  await flush();
  assert.equal(latest.pending, false);
});
