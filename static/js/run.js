// A run as the page knows it: snapshots from GET /api/runs/<id>?since=<cursor> merged into one record, and the
// polling loop that fetches them. Timers and fetch are passed in, so node tests drive the loop by hand.

export const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** A run just submitted (POST /api/runs answered {id, token, status, queue_position}). */
export function newRun(started, params, mode) {
  return { id: started.id, token: started.token, mode, params, status: started.status,
    queue_position: started.queue_position, epochs: [], steps: [], cursor: null, progress: null, summary: null,
    recommendations: [], error: null, budget: null };
}

const after = (records, key, last) => records.filter((r) => last === undefined || r[key] > last[key]);

/** Merge an incremental snapshot into the run: records are appended (never twice), everything else replaced. */
export function merge(run, snap) {
  return {
    ...run,
    ...snap,
    epochs: [...run.epochs, ...after(snap.epochs ?? [], 'epoch', run.epochs[run.epochs.length - 1])],
    steps: [...run.steps, ...after(snap.steps ?? [], 'step', run.steps[run.steps.length - 1])],
    token: run.token,
  };
}

/**
 * Polls one run at a time with a setTimeout chain. Each start() bumps a generation counter; an answer that comes
 * back for an older generation is dropped, so a stale run never draws into a new one. Polls slow down while the tab
 * is hidden and back off after errors; a 404 (the run was evicted) ends the loop.
 */
export class Poller {
  constructor({ fetchSnapshot, onSnapshot, onError, isHidden = () => false, interval = 600,
    hiddenInterval = 5000, maxBackoff = 15000, setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (id) => clearTimeout(id) }) {
    Object.assign(this, { fetchSnapshot, onSnapshot, onError, isHidden, interval, hiddenInterval, maxBackoff,
      setTimer, clearTimer });
    this.generation = 0;
    this.timer = null;
    this.failures = 0;
  }

  start(runId) {
    this.stop();
    Object.assign(this, { runId, cursor: null, failures: 0 });
    this.tick(this.generation);
  }

  stop() {
    this.generation += 1;
    this.clearTimer(this.timer);
    this.timer = null;
  }

  /** Poll now instead of waiting (the tab became visible again). */
  wake() {
    if (this.timer === null) return;
    this.clearTimer(this.timer);
    this.timer = null;
    this.tick(this.generation);
  }

  delay() {
    if (this.failures) return Math.min(this.maxBackoff, this.interval * 2 ** this.failures);
    return this.isHidden() ? this.hiddenInterval : this.interval;
  }

  async tick(generation) {
    let snap;
    try {
      snap = await this.fetchSnapshot(this.runId, this.cursor);
    } catch (error) {
      if (generation !== this.generation) return;
      this.failures += 1;
      this.onError(error, this.failures);
      if (error.status !== 404 && generation === this.generation) this.schedule(generation);
      return;
    }
    if (generation !== this.generation) return;
    this.failures = 0;
    this.cursor = snap.cursor;
    this.onSnapshot(snap);
    if (!TERMINAL.includes(snap.status) && generation === this.generation) this.schedule(generation);
  }

  schedule(generation) {
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.tick(generation);
    }, this.delay());
  }
}
