// Wiring: the state from the URL, controls from the knob table, the epsilon preview, runs and their polling loop,
// history, exports and keyboard. The logic lives in the other modules; this one connects them to the page.

import { applicable, changeText } from './advice.js';
import * as api from './api.js';
import { chartPNG, clearOverlays, createCharts, drawCharts, tableOf } from './charts.js';
import { buildControls } from './controls.js';
import { byId, h } from './dom.js';
import { download, runToCSV, runToJSON, statementText } from './exporting.js';
import { assumptions, formatEpsilon, percent, runBasis, sig, wordsOf } from './format.js';
import * as store from './history.js';
import { applyPreset, matchingPreset, PRESETS, presetById } from './presets.js';
import { livePreview, plannedReport } from './preview.js';
import { merge, newRun, Poller, TERMINAL } from './run.js';
import { describe } from './series.js';
import { describeAudit } from './audit.js';
import { activeRun, storageOr } from './session.js';
import { bodyFor, constrain, parseQuery, rowsOf, runBody, toQuery } from './state.js';
import * as views from './views.js';

const page = { spec: null, words: null, state: null, hide: [], run: null, preview: null, history: [], selected: [],
  charts: null, controls: null, poller: null, previewWork: null };

const storage = storageOr(() => window.localStorage);
const active = activeRun(storageOr(() => window.sessionStorage));

const isRunning = () => page.run !== null && !TERMINAL.includes(page.run.status);
const announce = (text) => { byId('status').textContent = text; };

// --- settings ---------------------------------------------------------------------------------------------------

let urlTimer = null;
function writeURL() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    window.history.replaceState(null, '', `${window.location.pathname}?${toQuery(page.state, page.spec.params, page.hide)}`);
  }, 250);
}

/** After any change of the state: dependent controls, URL, preset menu, preview and charts. */
function changed(names) {
  // σ is moot without privacy, and solved (not set) while the target ε decides it
  page.controls.control('noise_multiplier').disable(!page.state.private || page.state.solve);
  byId('noise_multiplier').title = page.state.private ? ''
    : 'Private is off: a non-private run adds no noise, so σ does nothing. Turn Private on to set it.';
  writeURL();
  syncPresetMenu();
  page.previewWork.changed(names);
  draw();
}

function onInput(name, value) {
  const { state, notes } = constrain({ ...page.state, [name]: value });
  page.state = state;
  if (notes.length) { // the batch was lowered to fit the dataset
    page.controls.set(state);
    announce(notes.join('; '));
  }
  changed(notes.length ? [name, 'batch_size'] : [name]);
}

function setState(next, names) {
  page.state = constrain(next).state;
  page.controls.set(page.state);
  changed(names);
}

// --- presets ----------------------------------------------------------------------------------------------------

function buildPresetMenu() {
  const groups = [...new Set(PRESETS.map((p) => p.group))];
  byId('preset').replaceChildren(h('option', { value: '' }, 'Custom settings'),
    ...groups.map((g) => h('optgroup', { label: g },
      PRESETS.filter((p) => p.group === g).map((p) => h('option', { value: p.id }, p.label)))));
  byId('preset').addEventListener('change', (e) => {
    const preset = presetById(e.target.value);
    if (preset) usePreset(preset);
  });
  byId('use-recommended').addEventListener('click', () => usePreset(presetById('tutorial')));
}

function usePreset(preset) {
  setState(applyPreset(page.state, preset), Object.keys(preset.params).concat('solve'));
  announce(`Preset: ${preset.label}. ${preset.note}`);
}

function syncPresetMenu() {
  const preset = matchingPreset(page.state);
  byId('preset').value = preset?.id ?? '';
  byId('preset-note').textContent = preset?.note
    ?? 'Pick a preset to see what it teaches, or move the sliders and press Run.';
}

// --- epsilon preview --------------------------------------------------------------------------------------------

function showPreview(preview) {
  if (preview.solved && page.state.solve) {
    page.state = { ...page.state, noise_multiplier: preview.solved.noise_multiplier };
    page.controls.control('noise_multiplier').set(page.state.noise_multiplier);
    writeURL();
  }
  ['noise_multiplier', 'target_epsilon', 'batch_size', 'accountant'].forEach((f) => {
    const line = byId(`${f}-error`);
    if (line && !isRunning()) line.hidden = true;
  });
  page.preview = preview;
  views.renderPreview(preview, page.words);
  draw();
}

/** An accountant refusal in words for the page: an unreachable target says what would reach it. */
function previewErrorText(error) {
  const unreachable = /out of reach/.test(error.errors?.target_epsilon ?? '');
  if (unreachable && page.state.solve) {
    return `No noise multiplier up to σ ${sig(page.spec.params.find((r) => r.name === 'noise_multiplier').max)} keeps ε `
      + `within ${sig(page.state.target_epsilon)} with these settings. Raise the target ε, train fewer epochs, use a `
      + 'smaller batch or more examples (N).';
  }
  return `The accountant could not answer: ${error.message}`;
}

function showPreviewError(error) {
  const text = previewErrorText(error);
  page.controls.showErrors(text.startsWith('No noise') ? { target_epsilon: text } : error.errors ?? {});
  page.preview = null;  // nothing on the page may go on describing the previous settings
  views.renderPreviewError(text);
  draw();
}

// --- charts -----------------------------------------------------------------------------------------------------

const CANVASES = { progress: 'chart-progress', steps: 'chart-steps', classes: 'chart-classes',
  histogram: 'chart-histogram', clip: 'chart-clip', privacy: 'chart-privacy',
  roc: 'chart-roc', roclog: 'chart-roclog' };

function draw() {
  if (!page.charts) return;
  const { run, state } = page;
  const overlays = page.history.filter((e) => page.selected.includes(e.id) && e.id !== run?.id);
  const planned = plannedReport(page.preview);
  const target = state.private ? state.target_epsilon : null;
  drawCharts(page.charts, { run, overlays, planned, target, epochs: Math.max(state.epochs, run?.params.epochs ?? 0),
    words: page.words });
  const labels = { progress: describe.progress(run), steps: describe.steps(run), classes: describe.classes(run),
    histogram: describe.histogram(run),
    clip: describe.clip(run), privacy: describe.privacy(run, planned, target, page.words),
    roc: describeAudit(run, planned), roclog: describeAudit(run, planned) };
  for (const [name, id] of Object.entries(CANVASES)) byId(id).setAttribute('aria-label', labels[name]);
  document.querySelectorAll('[data-table][aria-expanded="true"]').forEach(renderTables);
}

function renderTables(button) {
  const box = button.closest('.card').querySelector('[data-table-box]');
  box.replaceChildren(...button.dataset.table.split(' ').map((name) => views.renderTable(tableOf(page.charts, name))));
}

function wireChartTools() {
  document.querySelectorAll('[data-view]').forEach((button) => button.addEventListener('click', () => {
    const card = button.closest('.card');
    card.querySelectorAll('[data-view]').forEach((b) => b.setAttribute('aria-pressed', String(b === button)));
    card.querySelectorAll('[data-chart-box]').forEach((box) => { box.hidden = box.dataset.chartBox !== button.dataset.view; });
  }));
  document.querySelectorAll('[data-table]').forEach((button) => button.addEventListener('click', () => {
    const open = button.getAttribute('aria-expanded') !== 'true';
    button.setAttribute('aria-expanded', String(open));
    button.textContent = open ? 'Hide table' : 'Show as table';
    button.closest('.card').querySelector('[data-table-box]').hidden = !open;
    if (open) renderTables(button);
  }));
  document.querySelectorAll('[data-png]').forEach((button) => button.addEventListener('click', async () => {
    for (const name of button.dataset.png.split(' ')) {
      if (byId(CANVASES[name]).closest('.chart-box').hidden) continue; // the other view of a switched card
      download(`dpsgd-${name}${page.run?.mode === 'simulate' ? '-simulated' : ''}.png`, await chartPNG(page.charts, name));
    }
  }));
}

// --- runs -------------------------------------------------------------------------------------------------------

function setRunning(running) {
  byId('run').disabled = running;
  byId('cancel').disabled = !running;
  document.body.classList.toggle('running', running);
}

function showRunError(error) {
  const box = byId('run-error');
  box.hidden = false;
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : '';
  // 429 (limits, a full queue): the server's sentence says why, without the field name in front of it
  const message = error.status === 429 ? `The server is busy: ${Object.values(error.errors).join('; ')}.`
    : error.message;
  box.textContent = `${message}${wait}`;
  if (error.status !== 429) page.controls.showErrors(error.errors ?? {});
}

/**
 * The server answered 404 for the run being polled: it was evicted after it finished, or the server restarted and
 * lost it. Say which (the server's message), stop, and keep what the page had shown in the history.
 */
function loseRun(error) {
  active.clear();
  const shown = page.run.epochs.length;
  page.run = { ...page.run, status: 'cancelled', lost: true }; // not running any more: Run works again
  setRunning(false);
  renderRun();
  const kept = shown ? ` This page keeps the ${shown} epoch${shown > 1 ? 's' : ''} it had shown, in its history.`
    : ' It had shown no epoch yet.';
  showRunError({ message: `${error.errors?.id ?? error.message}.${kept}` });
  announce('The server no longer has this run; see the message under Run.');
  page.history = store.save(storage, store.add(page.history, store.entryOf(page.run)));
  renderHistory();
}

async function startRun() {
  if (isRunning() || byId('run').disabled) return;
  if (page.state.solve && page.state.private && (page.previewWork.pending || !page.preview?.solved)) {
    // the σ on the slider may not be the one solved for the target yet: a run must spend what the page says
    showRunError({ message: 'The noise multiplier is still being solved for the target ε (or could not be); '
      + 'Run once the solved σ is shown.' });
    return;
  }
  byId('run-error').hidden = true;
  page.controls.clearErrors();
  const body = runBody(page.state, page.spec.fields.runs, page.spec.params);
  byId('run').disabled = true;
  let started;
  try {
    started = await api.startRun(body);
  } catch (error) {
    byId('run').disabled = false;
    showRunError(error);
    announce(`The run did not start: ${error.message}`);
    return;
  }
  page.run = newRun(started, body, body.mode);
  active.save(started, body);
  setRunning(true);
  announce(started.status === 'queued' ? `Run queued at position ${started.queue_position}.` : 'Run started.');
  renderRun();
  page.poller.start(page.run.id);
}

async function cancelRun() {
  if (!isRunning()) return;
  byId('cancel').disabled = true;
  try {
    const snap = await api.cancelRun(page.run.id, page.run.token);
    // A paced or queued run ends at once; a training run stops after its current step, so keep polling for that.
    if (TERMINAL.includes(snap.status)) page.poller.stop();
    page.run.cancelling = true;
    onSnapshot(snap);
  } catch (error) {
    if (error.status !== 409) showRunError(error); // 409: it ended meanwhile; the next poll shows how
    byId('cancel').disabled = !isRunning();
  }
}

function onSnapshot(snap) {
  const before = page.run;
  page.run = merge(before, snap);
  renderRun();
  announceProgress(before, page.run);
  if (TERMINAL.includes(page.run.status)) finishRun();
}

function announceProgress(before, run) {
  const last = run.epochs[run.epochs.length - 1];
  if (before.status === 'queued' && run.status === 'running') announce('Training started.');
  else if (last && last !== before.epochs[before.epochs.length - 1] && !TERMINAL.includes(run.status)) {
    announce(`Epoch ${last.epoch} of ${run.params.epochs}: test accuracy ${percent(last.test_accuracy)}`
      + (last.epsilon === null || last.epsilon === undefined ? '.'
        : `, ε ${formatEpsilon(last.epsilon)} (${assumptions(runBasis(run.params, page.words), page.words)}).`));
  }
}

/** After a reload: the run this tab had in flight, polled again from its first record. */
function resumeRun() {
  const saved = active.load();
  if (!saved) return;
  page.run = newRun(saved.started, saved.body, saved.body.mode);
  setRunning(true);
  announce('Picking up the run this tab had started.');
  renderRun();
  page.poller.start(page.run.id);
}

function finishRun() {
  active.clear();
  setRunning(false);
  const { run } = page;
  const sim = run.mode === 'simulate' ? 'Simulated run' : 'Run';
  const s = run.summary;
  if (run.status === 'failed') {
    showRunError({ message: `The run failed: ${run.error ?? 'no reason given'}` });
    announce(`The run failed: ${run.error ?? 'no reason given'}`);
  } else {
    const eps = s?.private ? `ε = ${formatEpsilon(s.final_epsilon)} (${assumptions(s, page.words)})`
      : 'no privacy guarantee (non-private)';
    if (!s?.epochs_completed) announce(`${sim} cancelled before its first epoch ended: no epoch was released.`);
    else {
      announce(`${sim} ${run.status === 'cancelled' ? 'cancelled' : 'finished'}: test accuracy `
        + `${percent(s?.final_test_accuracy)}, ${eps}.`);
    }
  }
  page.history = store.save(storage, store.add(page.history, store.entryOf(run)));
  renderHistory();
}

function renderRun() {
  const { run } = page;
  views.renderProgress(run);
  views.renderSummary(run, store.baselineFor(page.history, run), page.words,
    store.costBaselineFor(page.history, run));
  views.renderRecommendations(run.recommendations ?? [], run.status, applyChange);
  views.renderAudit(run, store.baselineFor(page.history, run));
  document.querySelectorAll('[data-sim]').forEach((badge) => { badge.hidden = run.mode !== 'simulate'; });
  byId('run-mode').textContent = run.mode === 'simulate' ? 'Simulated run' : 'Real run';
  const exportable = run.epochs.length > 0;
  byId('export-csv').disabled = !exportable;
  byId('export-json').disabled = !exportable;
  byId('export-statement').disabled = !run.summary?.statement;
  draw();
}

// --- advice and the settings search --------------------------------------------------------------------------

/** Set the knobs of a change (the diagnosis's, or a searched candidate's) on the sliders; the person runs it. */
function applyChange(change, what = 'the recommended change') {
  const knobs = applicable(change, page.spec.params);
  delete knobs.mode; // a candidate keeps the page's mode
  setState({ ...page.state, ...knobs, solve: false }, Object.keys(knobs));
  announce(`Applied ${what}: ${changeText(knobs)}. Press Run to try it.`);
}

let searchGeneration = 0;
async function findSettings() {
  const target = page.state.target_epsilon;
  const render = (parts) => views.renderSuggestions({ target, words: page.words,
    onUse: (c) => applyChange(c.params, 'these settings'), ...parts });
  if (!page.state.private) {
    render({ error: 'Turn Private on first: the search looks for settings within a privacy budget (target ε).' });
    return;
  }
  const generation = ++searchGeneration;
  render({ busy: true });
  try {
    // the simulator's search: real-mode-only knobs (audit, variants) are left out, so it takes their fitted values
    const answer = await api.suggest(runBody({ ...page.state, mode: 'simulate' }, page.spec.fields.runs,
      page.spec.params));
    if (generation === searchGeneration) render({ answer });
  } catch (error) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : '';
    if (generation === searchGeneration) render({ error: `The search did not run: ${Object.values(error.errors ?? {}).join('; ') || error.message}.${wait}` });
  }
}

// --- history ----------------------------------------------------------------------------------------------------

function renderHistory() {
  const ids = new Set(page.history.map((e) => e.id));
  page.selected = page.selected.filter((id) => ids.has(id));
  views.renderHistory(page.history, page.selected, {
    toggle(id) {
      page.selected = store.toggle(page.selected, id);
      renderHistory();
      draw();
    },
    load(entry) {
      const knobs = Object.fromEntries(page.spec.params.map((r) => [r.name, entry.params[r.name]])
        .filter(([, v]) => v !== undefined));
      setState({ ...page.state, ...knobs, mode: entry.mode, solve: false }, Object.keys(knobs));
      announce(`Loaded the settings of run ${entry.number}.`);
    },
  }, page.words, page.run?.id);
}

/** "Clear history" empties it at once and offers Undo (the same button) for a while; nothing is asked first. */
function wireHistory() {
  const button = byId('history-clear');
  let undo = null;
  const restore = (list, text) => {
    page.history = store.save(storage, list);
    clearOverlays(page.charts ?? { overlayCache: new Map() });
    renderHistory();
    draw();
    announce(text);
  };
  button.addEventListener('click', () => {
    if (undo) {
      clearTimeout(undo.timer);
      const { kept } = undo;
      undo = null;
      button.textContent = 'Clear history';
      delete button.dataset.undo;
      restore(kept, `History restored: ${kept.length} run${kept.length === 1 ? '' : 's'}.`);
      return;
    }
    const kept = page.history;
    page.selected = [];
    button.dataset.undo = 'true';
    button.textContent = 'Undo clear';
    restore([], 'History cleared. Press “Undo clear” to bring it back.');
    undo = { kept, timer: setTimeout(() => {
      undo = null;
      delete button.dataset.undo;
      button.textContent = 'Clear history';
      renderHistory();
    }, 20000) };
  });
}

// --- exports, link, keyboard ------------------------------------------------------------------------------------

function wireExports() {
  byId('export-csv').addEventListener('click', () => download(`dpsgd-run-${page.run.id}.csv`, runToCSV(page.run), 'text/csv'));
  byId('export-json').addEventListener('click', () => download(`dpsgd-run-${page.run.id}.json`, runToJSON(page.run),
    'application/json'));
  byId('export-statement').addEventListener('click', () => {
    const s = page.run.summary;
    download(`dpsgd-run-${page.run.id}-privacy.txt`, statementText({ epsilon: s.final_epsilon,
      ...runBasis(page.run.params, page.words), statement: s.statement }, page.words,
    { simulated: page.run.mode === 'simulate', private: page.run.params.private }));
  });
  byId('export-script').addEventListener('click', async () => {
    try {
      const script = await api.exportScript(bodyFor(page.state, page.spec.fields.export));
      download('dpsgd_mnist.py', script, 'text/x-python');
    } catch (error) {
      showRunError(error);
    }
  });
  byId('download-statement').addEventListener('click', () => {
    const report = plannedReport(page.preview);
    if (!report) return;
    download('dpsgd-privacy-statement.txt', statementText(report, page.words));
  });
  byId('copy-link').addEventListener('click', async () => {
    const url = window.location.href;
    try {
      await navigator.clipboard.writeText(url);
      byId('copy-result').textContent = 'Link copied.';
    } catch {
      byId('copy-result').textContent = url;
    }
  });
}

// What a teacher link can hide: the sections (their data-control names) and every knob of the table.
const SECTIONS = ['presets', 'privacy', 'result', 'export', 'recommendations', 'suggest', 'progress-chart',
  'budget-chart', 'clipping-chart', 'audit-chart', 'history', 'learn'];

function wireTeacherLink() {
  const choices = [...SECTIONS.map((name) => [name, name]), ...page.spec.params.map((r) => [r.name, r.label])];
  byId('teacher-choices').replaceChildren(...choices.map(([name, label]) => h('label', { class: 'teacher-choice' },
    h('input', { type: 'checkbox', value: name, checked: page.hide.includes(name), onchange: update }), ` ${label}`)));
  function update() {
    const hide = [...byId('teacher-choices').querySelectorAll('input:checked')].map((i) => i.value);
    const url = `${window.location.origin}${window.location.pathname}?${toQuery(page.state, page.spec.params, hide)}`;
    byId('teacher-url').value = url;
    return url;
  }
  byId('teacher-link').addEventListener('toggle', update);
  byId('teacher-copy').addEventListener('click', async () => {
    const url = update();
    try {
      await navigator.clipboard.writeText(url);
      announce('Teacher link copied.');
    } catch {
      byId('teacher-url').select(); // no clipboard here: the link is selected for copying by hand
      announce('Teacher link ready to copy from the field.');
    }
  });
}

// Keys that a focused control handles itself: typing, toggling, pressing a button, following a link.
const OWNS_KEYS = 'input:not([type="range"]), select, textarea, button, a[href], summary, [contenteditable="true"]';

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === 'Escape') {
    if (isRunning()) {
      event.preventDefault();
      cancelRun();
    }
    return;
  }
  if ((event.key === 'Enter' || event.key === ' ') && !event.target.closest?.(OWNS_KEYS)) {
    event.preventDefault();
    startRun();
  }
}

function hideControls(names) {
  for (const name of names) document.querySelectorAll(`[data-control="${name}"]`).forEach((el) => { el.hidden = true; });
}

// --- start ------------------------------------------------------------------------------------------------------

function chooseMode(state, modes, notes, fromLink) {
  if (modes[state.mode]?.available) return state;
  const other = Object.keys(modes).find((m) => modes[m].available);
  if (!other) {
    byId('run').disabled = true;
    showRunError({ message: `No training mode is available on this server: ${Object.entries(modes)
      .map(([m, info]) => `${m}: ${info.reason}`).join('; ')}` });
    return state;
  }
  if (fromLink) notes.push(`mode ${state.mode} is unavailable on this server (${modes[state.mode]?.reason}); using ${other}`);
  return { ...state, mode: other };
}

async function init() {
  try {
    page.spec = await api.getParams();
  } catch (error) {
    byId('fatal').hidden = false;
    byId('fatal').textContent = `Could not load the settings from the server: ${error.message}. Reload to try again.`;
    return;
  }
  const { spec } = page;
  page.words = wordsOf(spec);
  const parsed = parseQuery(window.location.search, spec.params);
  page.hide = parsed.hide;
  page.controls = buildControls(byId('knobs'), rowsOf(spec.params), onInput);
  Object.entries(spec.modes).filter(([, info]) => !info.available)
    .forEach(([mode, info]) => page.controls.control('mode').disableChoice(mode, info.reason));
  page.state = chooseMode(parsed.state, spec.modes, parsed.notes,
    new URLSearchParams(window.location.search).has('mode'));
  page.controls.set(page.state);
  views.renderNotes(parsed.notes);
  byId('notes-dismiss').addEventListener('click', () => { byId('notes').hidden = true; });
  hideControls(page.hide);
  buildPresetMenu();

  try {
    page.charts = createCharts(Object.fromEntries(Object.entries(CANVASES).map(([k, id]) => [k, byId(id)])));
  } catch (error) {
    byId('fatal').hidden = false;
    byId('fatal').textContent = `The charts could not load (${error.message}); everything else works.`;
  }
  wireChartTools();
  page.previewWork = livePreview({ api, spec, getState: () => page.state, onResult: showPreview,
    onError: showPreviewError });
  page.poller = new Poller({ fetchSnapshot: api.getRun, onSnapshot, isHidden: () => document.hidden,
    onError: (error, failures) => {
      if (error.status === 404) loseRun(error);
      else if (failures === 3) announce(`Lost contact with the server (${error.message}); still trying.`);
    } });
  page.history = store.load(storage);
  renderHistory();
  wireHistory();
  wireExports();
  wireTeacherLink();
  byId('run').addEventListener('click', startRun);
  byId('suggest').addEventListener('click', findSettings);
  byId('cancel').addEventListener('click', cancelRun);
  byId('controls').addEventListener('submit', (event) => event.preventDefault()); // Enter in the seed field
  document.addEventListener('keydown', onKey);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) page.poller.wake(); });
  changed(['noise_multiplier']);
  page.previewWork.now();
  resumeRun();
  document.body.classList.add('ready');
}

init();
