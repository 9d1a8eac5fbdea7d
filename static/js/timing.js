// Debounced, latest-only work: while a slider moves, only the last request is sent (after a pause), the one before
// it is aborted, and an answer that arrives after a newer request started is dropped. No request storm, no stale
// epsilon overwriting a fresh one.

export class Latest {
  /**
   * @param {function(AbortSignal): Promise} work  does the request(s); gets a signal to pass to fetch.
   * @param {{delay?: number, onResult: function, onError: function}} handlers  called only for the latest work.
   */
  constructor(work, { delay = 150, onResult, onError, setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (id) => clearTimeout(id) }) {
    Object.assign(this, { work, delay, onResult, onError, setTimer, clearTimer });
    this.sequence = 0;
    this.timer = null;
    this.controller = null;
    this.inFlight = false;
  }

  /** Ask for new work; it runs after `delay` ms without another request (0: at once). */
  request(delay = this.delay) {
    this.clearTimer(this.timer);
    this.timer = this.setTimer(() => this.run(), delay);
  }

  /** Whether the latest request has not answered yet (waiting out its delay or in flight). */
  get pending() {
    return this.timer !== null || this.inFlight;
  }

  async run() {
    this.timer = null;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.sequence += 1;
    const mine = this.sequence;
    this.inFlight = true;
    let result;
    try {
      result = await this.work(controller.signal);
    } catch (error) {
      if (mine !== this.sequence) return;
      this.inFlight = false;
      if (error.name !== 'AbortError') this.onError(error);
      return;
    }
    if (mine !== this.sequence) return;
    this.inFlight = false;
    this.onResult(result); // outside the try: a bug here is a page error, not a 400
  }
}
