// Rendering the page's non-chart parts from data: the epsilon preview, the run's progress and result cards,
// recommendations, the history table, link notes and chart tables. No state of its own; main.js decides what to show.
// `words` is format.wordsOf the spec: the names of the choices and how runs sample.

import { byId, h } from './dom.js';
import {
  assumptions, duration, epsilonBand, formatEpsilon, meaning, percent, phrase, progressText, runBasis, sig, whole,
} from './format.js';
import { changeText, describeCandidate, searchSummary, seedAgainstRange } from './advice.js';
import { MAX_OVERLAYS } from './history.js';
import { absentReading, auditReading, baselineReading } from './audit.js';
import { costReading } from './cost.js';

const setText = (id, text) => { byId(id).textContent = text; };

export function renderNotes(notes) {
  byId('notes-list').replaceChildren(...notes.map((n) => h('li', {}, n)));
  byId('notes').hidden = notes.length === 0;
}

/** Mark the band of an epsilon on the scale and say what it means. */
function renderBand(epsilon, delta) {
  const band = epsilonBand(epsilon);
  byId('band-scale').querySelectorAll('li').forEach((li) => {
    const current = li.dataset.band === band.id;
    li.classList.toggle('current', current);
    if (current) li.setAttribute('aria-current', 'true');
    else li.removeAttribute('aria-current');
  });
  byId('privacy').dataset.band = band.id;
  const verdict = band.id === 'none' ? '' : `${band.word[0].toUpperCase()}${band.word.slice(1)}. `;
  setText('eps-meaning', verdict + meaning(epsilon, delta));
}

/**
 * The preview of the current settings.
 * @param p {{rdp, pld, pldError, accountant, private: boolean, solved, budgetStop: number|null, target}}
 */
export function renderPreview(p, words) {
  const used = p.accountant;
  const whatIf = p.private && p.rdp.sampling !== words.runSampling;  // shuffle figures are a what-if
  ['eps-rdp-used', 'eps-pld-used'].forEach((id) => setText(id, whatIf
    ? `runs use it, with ${phrase(words, 'sampling', words.runSampling)}` : 'used for runs'));
  byId('eps-rdp-used').hidden = used !== 'rdp';
  byId('eps-pld-used').hidden = used !== 'pld';
  byId('eps-rdp-box').classList.toggle('used', used === 'rdp');
  byId('eps-pld-box').classList.toggle('used', used === 'pld');
  if (!p.private) {
    setText('epsilon-rdp', '∞');
    setText('epsilon-pld', '∞');
    setText('eps-assumptions', 'non-private baseline: no clipping, no noise');
    setText('eps-steps', '');
    byId('pld-reason').hidden = true;
    renderBand(null, 0);
    setText('eps-live', 'Non-private: no privacy guarantee.');
    setText('runbar-eps', 'ε ∞ (non-private)');
    setText('statement', 'Non-private baseline: trained without clipping or noise, so it has no differential privacy '
      + 'guarantee (epsilon is infinite).');
    byId('solve-result').hidden = true;
    byId('budget-note').hidden = true;
    return;
  }
  const { rdp } = p;
  setText('epsilon-rdp', formatEpsilon(rdp.epsilon));
  setText('epsilon-pld', p.pld ? formatEpsilon(p.pld.epsilon) : 'n/a');
  byId('pld-reason').hidden = !p.pldError;
  setText('pld-reason', p.pldError ? `${phrase(words, 'accountant', 'pld')} not computed: ${p.pldError}` : '');
  setText('eps-assumptions', `δ = ${sig(rdp.delta)}, ${phrase(words, 'sampling', rdp.sampling)}`);
  setText('eps-steps', `q = ${sig(rdp.sample_rate)}, ${rdp.steps.toLocaleString('en-US')} steps`);
  const headline = used === 'pld' && p.pld ? p.pld : rdp;
  renderBand(headline.epsilon, rdp.delta);
  setText('eps-live', `ε ${formatEpsilon(headline.epsilon)} (${assumptions(headline, words)}), `
    + `${epsilonBand(headline.epsilon).word}.`);
  setText('runbar-eps', `A run spends ε ${formatEpsilon(p.forRuns.epsilon)} (${assumptions(p.forRuns, words)})`);
  setText('statement', headline.statement);
  byId('solve-result').hidden = !p.solved;
  if (p.solved) {
    setText('solve-result', `Solved: noise multiplier σ = ${sig(p.solved.noise_multiplier, 4)} is the smallest that keeps `
      + `ε within ${sig(p.target)} (it gives ε = ${formatEpsilon(p.solved.epsilon)}, ${assumptions(p.solved, words)}).`);
  }
  byId('budget-note').hidden = p.budgetStop === undefined;
  if (p.budgetStop !== undefined) {
    const target = sig(p.target);
    let note = `Budget stop (${assumptions(p.forRuns, words)}): the run will stop after epoch ${p.budgetStop} of ${rdp.epochs}; `
      + `the next epoch would pass ε ${target}.`;
    if (p.budgetStop === null) note = `Budget stop: the whole run stays within ε ${target}.`;
    if (p.budgetStop === 0) note = `Budget stop: even the first epoch would pass ε ${target}, so nothing can run. Raise the target or the noise.`;
    setText('budget-note', note);
  }
}

export function renderPreviewError(message) {
  ['epsilon-rdp', 'epsilon-pld', 'runbar-eps'].forEach((id) => setText(id, '–'));
  ['eps-assumptions', 'eps-steps', 'statement', 'eps-live'].forEach((id) => setText(id, ''));
  ['solve-result', 'budget-note'].forEach((id) => { byId(id).hidden = true; });
  setText('eps-meaning', message);
}

/** Progress bar and line; queue position while queued. */
export function renderProgress(run) {
  const bar = byId('progress');
  if (run.status === 'queued') {
    bar.removeAttribute('value');
    // "Queued" only when a run is ahead; position 0 (or none) is a run about to start
    setText('progress-text', run.queue_position > 0
      ? `Queued: position ${run.queue_position} in the ${run.mode} queue. It starts when the runs ahead finish.`
      : 'Starting…');
    return;
  }
  bar.value = run.progress?.fraction ?? 0;
  const prefix = { running: run.cancelling ? 'Cancelling: the run stops after its current step. ' : '',
    succeeded: 'Finished. ', failed: 'Failed. ', cancelled: run.lost ? 'Cut short: the server lost this run. '
      : 'Cancelled. ' }[run.status] ?? '';
  const done = ['succeeded', 'failed', 'cancelled'].includes(run.status);
  // a finished run has nothing left: its line never says "about 8 s left"
  let progress = run.progress && done ? { ...run.progress, eta_seconds: null } : run.progress;
  if (progress && run.status === 'running' && progress.epoch < progress.epochs) {
    progress = { ...progress, epoch: progress.epoch + 1 }; // the epoch under way, not the epochs completed
  }
  setText('progress-text', progress ? prefix + progressText(progress) : `${prefix}${done ? '' : 'Starting…'}`);
}

function metric(label, value, detail) {
  return h('div', { class: 'metric' }, h('span', { class: 'metric-label' }, label),
    h('span', { class: 'metric-value' }, value), h('span', { class: 'metric-detail' }, detail));
}

/** The result cards of a finished run (or of the epochs so far while it runs). */
export function renderSummary(run, baseline, words, costBaseline = null) {
  const last = run.epochs[run.epochs.length - 1];
  if (!last) {
    const why = { failed: `The run failed: ${run.error ?? 'no reason given'}`,
      cancelled: 'Cancelled before its first epoch ended: no model was released, so there is no accuracy to show '
        + 'and nothing was published to spend ε on.' }[run.status] ?? 'Waiting for the first epoch…';
    byId('metrics').replaceChildren(h('p', { class: 'empty' }, why));
    return;
  }
  const s = run.summary;
  const state = { queued: ' (running)', running: ' (running)', failed: ' (failed)' }[run.status] ?? '';
  const accuracy = s?.final_test_accuracy ?? last.test_accuracy;
  const epochsDone = s?.epochs_completed ?? run.epochs.length;
  const epsilon = s ? s.final_epsilon : last.epsilon;
  const privateRun = run.params.private;
  const sim = run.mode === 'simulate' ? 'simulated, ' : '';
  const stopped = run.budget?.stops_early
    ? `; stopped at the budget ε ${sig(run.budget.target_epsilon)} (${run.budget.requested_epochs} requested)` : '';
  const range = s?.real_run_range
    ? `. A real run with these settings ends at ${percent(s.real_run_range[0])}–${percent(s.real_run_range[1])} `
      + `8 times in 10 (1 in 10 below, 1 in 10 above). ${seedAgainstRange(accuracy, s.real_run_range)}`
      + (s.collapse_chance >= 0.02 ? ` The simulator gives these settings a ${percent(s.collapse_chance, 0)} chance `
        + 'to collapse (diverge to about chance, 10%).' : '') : '';
  const cards = [
    metric('Test accuracy', percent(accuracy),
      `${sim}after ${epochsDone} of ${run.params.epochs} epochs${state}${stopped}${range}`),
    metric('Privacy spent', privateRun ? `ε = ${formatEpsilon(epsilon)}` : 'ε = ∞',
      (privateRun ? assumptions(runBasis(run.params, words), words) : 'non-private baseline: no guarantee')
      + (s?.audit?.canaries ? `; canary audit: ε ≥ ${sig(s.audit.canaries.epsilon_lower_bound, 3)} `
        + `(${percent(s.audit.canaries.confidence, 0)} lower bound, at most ${sig(s.audit.canaries.ceiling, 3)} `
        + 'certifiable)' : '')),
    metric('Time', duration(s?.seconds ?? run.progress?.elapsed_seconds),
      last.examples_per_second ? `${Math.round(last.examples_per_second).toLocaleString('en-US')} examples/s`
        : `${run.mode} run`),
  ];
  if (baseline) {
    const gap = (accuracy - baseline.accuracy) * 100;
    cards.push(metric('vs non-private', `${gap >= 0 ? '+' : '−'}${Math.abs(gap).toFixed(1)} points`,
      `baseline ${percent(baseline.accuracy)} (${baseline.mode === 'simulate' ? 'simulated' : baseline.mode}, `
      + `${baseline.params.epochs} epochs): the price of privacy`));
  } else if (privateRun) {
    cards.push(metric('vs non-private', '–', 'Turn off “Private” and run once to see what privacy costs here.'));
  }
  if (s?.profile) cards.push(costOfPrivacy(run, s.profile, costBaseline));
  byId('metrics').replaceChildren(...cards);
}

/** The cost of privacy a real run measured, against the last non-private run of its model and batch (cost.js). */
function costOfPrivacy(run, profile, costBaseline) {
  const { value, detail } = costReading(run, profile, costBaseline);
  const card = metric('Cost of privacy', value, detail);
  card.id = 'cost-of-privacy';
  return card;
}

/** The audit card's reading of a run (or why it has none), and the last non-private run's audit beside it. */
export function renderAudit(run, baseline) {
  const reading = auditReading(run);
  const compare = reading ? baselineReading(run, baseline) : null;
  byId('audit-details').replaceChildren(h('p', {}, reading ?? absentReading(run)),
    ...(compare ? [h('p', { class: 'audit-baseline' }, compare)] : []));
}

const SEVERITY = { warning: 'Warning', tip: 'Tip' };

/**
 * The diagnosis (what limits this run, with its numbers and one change to apply) and, smaller, the notes.
 * `onApply(change)` sets the knobs of a change.
 */
export function renderRecommendations(list, status, onApply) {
  const [diagnosis, ...notes] = list;
  const box = byId('diagnosis');
  box.hidden = !diagnosis;
  if (diagnosis) {
    const change = changeText(diagnosis.change);
    box.className = `diagnosis rec-${diagnosis.severity}`;
    box.dataset.id = diagnosis.id;
    box.replaceChildren(
      h('span', { class: 'rec-severity' }, `${SEVERITY[diagnosis.severity] ?? diagnosis.severity}: what limits this run`),
      h('strong', { class: 'diagnosis-title' }, diagnosis.title), h('p', { class: 'rec-detail' }, diagnosis.detail),
      change ? h('button', { type: 'button', class: 'button-primary', id: 'apply-change',
        onclick: () => onApply(diagnosis.change) }, `Apply: ${change}`) : null);
  }
  const items = notes.map((r) => h('li', { class: `rec rec-${r.severity}`, 'data-id': r.id },
    h('span', { class: 'rec-severity' }, SEVERITY[r.severity] ?? r.severity),
    h('strong', { class: 'rec-title' }, r.title), h('p', { class: 'rec-detail' }, r.detail)));
  const empty = status && !['queued', 'running'].includes(status)
    ? 'Nothing to recommend: the run completed no epoch to learn from.'
    : 'A diagnosis of what limits the run appears here after its first epoch.';
  byId('recs-notes-title').hidden = items.length === 0;
  byId('recs-list').replaceChildren(...(items.length ? items
    : diagnosis ? [] : [h('li', { class: 'empty' }, empty)]));
}

/** The settings search's state: `busy`, an error message, or its answer with `onUse(candidate)` per candidate. */
export function renderSuggestions({ busy = false, error = null, answer = null, target, onUse, words }) {
  byId('suggest').disabled = busy;
  byId('suggest').setAttribute('aria-busy', String(busy));
  let status = '';
  if (busy) status = 'Searching settings with the simulator (a few seconds)…';
  else if (error) status = error;
  else if (answer) status = searchSummary(answer, target);
  setText('suggest-status', status);
  const list = byId('suggest-list');
  list.hidden = !answer?.candidates.length || busy;
  if (!answer || busy) return;
  const basis = { accountant: answer.accountant, delta: answer.delta, sampling: answer.sampling };
  list.replaceChildren(...answer.candidates.map((c, i) => {
    const d = describeCandidate(c, basis, words);
    return h('li', { class: 'candidate', 'data-candidate': i + 1 },
      h('div', { class: 'candidate-head' }, h('strong', {}, d.accuracy), h('span', { class: 'candidate-knobs' }, d.knobs)),
      h('p', { class: 'candidate-detail' }, `${d.range}; ${d.epsilon}; ${d.time}.`),
      h('button', { type: 'button', class: 'button-secondary', onclick: () => onUse(c),
        'aria-label': `Use these settings (candidate ${i + 1}: ${d.knobs})` }, 'Use these settings'));
  }));
}

const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** The history table; `on.toggle(id)` and `on.load(entry)` are called from its controls. */
export function renderHistory(list, selected, on, words, currentId = null) {
  const full = selected.length >= MAX_OVERLAYS;
  const rows = list.map((e) => {
    const current = e.id === currentId; // already on the charts: overlaying it on itself would show nothing new
    const checked = selected.includes(e.id) && !current;
    const p = e.params;
    const label = current ? `Run ${e.number} is the run on the charts`
      : `Overlay run ${e.number} (${time(e.finished)}, accuracy ${percent(e.accuracy)})`;
    return h('tr', { class: checked ? 'selected' : null, 'data-run': e.id },
      h('td', {}, h('input', { type: 'checkbox', 'aria-label': label, checked, disabled: current || (!checked && full),
        title: current ? 'This is the run on the charts' : null, 'data-overlay': e.number,
        onchange: () => on.toggle(e.id) })),
      h('td', {}, `${e.number} · ${time(e.finished)}`),
      h('td', {}, e.mode === 'simulate' ? 'simulated' : e.mode,
        e.lost ? ' (cut short)' : e.status === 'cancelled' ? ' (cancelled)' : ''),
      h('td', {}, p.private ? sig(p.noise_multiplier) : 'off'), h('td', {}, sig(p.max_grad_norm)),
      h('td', {}, whole(p.batch_size)), h('td', {}, sig(p.learning_rate)), h('td', {}, whole(p.epochs)),
      h('td', {}, whole(p.dataset_size)), h('td', {}, percent(e.accuracy)),
      e.series.epoch.length === 0 ? h('td', {}, '–', h('span', { class: 'cell-note' }, 'no epoch released'))
        : h('td', {}, e.private ? formatEpsilon(e.epsilon) : '∞',
          h('span', { class: 'cell-note' }, e.private ? assumptions(e, words) : 'non-private')),
      h('td', {}, h('button', { type: 'button', class: 'button-quiet', onclick: () => on.load(e) }, 'Load settings')));
  });
  byId('history-body').replaceChildren(...rows);
  byId('history-empty').hidden = list.length > 0;
  byId('history-clear').disabled = list.length === 0 && !byId('history-clear').dataset.undo; // Undo stays usable
}

/** A chart's data as an HTML table ({caption, columns, rows} from charts.tableOf). */
export function renderTable({ caption, columns, rows }) {
  return h('table', { class: 'data-table' }, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((cell, i) => (i === 0 ? h('th', { scope: 'row' }, cell) : h('td', {}, cell)))))));
}
