// Shared test inputs: the knob table as GET /api/params serves it (tests/test_page.py checks this copy against
// app/params.py), the rest of that answer, and small run records of the API.md shape.
import { readFileSync } from 'node:fs';

export const KNOBS = JSON.parse(readFileSync(new URL('./knobs.json', import.meta.url), 'utf8'));
export const row = (name) => KNOBS.find((k) => k.name === name);
// GET /api/params as the page reads it: that table, the request fields and how runs sample (spec.json, also checked
// against the server by tests/test_page.py).
export const SPEC = { ...JSON.parse(readFileSync(new URL('./spec.json', import.meta.url), 'utf8')), params: KNOBS };

export function epochRecord(epoch, extra = {}) {
  return { epoch, train_loss: 1 / epoch, test_loss: 1.1 / epoch, test_accuracy: 0.5 + 0.1 * epoch,
    epsilon: 0.3 * epoch, clip_fraction: 0.4, grad_norm: { p10: 0.2, p50: 0.9, p90: 2.5 },
    grad_norm_histogram: { edges: [0.01, 0.1, 1, 10, 100], counts: [0, 5, 15, 0] },
    epoch_seconds: 1.5, examples_per_second: 4000, ...extra };
}

