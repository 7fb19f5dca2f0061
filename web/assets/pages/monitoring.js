// pages/monitoring.js - how a model's versions meet real data, ring by ring
// (#/monitoring/MODEL): drift, accuracy, error rate and p99 latency over time
// from the per-minute rollups (GET /api/v1/telemetry/rollups), one line per
// version x ring, with the model's alerts drawn as markers and its trigger
// thresholds as dashed lines; the alerts list; the trigger rules, which an
// operator may create and delete here (docs/monitoring.md).

import {seg} from '../api.js';
import {COLOURS, LineChart, align, chartFigure} from '../chart.js';
import {badge, h, num, replaceLive, rfc3339, table, time} from '../dom.js';

export const id = 'monitoring';
export const title = 'Monitoring';

const RANGES = [ // [label, seconds]
  ['last 15 minutes', 900],
  ['last hour', 3600],
  ['last 6 hours', 21600],
  ['last 24 hours', 86400],
  ['last 7 days', 604800],
];
// The charts, in order: [metric, title, y axis, value format, fixed y range].
const CHARTS = [
  ['drift', 'Drift', 'PSI (max over features)', (v) => v.toFixed(3), null],
  ['accuracy', 'Accuracy', 'accuracy (%)', (v) => `${v.toFixed(1)} %`, [0, 100]],
  ['error_rate', 'Error rate', 'error rate (%)', (v) => `${v.toFixed(2)} %`, null],
  ['latency_p99', 'p99 latency', 'p99 latency (ms)', (v) => `${v.toFixed(2)} ms`, null],
];
// Shares are drawn as percentages.
const PERCENT = new Set(['accuracy', 'error_rate']);
const METRICS = ['drift', 'drift_output', 'accuracy', 'error_rate', 'latency_p99', 'confidence',
  'shadow_agreement', 'shadow_accuracy'];
const AGGREGATIONS = ['mean', 'max', 'min', 'median'];
const ACTIONS = ['none', 'retrain', 'pause_rollout', 'rollback'];
// Rollups change once a minute: the charts are fetched at most this often
// (the alerts and triggers at every refresh of the app).
const CHART_REFRESH_MS = 10000;

/** The list in an answer that is either {key: [...]} or a bare array. */
function listOf(doc, key) {
  if (Array.isArray(doc)) return doc;
  return doc && Array.isArray(doc[key]) ? doc[key] : [];
}

/** A rollup's or alert's value as the chart draws it. */
function scaled(metric, v) {
  if (v === null || v === undefined) return null;
  return PERCENT.has(metric) ? v * 100 : v;
}

/** "drift mean above 0.25 over 300 s (min 1 device)" */
function ruleText(t) {
  return `${t.metric} ${t.aggregation} ${t.op} ${t.threshold} over ${t.window_s} s` +
    ` (min ${t.min_devices} device${t.min_devices === 1 ? '' : 's'})`;
}

/**
 * Turns rollup answers into chart data: one series per version x ring,
 * coloured by version, dashed for every ring after the first.
 */
export function rollupSeries(metric, doc) {
  const series = listOf(doc, 'series').slice()
    .sort((a, b) => a.version - b.version || String(a.ring).localeCompare(String(b.ring)));
  const versions = [...new Set(series.map((s) => s.version))];
  const rings = [...new Set(series.map((s) => s.ring || 'any ring'))];
  const {xs, ys} = align(series.map((s) => s.points.map(([ms, v]) => [Math.floor(ms / 1000), scaled(metric, v)])));
  return {
    xs,
    series: series.map((s, i) => ({
      label: `v${s.version} ${s.ring || 'any ring'}`,
      colour: COLOURS[versions.indexOf(s.version) % COLOURS.length],
      dash: rings.indexOf(s.ring || 'any ring') ? [6, 4] : undefined,
      values: ys[i],
    })),
  };
}

export function mount(ctx, params, container) {
  let wanted = params[0] || '';
  const modelSel = h('select', {id: 'mon-model'});
  const ringSel = h('select', {id: 'mon-ring'}, h('option', {value: ''}, 'every ring'));
  const rangeSel = h('select', {id: 'mon-range'},
    RANGES.map(([label], i) => h('option', {value: i, selected: i === 1}, label)));
  const charts = CHARTS.map(([metric, chartTitle, axis, format, yRange]) => {
    const figure = chartFigure(`chart-${metric}`, chartTitle,
      `${axis}, per minute; one colour per version, dashed for a second ring; red marks: alerts; dashed red lines: trigger thresholds.`);
    figure.dataset.metric = metric;
    return {metric, figure, chart: new LineChart(figure, {label: axis, height: 220, format, yRange})};
  });
  const alertsBox = h('div', {id: 'alerts-table'});
  const triggersBox = h('div', {id: 'triggers-table'});
  const formHolder = h('div', {id: 'trigger-form-holder'});
  const newTrigger = ctx.canOperate
    ? h('button', {type: 'button', class: 'primary', id: 'new-trigger', 'aria-expanded': 'false',
      'aria-controls': 'trigger-form-holder', dataset: {action: 'new-trigger'}}, 'New trigger')
    : null;

  container.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Monitoring')),
    h('form', {class: 'filters', on: {submit: (e) => e.preventDefault()}},
      h('label', {}, 'Model ', modelSel), h('label', {}, 'Ring ', ringSel),
      h('label', {}, 'Range ', rangeSel)),
    h('div', {class: 'chart-grid'}, charts.map((c) => c.figure)),
    h('h2', {id: 'alerts-heading'}, 'Alerts'),
    alertsBox,
    h('div', {class: 'section-head'}, h('h2', {id: 'triggers-heading'}, 'Triggers'), newTrigger),
    formHolder,
    triggersBox);

  let lastCharts = 0;   // when the charts were last fetched (ms)
  let alerts = [];
  let triggers = [];
  let rollups = null;   // metric -> rollup answer

  function filtersChanged() {
    lastCharts = 0;
    ctx.refresh();
  }
  modelSel.addEventListener('change', () => {
    wanted = modelSel.value;
    history.replaceState(null, '', `#/monitoring/${seg(wanted)}`);
    filtersChanged();
  });
  ringSel.addEventListener('change', filtersChanged);
  rangeSel.addEventListener('change', filtersChanged);

  if (newTrigger) {
    newTrigger.addEventListener('click', () => {
      const open = !formHolder.firstChild;
      formHolder.replaceChildren(open ? triggerForm(ctx, () => wanted, ringSel, () => {
        formHolder.replaceChildren();
        newTrigger.setAttribute('aria-expanded', 'false');
        newTrigger.focus();
      }) : '');
      newTrigger.setAttribute('aria-expanded', String(open));
      if (open) formHolder.querySelector('select, input').focus();
    });
  }

  async function deleteTrigger(t) {
    if (!window.confirm(`Delete trigger #${t.id} (${ruleText(t)})?`)) return;
    const done = await ctx.act(() => ctx.api.del(`/api/v1/triggers/${t.id}`).then(() => true));
    if (done) newTrigger && newTrigger.focus();
  }

  function inRing(x) {
    return !ringSel.value || !x.ring || x.ring === ringSel.value;
  }

  async function drawCharts() {
    const range = [Math.floor(lastCharts / 1000) - RANGES[Number(rangeSel.value)][1], Math.ceil(Date.now() / 1000)];
    for (const c of charts) {
      const data = rollupSeries(c.metric, rollups[c.metric]);
      const markers = alerts.filter((a) => a.metric === c.metric && inRing(a) && a.fired_at)
        .map((a) => ({x: Date.parse(a.fired_at) / 1000, label: `alert #${a.id}`}));
      const lines = triggers.filter((t) => t.metric === c.metric && t.enabled !== false && inRing(t))
        .map((t) => ({y: scaled(c.metric, t.threshold), label: `trigger #${t.id}`}));
      c.figure.dataset.series = String(data.series.length);
      c.figure.classList.toggle('empty', !data.xs.length);
      await c.chart.draw({...data, markers, lines, xMin: range[0], xMax: range[1]});
    }
  }

  function drawAlerts() {
    replaceLive(alertsBox, JSON.stringify(alerts), () =>
      table('Alerts', ['#', 'Fired', 'Version', 'Ring', 'Metric', 'Value', 'Rule', 'Devices', 'State',
        'Resolved', 'Action', 'Result'],
      alerts.map((a) => [
        String(a.id), time(a.fired_at), `${a.model}@${a.version}`, a.ring || 'any',
        a.metric, num(a.value, 3), `${a.op} ${a.threshold}` + (a.trigger_id ? ` (trigger #${a.trigger_id})` : ''),
        String(a.devices ?? '—'), badge(a.state), time(a.resolved_at), a.action || 'none',
        a.action_result || '—',
      ]), {id: 'alerts', dataset: {count: alerts.length}}));
  }

  function drawTriggers() {
    const headers = ['#', 'Ring', 'Rule', 'Cooldown', 'Action', 'Enabled', 'Created'];
    if (ctx.canOperate) headers.push('');
    replaceLive(triggersBox, JSON.stringify([triggers, ctx.canOperate]), () =>
      table('Triggers', headers, triggers.map((t) => {
        const cells = [String(t.id), t.ring || 'any', ruleText(t), `${t.cooldown_s} s`, t.action,
          t.enabled === false ? 'no' : 'yes', time(t.created_at)];
        if (ctx.canOperate) {
          cells.push(h('button', {type: 'button', class: 'danger small', id: `trigger-delete-${t.id}`,
            dataset: {action: 'delete-trigger', focusKey: `trigger-delete-${t.id}`},
            'aria-label': `Delete trigger #${t.id}`, on: {click: () => deleteTrigger(t)}}, 'Delete'));
        }
        return cells;
      }), {id: 'triggers', dataset: {count: triggers.length}}));
  }

  return {
    async refresh() {
      const [modelsDoc, ringsDoc] = await Promise.all([ctx.api.get('/api/v1/models'),
        ctx.api.get('/api/v1/rings')]);
      const models = modelsDoc.models.map((m) => m.name);
      if (JSON.stringify([...modelSel.options].map((o) => o.value)) !== JSON.stringify(models)) {
        modelSel.replaceChildren(...models.map((m) => h('option', {value: m}, m)));
      }
      const rings = ringsDoc.rings.map((r) => r.name);
      if (JSON.stringify([...ringSel.options].map((o) => o.value).slice(1)) !== JSON.stringify(rings)) {
        const keep = ringSel.value;
        ringSel.replaceChildren(h('option', {value: ''}, 'every ring'),
          ...rings.map((r) => h('option', {value: r}, r)));
        ringSel.value = rings.includes(keep) ? keep : '';
      }
      if (!models.length) {
        alertsBox.replaceChildren(h('p', {class: 'muted'}, 'No model is registered yet.'));
        return;
      }
      if (!models.includes(wanted)) wanted = models[0];
      modelSel.value = wanted;
      const m = seg(wanted);
      const [alertsDoc, triggersDoc] = await Promise.all([
        ctx.api.get(`/api/v1/alerts?model=${m}&limit=100`),
        ctx.api.get(`/api/v1/triggers?model=${m}`),
      ]);
      alerts = listOf(alertsDoc, 'alerts');
      triggers = listOf(triggersDoc, 'triggers');
      drawAlerts();
      drawTriggers();
      const now = Date.now();
      if (!rollups || now - lastCharts >= CHART_REFRESH_MS) {
        // Whole minutes, so that the URL (and any ETag) holds for a minute.
        const [, rangeS] = RANGES[Number(rangeSel.value)];
        const since = rfc3339(Math.floor((now - rangeS * 1000) / 60000) * 60000);
        const ring = ringSel.value ? `&ring=${seg(ringSel.value)}` : '';
        const docs = await Promise.all(CHARTS.map(([metric]) => ctx.api.get(
          `/api/v1/telemetry/rollups?model=${m}&metric=${metric}&since=${since}${ring}`)));
        rollups = Object.fromEntries(CHARTS.map(([metric], i) => [metric, docs[i]]));
        lastCharts = now;
      }
      try {
        await drawCharts();
      } catch (e) {
        for (const c of charts) {
          c.figure.querySelector('.plot').replaceChildren(h('p', {class: 'muted'},
            'The chart library did not load (is node_modules/uplot there? run npm ci).'));
        }
        throw e;
      }
    },
    unmount() {
      for (const c of charts) c.chart.destroy();
    },
  };
}

/** The form that creates a trigger rule for the model on screen. */
function triggerForm(ctx, model, ringSel, close) {
  const select = (idName, values, chosen) => h('select', {id: idName, name: idName},
    values.map((v) => h('option', {value: v, selected: v === chosen}, v)));
  const number = (idName, value, attrs) => h('input', {id: idName, name: idName, type: 'number',
    value, required: true, ...attrs});
  const metric = select('tr-metric', METRICS, 'drift');
  const aggregation = select('tr-aggregation', AGGREGATIONS, 'mean');
  const op = select('tr-op', ['above', 'below'], 'above');
  const threshold = number('tr-threshold', '0.25', {step: 'any'});
  const windowS = number('tr-window', '300', {min: 1, step: 1});
  const minDevices = number('tr-min-devices', '1', {min: 1, step: 1});
  const cooldown = number('tr-cooldown', '3600', {min: 0, step: 1});
  const ring = h('select', {id: 'tr-ring', name: 'tr-ring'}, h('option', {value: ''}, 'any ring'),
    [...ringSel.options].slice(1).map((o) => h('option', {value: o.value}, o.value)));
  const action = select('tr-action', ACTIONS, 'none');
  const field = (label, input, help) => h('div', {class: 'field'},
    h('label', {for: input.id}, label), input, help ? h('small', {class: 'muted'}, help) : null);
  const form = h('form', {class: 'card trigger-form', id: 'trigger-form', 'aria-label': 'New trigger'},
    h('h2', {}, `New trigger for ${model()}`),
    h('div', {class: 'grid'},
      field('Metric', metric),
      field('Aggregation across devices', aggregation),
      field('Comparison', op),
      field('Threshold', threshold, 'shares (accuracy, error rate) as 0..1; latency in ms; PSI'),
      field('Window, seconds', windowS),
      field('Minimum devices', minDevices),
      field('Cooldown, seconds', cooldown, 'before the rule may fire again'),
      field('Ring', ring),
      field('Action', action)),
    h('div', {class: 'buttons'},
      h('button', {type: 'submit', class: 'primary', id: 'tr-create', dataset: {action: 'create-trigger'}},
        'Create trigger'),
      h('button', {type: 'button', on: {click: close}}, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      model: model(),
      metric: metric.value,
      aggregation: aggregation.value,
      op: op.value,
      threshold: Number(threshold.value),
      window_s: Number(windowS.value),
      min_devices: Number(minDevices.value),
      cooldown_s: Number(cooldown.value),
      action: action.value,
    };
    if (ring.value) body.ring = ring.value;
    const created = await ctx.act(() => ctx.api.post('/api/v1/triggers', body));
    if (created) close();
  });
  return form;
}
