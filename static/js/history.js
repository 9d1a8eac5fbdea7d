// Run history in the browser's storage: what each finished run was (params, mode) and what it got (accuracy, epsilon
// and per-epoch series small enough to overlay on the charts). Storage is passed in, so node tests use a fake.

export const STORAGE_KEY = 'dpsgd-playground.history.v1';
export const MAX_RUNS = 30;
export const MAX_OVERLAYS = 3;

import { auditEntry } from './audit.js';
import { costEntry } from './cost.js';

const SERIES = ['test_accuracy', 'test_loss', 'epsilon', 'clip_fraction'];
const DEFAULT_MODEL = 'tutorial_cnn'; // what a run without a model knob trained

/**
 * The history entry of a finished run: null if it failed, or if it ended with no epoch without being cancelled
 * (nothing to compare); a run cancelled before its first epoch is kept, marked cancelled, with no accuracy.
 */
export function entryOf(run, now = Date.now()) {
  if (run.status === 'failed' || (!run.epochs.length && run.status !== 'cancelled')) return null;
  const s = run.summary ?? {};
  return {
    id: run.id,
    finished: now,
    mode: run.mode,
    status: run.status,
    ...(run.lost ? { lost: true } : {}), // cut short: the server evicted it, or restarted, before it ended here
    params: run.params,
    accuracy: s.final_test_accuracy ?? run.epochs[run.epochs.length - 1]?.test_accuracy ?? null,
    epsilon: s.final_epsilon ?? null,
    private: run.params.private,
    accountant: s.accountant ?? null,
    delta: s.delta ?? null,
    sampling: s.sampling ?? null,
    seconds: s.seconds ?? null,
    audit: auditEntry(s),
    cost: costEntry(s),
    series: Object.fromEntries([['epoch', run.epochs.map((e) => e.epoch)],
      ...SERIES.map((k) => [k, run.epochs.map((e) => e[k] ?? null)])]),
  };
}

export function load(storage) {
  try {
    const list = JSON.parse(storage.getItem(STORAGE_KEY) ?? '[]');
    return Array.isArray(list) ? list.filter((e) => e && e.id && e.series) : [];
  } catch {
    return [];
  }
}

/** Save, dropping the oldest runs if the storage is full (or unavailable: history then lives for this visit). */
export function save(storage, list) {
  for (let kept = list.slice(0, MAX_RUNS); ; kept = kept.slice(0, -1)) {
    try {
      storage.setItem(STORAGE_KEY, JSON.stringify(kept));
      return kept;
    } catch {
      if (!kept.length) return list;
    }
  }
}

/** Newest first, one entry per run id, at most MAX_RUNS; a new entry is numbered one past the newest. */
export function add(list, entry) {
  if (!entry) return list;
  const rest = list.filter((e) => e.id !== entry.id);
  const numbered = { ...entry, number: entry.number ?? (rest[0]?.number ?? 0) + 1 };
  return [numbered, ...rest].slice(0, MAX_RUNS);
}

/** Toggle a run in the overlay selection, refusing a fourth. Returns the new selection. */
export function toggle(selected, id) {
  if (selected.includes(id)) return selected.filter((s) => s !== id);
  return selected.length >= MAX_OVERLAYS ? selected : [...selected, id];
}

/** The newest non-private entry other than `run` that `matches`; null if `run` is itself non-private or none does. */
function newestNonPrivate(list, run, matches) {
  if (!run.params.private) return null;
  return list.find((e) => !e.private && e.id !== run.id && matches(e)) ?? null;
}

/**
 * The non-private baseline to compare a run's accuracy with: the newest non-private run of the same mode on the same
 * data (dataset size); null if the run is itself non-private or there is none.
 */
export function baselineFor(list, run) {
  return newestNonPrivate(list, run, (e) => e.accuracy !== null && e.mode === run.mode
    && e.params.dataset_size === run.params.dataset_size);
}

const modelOf = (params) => params?.model ?? DEFAULT_MODEL;

/**
 * The baseline of a private real run's cost (cost.js): the newest non-private real run of the same model and batch
 * size that measured its time per epoch; null for a simulated run (it measures no cost).
 */
export function costBaselineFor(list, run) {
  if (run.mode !== 'real') return null;
  return newestNonPrivate(list, run, (e) => e.mode === 'real' && e.cost?.train_seconds_per_epoch
    && modelOf(e.params) === modelOf(run.params) && e.params.batch_size === run.params.batch_size);
}
