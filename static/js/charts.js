// The only module that touches Chart.js (loaded from /vendor/chart.umd.js as the global `Chart`). Charts are made
// once; each draw mutates chart.data and calls chart.update('none'): no animation, no re-creation, no parsing (the
// points are already {x, y}).

import { assumptions, formatEpsilon, runBasis, sig } from './format.js';
import { budgetLine, classBars, fromSeries, histogramOutline, perEpoch, plannedEpsilon, stepLoss } from './series.js';
import { LOG_FPR_MIN, attackName, auditTable, dpRegion, regionFprs, rocPoints } from './audit.js';

// Okabe & Ito's colour-blind-safe palette; lines also differ by dash and point shape.
const COLOR = { accuracy: '#009E73', loss: '#D55E00', spent: '#0072B2', planned: '#56B4E9', budget: '#E69F00',
  clip: '#CC79A7', histogram: '#0072B2', ink: '#1d2330', grid: '#e4e7ec', sim: '#9a4d00' };
const OVERLAY = [{ color: '#5b5b5b', dash: [7, 3], point: 'rect' }, { color: '#8a8a8a', dash: [2, 3], point: 'rectRot' },
  { color: '#2f2f2f', dash: [12, 4], point: 'star' }];
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

// White behind the chart, so a saved PNG is readable anywhere.
const background = {
  id: 'background',
  beforeDraw(chart) {
    const { ctx, width, height } = chart;
    ctx.save();
    ctx.globalCompositeOperation = 'destination-over';
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    ctx.restore();
  },
};

// A labelled vertical line at options.plugins.verticalLine.value on the x axis (the clipping norm C).
const verticalLine = {
  id: 'verticalLine',
  afterDatasetsDraw(chart, _args, opts) {
    const x = chart.scales.x;
    if (opts.value === null || opts.value === undefined || opts.value < x.min || opts.value > x.max) return;
    const px = x.getPixelForValue(opts.value);
    const { top, bottom, left, right } = chart.chartArea;
    const { ctx } = chart;
    ctx.save();
    ctx.strokeStyle = opts.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(px, top);
    ctx.lineTo(px, bottom);
    ctx.stroke();
    ctx.fillStyle = opts.color;
    ctx.font = `600 12px ${FONT}`;
    const onRight = px < (left + right) / 2;
    ctx.textAlign = onRight ? 'left' : 'right';
    ctx.fillText(opts.label, px + (onRight ? 5 : -5), top + 12);
    ctx.restore();
  },
};

// A short message in the middle of a chart with nothing to draw yet (options.plugins.emptyState.text).
const emptyState = {
  id: 'emptyState',
  afterDraw(chart, _args, opts) {
    if (chart.data.datasets.some((d) => d.data.length)) return;
    const { ctx, chartArea: { left, right, top, bottom } } = chart;
    ctx.save();
    ctx.fillStyle = '#5a6272';
    ctx.font = `14px ${FONT}`;
    ctx.textAlign = 'center';
    ctx.fillText(opts.text, (left + right) / 2, (top + bottom) / 2);
    ctx.restore();
  },
};

const axisTitle = (text) => ({ display: true, text, color: COLOR.ink, font: { family: FONT, size: 12 } });

function options({ x, y, y2, legend = true }) {
  return {
    animation: false,
    parsing: false,
    normalized: true,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: 'nearest', axis: 'x', intersect: false },
    plugins: {
      legend: { display: legend, labels: { usePointStyle: true, pointStyleWidth: 10, boxHeight: 6, color: COLOR.ink,
        font: { family: FONT } } },
      subtitle: { display: false, text: 'SIMULATED RUN', color: COLOR.sim,
        font: { family: FONT, weight: 'bold' }, padding: { bottom: 6 } },
      tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${sig(c.parsed.y, 4)}${c.dataset.unit ?? ''}` } },
      verticalLine: { value: null, label: '', color: COLOR.ink },
      emptyState: { text: 'Press Run to draw this chart' },
    },
    scales: Object.fromEntries(Object.entries({ x, y, y2 }).filter(([, v]) => v)
      .map(([k, v]) => [k, { grid: { color: COLOR.grid }, ticks: { color: COLOR.ink }, ...v }])),
  };
}

function line(label, color, { dash = [], point = 'circle', unit = '', yAxisID = 'y', points = true, fill = false } = {}) {
  return { label, data: [], borderColor: color, backgroundColor: fill ? `${color}33` : color, borderDash: dash,
    pointStyle: point, pointRadius: points ? 3 : 0, pointHoverRadius: 5, borderWidth: 2, unit, yAxisID, fill,
    tension: 0 };
}

const epochAxis = { type: 'linear', title: axisTitle('epoch'), min: 1, ticks: { precision: 0 } };

/** Make every chart once. `canvases`: {progress, steps, classes, histogram, clip, privacy, roc, roclog} canvas elements. */
export function createCharts(canvases) {
  const { Chart } = globalThis;
  Chart.defaults.font.family = FONT;
  const make = (canvas, config) => new Chart(canvas, { ...config,
    plugins: [background, emptyState, ...(config.plugins ?? [])] });
  const charts = {
    progress: make(canvases.progress, { type: 'line',
      data: { datasets: [line('test accuracy', COLOR.accuracy, { unit: '%' }),
        line('test loss', COLOR.loss, { dash: [6, 4], point: 'triangle', yAxisID: 'y2' })] },
      options: options({ x: epochAxis, y: { min: 0, max: 100, title: axisTitle('test accuracy (%)') },
        y2: { position: 'right', min: 0, title: axisTitle('test loss'), grid: { drawOnChartArea: false } } }) }),
    steps: make(canvases.steps, { type: 'line',
      data: { datasets: [line('training loss per step', COLOR.loss, { points: false })] },
      options: { ...options({ x: { type: 'linear', title: axisTitle('step'), ticks: { precision: 0 } },
        y: { min: 0, title: axisTitle('loss on the batch') } }),
      plugins: { ...options({}).plugins, decimation: { enabled: true, algorithm: 'lttb', samples: 400 } } } }),
    classes: make(canvases.classes, { type: 'bar',
      data: { datasets: [{ label: 'test accuracy per digit', data: [], backgroundColor: COLOR.accuracy, unit: '%',
        barPercentage: 0.8, categoryPercentage: 1 }] },
      options: options({ legend: false,
        x: { type: 'linear', min: -0.5, max: 9.5, offset: false, title: axisTitle('digit'),
          ticks: { stepSize: 1, precision: 0 } },
        y: { min: 0, max: 100, title: axisTitle('test accuracy (%)') } }) }),
    histogram: make(canvases.histogram, { type: 'line', plugins: [verticalLine],
      data: { datasets: [{ ...line('share of examples', COLOR.histogram, { points: false, fill: 'origin', unit: '%' }),
        stepped: 'after' }] },
      options: options({ legend: false,
        x: { type: 'logarithmic', title: axisTitle('per-example gradient norm (log scale)'),
          ticks: { maxRotation: 0, callback: (v) => (Math.abs(Math.log10(v) % 1) < 1e-9 ? sig(v) : '') } },
        y: { min: 0, title: axisTitle('share of examples (%)') } }) }),
    clip: make(canvases.clip, { type: 'line',
      data: { datasets: [line('clipped', COLOR.clip, { point: 'rectRot', unit: '%' })] },
      options: options({ x: epochAxis, y: { min: 0, max: 100, title: axisTitle('gradients clipped (%)') } }) }),
    privacy: make(canvases.privacy, { type: 'line',
      data: { datasets: [line('ε planned', COLOR.planned, { dash: [5, 4], points: false }),
        line('ε spent', COLOR.spent), line('target ε', COLOR.budget, { dash: [10, 5], points: false })] },
      options: options({ x: epochAxis, y: { min: 0, title: axisTitle('ε') } }) }),
    roc: make(canvases.roc, rocConfig(false)),
    roclog: make(canvases.roclog, rocConfig(true)),
  };
  charts.overlayCache = new Map();
  return charts;
}

function rocConfig(log) {
  const x = log ? { type: 'logarithmic', min: LOG_FPR_MIN, max: 1, title: axisTitle('false positive rate (log scale)'),
    ticks: { callback: (v) => (Math.abs(Math.log10(v) % 1) < 1e-9 ? sig(v) : '') } }
    : { type: 'linear', min: 0, max: 1, title: axisTitle('false positive rate') };
  const config = { type: 'line',
    data: { datasets: [line('attack', COLOR.spent, { points: false }),
      line('(ε, δ)-DP allows at most', COLOR.budget, { dash: [6, 4], points: false, fill: 'origin' }),
      line('current settings allow at most', COLOR.planned, { dash: [2, 3], points: false }),
      line('chance (TPR = FPR)', '#8a8a8a', { dash: [3, 3], points: false })] },
    options: options({ x, y: log ? { ...x, title: axisTitle('true positive rate (log scale)') }
      : { min: 0, max: 1, title: axisTitle('true positive rate') } }) };
  config.options.plugins.emptyState.text = 'The audit of a real run appears here';
  return config;
}

function drawAudit(charts, view) {
  const { run } = view;
  const m = run?.summary?.audit?.membership;
  const epsilon = run?.params.private ? run.summary?.final_epsilon : null;
  const planned = view.planned;
  for (const [name, log] of [['roc', false], ['roclog', true]]) {
    const chart = charts[name];
    const chance = m ? regionFprs(40).filter((v) => !log || v > 0).map((v) => ({ x: v, y: v })).reverse() : [];
    setData(chart, [rocPoints(m?.roc, { log }), m ? dpRegion(epsilon, run.summary?.delta, { log }) : [],
      planned ? dpRegion(planned.epsilon, planned.delta, { log }) : [], chance]);
    const [attack, region, current] = chart.data.datasets;
    attack.label = m ? `${attackName(m.attack)} attack, AUC ${sig(m.auc, 3)}` : 'attack';
    region.label = m && epsilon !== null && epsilon !== undefined
      ? `ε ${formatEpsilon(epsilon)} allows at most (this run)` : 'this run has no ε: no bound';
    current.label = planned ? `ε ${formatEpsilon(planned.epsilon)} allows at most (current settings)`
      : 'current settings: non-private, no bound';
    chart.$table = auditTable(run);
  }
}

/** Overlay datasets of the selected history runs, made once per (chart, run). */
function overlays(charts, name, view, key, scale) {
  return view.overlays.map((entry, i) => {
    const id = `${name}:${entry.id}:${i}`; // the style follows the position in the selection
    if (!charts.overlayCache.has(id)) {
      const style = OVERLAY[i % OVERLAY.length];
      const what = entry.private ? `σ ${sig(entry.params.noise_multiplier)}, C ${sig(entry.params.max_grad_norm)}` : 'non-private';
      const ds = line(`run ${entry.number}: ${what}${entry.mode === 'simulate' ? ', simulated' : ''}`, style.color,
        { dash: style.dash, point: style.point, unit: scale === 100 ? '%' : '' });
      ds.data = fromSeries(entry.series, key, scale);
      charts.overlayCache.set(id, ds);
    }
    return charts.overlayCache.get(id);
  });
}

function setData(chart, data, extra = []) {
  data.forEach((points, i) => { chart.data.datasets[i].data = points; });
  chart.data.datasets.length = data.length;
  chart.data.datasets.push(...extra);
}

function markSimulated(chart, simulated) {
  chart.options.plugins.subtitle.display = simulated;
}

/**
 * Draw the page's view into every chart.
 * @param view {{run: object|null, overlays: object[], planned: object|null, target: number|null, epochs: number,
 *   words: object}} planned: the privacy report of the current settings; epochs: the length of the epoch axes;
 *   words: format.wordsOf the spec, to name epsilon's assumptions.
 */
export function drawCharts(charts, view) {
  const { run } = view;
  const epochs = run?.epochs ?? [];
  const simulated = run?.mode === 'simulate';
  const sim = simulated ? ' (simulated)' : '';
  const axisEnd = Math.max(view.epochs, ...view.overlays.map((e) => e.series.epoch.length));

  const { progress, steps, classes, histogram, clip, privacy } = charts;
  setData(progress, [perEpoch(epochs, 'test_accuracy', 100), perEpoch(epochs, 'test_loss')],
    overlays(charts, 'progress', view, 'test_accuracy', 100));
  progress.data.datasets[0].label = `test accuracy${sim}`;
  progress.data.datasets[1].label = `test loss${sim}`;

  setData(steps, [stepLoss(run?.steps ?? [])]);
  steps.data.datasets[0].label = `training loss per step${sim}`;

  const last = epochs[epochs.length - 1];
  setData(classes, [classBars(last)]);
  classes.data.datasets[0].label = `test accuracy per digit${last ? `, epoch ${last.epoch}` : ''}${sim}`;
  classes.options.plugins.emptyState.text = simulated ? 'Simulated runs do not predict per-digit accuracy'
    : 'Press Run to draw this chart';

  const outline = histogramOutline(last?.grad_norm_histogram);
  setData(histogram, [outline]);
  histogram.data.datasets[0].label = `share of examples${sim}`;
  const c = run?.params.max_grad_norm ?? null;
  histogram.options.plugins.verticalLine.value = outline.length ? c : null;
  histogram.options.plugins.verticalLine.label = `C = ${sig(c)}`;
  histogram.options.scales.x.min = outline.length ? Math.min(outline[0].x, c / 2) : undefined;
  histogram.options.scales.x.max = outline.length ? Math.max(outline[outline.length - 1].x, c * 2) : undefined;
  histogram.$epoch = last?.epoch;

  setData(clip, [perEpoch(epochs, 'clip_fraction', 100)], overlays(charts, 'clip', view, 'clip_fraction', 100));
  clip.data.datasets[0].label = `clipped${sim}`;

  setData(privacy, [plannedEpsilon(view.planned), perEpoch(epochs, 'epsilon'),
    view.target ? budgetLine(view.target, axisEnd) : []], overlays(charts, 'privacy', view, 'epsilon', 1));
  privacy.data.datasets[1].label = `ε spent${sim}`;
  privacy.data.datasets[0].label = view.planned ? `ε planned (${assumptions(view.planned, view.words)})` : 'ε planned';
  const basis = run?.params.private ? runBasis(run.params, view.words) : view.planned;
  privacy.options.scales.y.title.text = basis ? `ε (${assumptions(basis, view.words)})` : 'ε';
  privacy.data.datasets[2].label = view.target ? `target ε = ${sig(view.target)}` : 'target ε';

  for (const chart of [progress, clip, privacy]) chart.options.scales.x.max = axisEnd;
  drawAudit(charts, view);
  for (const name of ['progress', 'steps', 'classes', 'histogram', 'clip', 'privacy', 'roc', 'roclog']) {
    markSimulated(charts[name], simulated);
    charts[name].update('none');
  }
}

/** Forget cached overlay datasets (the history changed). */
export function clearOverlays(charts) {
  charts.overlayCache.clear();
}

const CAPTIONS = { progress: 'Test accuracy and loss per epoch', steps: 'Training loss per step',
  classes: 'Test accuracy per digit in the latest epoch',
  histogram: 'Per-example gradient norms in the latest epoch', clip: 'Share of gradients clipped per epoch',
  privacy: 'Epsilon per epoch' };

/** A chart's data as a table: {caption, columns, rows} with one row per x value, one column per line. */
export function tableOf(charts, name) {
  const chart = charts[name];
  if (chart.$table) return chart.$table; // the audit: one row per attack, not thousands of ROC points
  const datasets = chart.data.datasets.filter((d) => d.data.length);
  if (name === 'histogram') {
    const pts = datasets[0]?.data ?? [];
    return { caption: `${CAPTIONS.histogram}${chart.$epoch ? ` (epoch ${chart.$epoch})` : ''}`,
      columns: ['gradient norm', 'share of examples (%)'],
      rows: pts.slice(0, -1).map((p, i) => [`${sig(p.x)} to ${sig(pts[i + 1].x)}`, sig(p.y, 3)]) };
  }
  const xs = [...new Set(datasets.flatMap((d) => d.data.map((p) => p.x)))].sort((a, b) => a - b);
  const lookup = datasets.map((d) => new Map(d.data.map((p) => [p.x, p.y])));
  const format = name === 'privacy' ? formatEpsilon : (y) => sig(y, 4);
  return { caption: CAPTIONS[name], columns: [chart.options.scales.x.title.text, ...datasets.map((d) => d.label)],
    rows: xs.map((x) => [String(x), ...lookup.map((m) => (m.has(x) ? format(m.get(x)) : ''))]) };
}

/**
 * The chart as a PNG Blob at twice the screen's pixels (white background, "simulated" subtitle included): drawn once
 * at devicePixelRatio 2 (or the screen's, if higher), exported, and put back.
 */
export async function chartPNG(charts, name) {
  const chart = charts[name];
  const screen = chart.options.devicePixelRatio;
  const ratio = Math.max(2, window.devicePixelRatio || 1);
  chart.options.devicePixelRatio = ratio;
  chart.resize();
  try {
    return await new Promise((resolve) => { chart.canvas.toBlob(resolve, 'image/png'); });
  } finally {
    chart.options.devicePixelRatio = screen;
    chart.resize();
  }
}
