// What the page keeps in the browser's storage besides the history: a fallback when storage is refused, and the run
// in flight, which outlives a reload of its tab. Storage is passed in, so node tests use a fake.

export const ACTIVE_RUN = 'active-run';

/**
 * The storage `open()` returns, or one in memory when it is refused (private windows, blocked third-party storage
 * in an iframe): what is kept then lasts one visit.
 */
export function storageOr(open) {
  try {
    const opened = open();
    opened.getItem('probe');
    return opened;
  } catch {
    const items = new Map();
    return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v),
      removeItem: (k) => items.delete(k) };
  }
}

/**
 * The run this tab has in flight, kept in (session) storage from its start until it ends, so a reload picks it up.
 * @returns {{save(started, body), load(): ({started, body}|null), clear()}}  load gives null unless what was kept
 *   names a run id and a mode.
 */
export function activeRun(storage) {
  return {
    save(started, body) {
      storage.setItem(ACTIVE_RUN, JSON.stringify({ started, body }));
    },
    load() {
      let saved = null;
      try {
        saved = JSON.parse(storage.getItem(ACTIVE_RUN));
      } catch { /* nothing usable was kept */ }
      if (typeof saved?.started?.id !== 'string' || typeof saved.body?.mode !== 'string') return null;
      return { started: saved.started, body: saved.body };
    },
    clear() {
      storage.removeItem(ACTIVE_RUN);
    },
  };
}
