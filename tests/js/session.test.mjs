import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ACTIVE_RUN, activeRun, storageOr } from '../../static/js/session.js';

function fakeStorage(items = {}) {
  const map = new Map(Object.entries(items));
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => map.set(k, String(v)),
    removeItem: (k) => map.delete(k) };
}

test('storage that works is used as it is', () => {
  const real = fakeStorage();
  assert.equal(storageOr(() => real), real);
});

test('refused storage falls back to one in memory that still keeps and forgets', () => {
  const denied = () => { throw new DOMException('The operation is insecure.', 'SecurityError'); };
  const reading = { getItem: denied, setItem: denied, removeItem: denied };
  for (const open of [denied, () => reading]) {  // refused on opening, or on the first read
    const store = storageOr(open);
    assert.notEqual(store, reading);
    assert.equal(store.getItem('k'), null);
    store.setItem('k', 'v');
    assert.equal(store.getItem('k'), 'v');
    store.removeItem('k');
    assert.equal(store.getItem('k'), null);
  }
});

test('the run in flight is kept until it ends, and survives a reload', () => {
  const storage = fakeStorage();
  const started = { id: 'r1', token: 't', status: 'queued', queue_position: 2 };
  const body = { mode: 'simulate', epochs: 3 };
  activeRun(storage).save(started, body);
  assert.deepEqual(JSON.parse(storage.map.get(ACTIVE_RUN)), { started, body });
  assert.deepEqual(activeRun(storage).load(), { started, body }, 'a new page over the same storage finds it');
  activeRun(storage).clear();
  assert.equal(storage.map.has(ACTIVE_RUN), false);
  assert.equal(activeRun(storage).load(), null);
});

test('nothing is resumed from a kept value that does not name a run and its mode', () => {
  for (const kept of ['not json', 'null', '{}', '{"started": {"id": 7}, "body": {"mode": "simulate"}}',
    '{"started": {"id": "r1"}}', '{"started": {"id": "r1"}, "body": {"mode": null}}']) {
    assert.equal(activeRun(fakeStorage({ [ACTIVE_RUN]: kept })).load(), null, kept);
  }
});
