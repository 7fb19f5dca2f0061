// pages/telemetry.js - how each version of a model behaves in the field: p99
// latency and error rate over time, one pair of lines per version, drawn with
// uPlot from GET /api/v1/telemetry (#/telemetry/MODEL), and the same windows
// summed up per version in a table (the chart's numbers, readable without it).

import {seg} from '../api.js';
import {h, num, percent, replaceLive, rfc3339, table} from '../dom.js';

export const id = 'telemetry';
export const title = 'Telemetry';

const RANGES = [ // [label, seconds]
  ['last 5 minutes', 300],
  ['last 15 minutes', 900],
  ['last hour', 3600],
  ['last 6 hours', 21600],
  ['last 24 hours', 86400],
];
const MAX_POINTS = 300; // buckets across a range, at most
const COLOURS = ['#0b5cad', '#c2410c', '#15803d', '#7c3aed', '#b91c1c', '#0e7490'];
const CHART_HEIGHT = 320;

/**
 * Sums windows into time buckets per version. Returns {versions, xs, p99,
 * errorRate}: xs the bucket starts (Unix seconds) that have data, and per
 * version arrays aligned with xs (null where that version has no window).
 * p99 is the largest window p99 in the bucket (a conservative bound, as the
 * rollout gates take it); the error rate is Σerrors / Σinferences.
 */
export function aggregate(windows, bucketS) {
  const byVersion = new Map(); // version -> Map(bucket -> {inf, err, p99})
  const buckets = new Set();
  for (const w of windows) {
    if (w.version === null || w.version === undefined) continue;
    const t = Math.floor(Date.parse(w.window_start) / 1000 / bucketS) * bucketS;
    if (!Number.isFinite(t)) continue;
    buckets.add(t);
    if (!byVersion.has(w.version)) byVersion.set(w.version, new Map());
    const b = byVersion.get(w.version);
    const cur = b.get(t) || {inf: 0, err: 0, p99: null};
    cur.inf += w.inferences;
    cur.err += w.errors;
    if (w.latency_ms && w.inferences > 0) cur.p99 = Math.max(cur.p99 ?? 0, w.latency_ms.p99);
    b.set(t, cur);
  }
  const xs = [...buckets].sort((a, b) => a - b);
  const versions = [...byVersion.keys()].sort((a, b) => a - b);
  const p99 = {};
  const errorRate = {};
  for (const v of versions) {
    const b = byVersion.get(v);
    p99[v] = xs.map((t) => (b.has(t) ? b.get(t).p99 : null));
    errorRate[v] = xs.map((t) => (b.has(t) && b.get(t).inf > 0 ? b.get(t).err / b.get(t).inf : null));
  }
  return {versions, xs, p99, errorRate};
}

/**
 * The bucket for a range: as fine as the devices' windows (their most common
 * length; one window per device per bucket), but no more than MAX_POINTS
 * buckets across the range.
 */
export function bucketSeconds(windows, rangeS) {
  const lengths = new Map();
  for (const w of windows) lengths.set(Math.round(w.window_s), (lengths.get(Math.round(w.window_s)) || 0) + 1);
  let common = 1;
  let most = 0;
  for (const [len, n] of lengths) if (n > most && len > 0) [common, most] = [len, n];
  return Math.max(common, Math.ceil(rangeS / MAX_POINTS));
}

/** Per version: windows, devices, inferences, errors, p99 max, accuracy. */
function summarise(windows) {
  const out = new Map();
  for (const w of windows) {
    if (w.version === null || w.version === undefined) continue;
    const s = out.get(w.version) || {windows: 0, devices: new Set(), inf: 0, err: 0, p50: [], p99: null,
      fb: 0, correct: 0};
    s.windows++;
    s.devices.add(w.device);
    s.inf += w.inferences;
    s.err += w.errors;
    if (w.latency_ms && w.inferences > 0) {
      s.p50.push(w.latency_ms.p50);
      s.p99 = Math.max(s.p99 ?? 0, w.latency_ms.p99);
    }
    if (w.accuracy !== null && w.feedback > 0) {
      s.fb += w.feedback;
      s.correct += w.accuracy * w.feedback;
    }
    out.set(w.version, s);
  }
  return [...out.entries()].sort((a, b) => a[0] - b[0]);
}

function median(xs) {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function mount(ctx, params, container) {
  const modelSel = h('select', {id: 'tele-model'});
  const rangeSel = h('select', {id: 'tele-range'},
    RANGES.map(([label], i) => h('option', {value: i, selected: i === 1}, label)));
  const figure = h('figure', {class: 'chart card', id: 'telemetry-chart',
    'aria-label': 'p99 latency and error rate per version over time'});
  const caption = h('figcaption', {class: 'muted'},
    'Solid: p99 latency (ms, left axis). Dashed: error rate (%, right axis). One colour per version.');
  const plotBox = h('div', {class: 'plot'});
  figure.append(plotBox, caption);
  const summary = h('div', {id: 'telemetry-summary'});
  container.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Telemetry')),
    h('form', {class: 'filters', on: {submit: (e) => e.preventDefault()}},
      h('label', {}, 'Model ', modelSel), h('label', {}, 'Range ', rangeSel)),
    figure,
    h('h2', {}, 'Per version'),
    summary);

  let uPlot = null;     // the uPlot class, loaded on first use
  let chart = null;     // the uPlot instance on screen
  let chartShape = '';  // its series, to know when it must be rebuilt
  let wanted = params[0] || '';
  const resize = new ResizeObserver(() => {
    if (chart) chart.setSize({width: plotWidth(), height: CHART_HEIGHT});
  });
  resize.observe(figure);

  modelSel.addEventListener('change', () => {
    wanted = modelSel.value;
    history.replaceState(null, '', `#/telemetry/${seg(wanted)}`);
    ctx.refresh();
  });
  rangeSel.addEventListener('change', () => ctx.refresh());

  function plotWidth() {
    return Math.max(280, figure.clientWidth - 32);
  }

  async function loadUPlot() {
    if (!uPlot) uPlot = (await import('/vendor/uplot/uPlot.esm.js')).default;
    return uPlot;
  }

  function draw(agg, bucketS) {
    const series = [{label: 'time'}];
    const data = [agg.xs];
    agg.versions.forEach((v, i) => {
      const colour = COLOURS[i % COLOURS.length];
      series.push({label: `p99 v${v}`, scale: 'ms', stroke: colour, width: 2,
        value: (u, x) => (x === null ? '—' : `${x.toFixed(2)} ms`)});
      data.push(agg.p99[v]);
      series.push({label: `errors v${v}`, scale: 'pct', stroke: colour, width: 2, dash: [6, 4],
        value: (u, x) => (x === null ? '—' : `${x.toFixed(2)} %`)});
      data.push(agg.errorRate[v].map((x) => (x === null ? null : x * 100)));
    });
    const shape = JSON.stringify(series.map((s) => s.label));
    if (!chart || shape !== chartShape) {
      if (chart) chart.destroy();
      plotBox.replaceChildren();
      chart = new uPlot({
        width: plotWidth(),
        height: CHART_HEIGHT,
        series,
        scales: {x: {time: true}, ms: {auto: true}, pct: {auto: true, range: (u, min, max) => [0, Math.max(1, max)]}},
        axes: [
          {},
          {scale: 'ms', label: 'p99 latency (ms)'},
          {scale: 'pct', side: 1, label: 'error rate (%)', grid: {show: false}},
        ],
        legend: {live: true},
        cursor: {focus: {prox: 16}},
      }, data, plotBox);
      chartShape = shape;
    } else {
      chart.setData(data);
    }
    // What the chart holds, for people reading the DOM and for the tests.
    const points = {};
    series.slice(1).forEach((s, i) => {
      points[s.label] = data[i + 1].filter((x) => x !== null).length;
    });
    figure.dataset.points = JSON.stringify(points);
    figure.dataset.buckets = String(agg.xs.length);
    figure.dataset.bucketSeconds = String(bucketS);
  }

  return {
    async refresh() {
      const models = (await ctx.api.get('/api/v1/models')).models.map((m) => m.name);
      const have = [...modelSel.options].map((o) => o.value);
      if (JSON.stringify(have) !== JSON.stringify(models)) {
        modelSel.replaceChildren(...models.map((m) => h('option', {value: m}, m)));
      }
      if (!models.length) {
        plotBox.replaceChildren(h('p', {class: 'muted'}, 'No model is registered yet.'));
        return;
      }
      if (!models.includes(wanted)) wanted = models[0];
      modelSel.value = wanted;
      const [, rangeS] = RANGES[Number(rangeSel.value)];
      const doc = await ctx.api.get(
        `/api/v1/telemetry?model=${seg(wanted)}&since=${rfc3339(Date.now() - rangeS * 1000)}&limit=5000`);
      const bucketS = bucketSeconds(doc.windows, rangeS);
      const agg = aggregate(doc.windows, bucketS);
      figure.dataset.windows = String(doc.windows.length);
      try {
        await loadUPlot();
        draw(agg, bucketS);
      } catch (e) {
        plotBox.replaceChildren(h('p', {class: 'muted'},
          'The chart library did not load (is node_modules/uplot there? run npm ci).'));
        throw e;
      }
      replaceLive(summary, JSON.stringify(doc.windows), () =>
        table('Telemetry per version', ['Version', 'Windows', 'Devices', 'Inferences', 'Errors',
          'Error rate', 'p50 ms (median)', 'p99 ms (max)', 'Accuracy'],
        summarise(doc.windows).map(([v, s]) => [
          `${wanted}@${v}`, String(s.windows), String(s.devices.size), String(s.inf), String(s.err),
          s.inf ? percent(s.err / s.inf, 2) : '—', num(median(s.p50), 3), num(s.p99, 3),
          s.fb ? percent(s.correct / s.fb, 1) : '—',
        ]), {id: 'telemetry-table'}));
    },
    unmount() {
      resize.disconnect();
      if (chart) chart.destroy();
    },
  };
}
