import assert from 'node:assert/strict';
import { test } from 'node:test';

import { epochRecord } from './fixtures.mjs';
import { add, baselineFor, entryOf, load, MAX_RUNS, save, STORAGE_KEY, toggle } from '../../static/js/history.js';

const fakeStorage = (limit = Infinity) => {
  const items = new Map();
  return { getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => { if (v.length > limit) throw new Error('QuotaExceededError'); items.set(k, v); }, items };
};
const runOf = (id, params = {}, mode = 'simulate') => ({ id, mode, status: 'succeeded',
  params: { private: true, dataset_size: 60000, ...params }, epochs: [epochRecord(1), epochRecord(2)],
  summary: { final_test_accuracy: 0.7, final_epsilon: 0.6, accountant: 'rdp', delta: 1e-5, sampling: 'poisson', seconds: 3 } });

test('an entry keeps the params, the results and small series', () => {
  const entry = entryOf(runOf('a'), 123);
  assert.equal(entry.finished, 123);
  assert.equal(entry.accuracy, 0.7);
  assert.equal(entry.epsilon, 0.6);
  assert.deepEqual(entry.series.epoch, [1, 2]);
  assert.deepEqual(entry.series.clip_fraction, [0.4, 0.4]);
  assert.equal(entryOf({ ...runOf('b'), epochs: [] }), null, 'a run with no epoch is not history');
  assert.equal(entryOf({ ...runOf('c'), status: 'failed' }), null, 'nor is a failed run');
  assert.equal(entryOf({ ...runOf('d'), status: 'cancelled' }).status, 'cancelled', 'a cancelled one is');
  const early = entryOf({ ...runOf('g'), status: 'cancelled', epochs: [], summary: null });
  assert.equal(early.status, 'cancelled', 'so is one cancelled before its first epoch');
  assert.equal(early.accuracy, null);
  assert.deepEqual(early.series.epoch, []);
});

test('a run the server lost keeps the epochs the page showed, marked as cut short', () => {
  const lost = entryOf({ ...runOf('e'), status: 'cancelled', lost: true, summary: null });
  assert.equal(lost.lost, true);
  assert.equal(lost.accuracy, runOf('e').epochs[1].test_accuracy, 'its last shown epoch stands for the result');
  assert.equal('lost' in entryOf(runOf('f')), false, 'an ordinary run carries no mark');
});

test('save and load round-trip; junk in storage loads as empty', () => {
  const storage = fakeStorage();
  const list = add([], entryOf(runOf('a')));
  save(storage, list);
  assert.deepEqual(load(storage), list);
  storage.setItem(STORAGE_KEY, '{not json');
  assert.deepEqual(load(storage), []);
  storage.setItem(STORAGE_KEY, '{"a": 1}');
  assert.deepEqual(load(storage), []);
});

test('a full storage drops the oldest runs instead of failing', () => {
  let list = [];
  for (let i = 0; i < 5; i += 1) list = add(list, entryOf(runOf(`r${i}`)));
  const oneEntry = JSON.stringify([list[0]]).length;
  const kept = save(fakeStorage(oneEntry * 2.5), list);
  assert.deepEqual(kept.map((e) => e.id), ['r4', 'r3']);
});

test('add puts the newest first, once, and caps the list', () => {
  let list = [];
  for (let i = 0; i < MAX_RUNS + 5; i += 1) list = add(list, entryOf(runOf(`r${i}`)));
  assert.equal(list.length, MAX_RUNS);
  assert.equal(list[0].id, `r${MAX_RUNS + 4}`);
  assert.equal(list[0].number, MAX_RUNS + 5, 'numbers keep counting past the cap');
  assert.equal(add(list, entryOf(runOf('r40'))).filter((e) => e.id === 'r40').length, 1);
  assert.equal(add(list, null), list);
});

test('at most three overlays', () => {
  let selected = [];
  for (const id of ['a', 'b', 'c', 'd']) selected = toggle(selected, id);
  assert.deepEqual(selected, ['a', 'b', 'c']);
  assert.deepEqual(toggle(selected, 'b'), ['a', 'c']);
});

test('the baseline is the newest non-private run of the same mode and data', () => {
  const base = entryOf(runOf('base', { private: false }));
  const otherData = entryOf(runOf('small', { private: false, dataset_size: 1000 }));
  const otherMode = entryOf(runOf('real', { private: false }, 'real'));
  const list = [otherData, otherMode, base, entryOf(runOf('p'))];
  assert.equal(baselineFor(list, runOf('new')).id, 'base');
  assert.equal(baselineFor(list, runOf('x', { private: false })), null, 'a baseline has no baseline');
  assert.equal(baselineFor([], runOf('new')), null);
});
