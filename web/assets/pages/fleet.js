// pages/fleet.js - the fleet: every device with its status, ring, the model
// version it runs and that deployment's state, filtered and searched in the
// page; and one device in detail (#/fleet/ID): its facts and slots, charts
// of its telemetry (latency, drift, accuracy), its history and its latest
// windows.

import {seg} from '../api.js';
import {LineChart, align, chartFigure} from '../chart.js';
import {ago, badge, facts, h, link, num, onlineBadge, replaceLive, rfc3339, table, time} from '../dom.js';

export const id = 'fleet';
export const title = 'Fleet';

const STATES = ['pending', 'notified', 'downloading', 'verifying', 'active', 'committed',
  'failed', 'rolled_back', 'cancelled'];

export function mount(ctx, params, container) {
  return params.length ? mountDevice(ctx, params[0], container) : mountList(ctx, container);
}

/** "thyroid@2", or an em dash when the slot is empty. */
export function slotLabel(slot) {
  return slot ? `${slot.name}@${slot.version}` : '—';
}

function mountList(ctx, container) {
  let devices = [];
  const search = h('input', {type: 'search', id: 'fleet-search', placeholder: 'id, tag, model…',
    autocomplete: 'off'});
  const online = h('select', {id: 'fleet-online'},
    h('option', {value: ''}, 'all'), h('option', {value: 'online'}, 'online'),
    h('option', {value: 'offline'}, 'offline'));
  const ring = h('select', {id: 'fleet-ring'}, h('option', {value: ''}, 'all'));
  const stateSel = h('select', {id: 'fleet-state'}, h('option', {value: ''}, 'all'),
    STATES.map((s) => h('option', {value: s}, s)));
  const summary = h('p', {class: 'summary', id: 'fleet-summary'});
  const live = h('div', {id: 'fleet-table'});

  container.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Fleet'), summary),
    h('form', {class: 'filters', role: 'search', on: {submit: (e) => e.preventDefault()}},
      h('label', {}, 'Search ', search),
      h('label', {}, 'Status ', online),
      h('label', {}, 'Ring ', ring),
      h('label', {}, 'Deployment ', stateSel)),
    live);

  for (const input of [search, online, ring, stateSel]) input.addEventListener('input', draw);

  function matches(d) {
    const q = search.value.trim().toLowerCase();
    const prod = d.slots && d.slots.production;
    if (online.value && (online.value === 'online') !== d.online) return false;
    if (ring.value && d.ring !== ring.value) return false;
    if (stateSel.value && (!prod || prod.state !== stateSel.value)) return false;
    if (!q) return true;
    const hay = [d.id, d.ring, d.class || '', slotLabel(prod),
      ...Object.entries(d.tags || {}).map(([k, v]) => `${k}=${v}`)].join(' ').toLowerCase();
    return hay.includes(q);
  }

  function draw() {
    const shown = devices.filter(matches);
    const up = devices.filter((d) => d.online).length;
    summary.textContent = `${devices.length} device${devices.length === 1 ? '' : 's'}, ` +
      `${up} online` + (shown.length !== devices.length ? `, ${shown.length} shown` : '');
    const now = Date.now();
    replaceLive(live, JSON.stringify([shown, search.value, Math.floor(now / 10000)]), () =>
      table('Devices', ['Device', 'Status', 'Ring', 'Class', 'Model', 'Deployment', 'Last seen', 'Tags'],
        shown.map((d) => {
          const prod = d.slots && d.slots.production;
          return [
            link(`#/fleet/${seg(d.id)}`, d.id, `device-${d.id}`),
            onlineBadge(d.online),
            d.ring,
            d.class || '—',
            prod ? [link(`#/models/${seg(prod.name)}/${prod.version}`, slotLabel(prod)),
              d.slots.shadow ? h('span', {class: 'muted'}, ` + shadow ${slotLabel(d.slots.shadow)}`) : null] : '—',
            prod ? h('span', {title: prod.reason || ''}, badge(prod.state)) : '—',
            h('span', {title: d.last_seen || ''}, ago(d.last_seen, now)),
            tags(d.tags),
          ];
        }), {id: 'devices', dataset: {count: shown.length}}));
  }

  function fillRings() {
    const names = [...new Set(devices.map((d) => d.ring))].sort();
    const have = [...ring.options].map((o) => o.value).filter(Boolean);
    if (JSON.stringify(names) === JSON.stringify(have)) return;
    const keep = ring.value;
    ring.replaceChildren(h('option', {value: ''}, 'all'), ...names.map((n) => h('option', {value: n}, n)));
    ring.value = names.includes(keep) ? keep : '';
  }

  return {
    async refresh() {
      const doc = await ctx.api.get('/api/v1/devices');
      devices = doc.devices;
      fillRings();
      draw();
    },
  };
}

function tags(t) {
  const entries = Object.entries(t || {});
  if (!entries.length) return h('span', {class: 'muted'}, '—');
  return h('span', {class: 'tags'}, entries.map(([k, v]) => h('span', {class: 'tag'}, `${k}=${v}`)));
}

// The device page's charts: [id, title, y axis, format, series of a window].
const DEVICE_CHARTS = [
  ['latency', 'Latency', 'ms', (v) => `${v.toFixed(3)} ms`, [
    ['p50', (w) => w.latency_ms && w.inferences > 0 ? w.latency_ms.p50 : null],
    ['p99', (w) => w.latency_ms && w.inferences > 0 ? w.latency_ms.p99 : null]]],
  ['drift', 'Drift', 'PSI', (v) => v.toFixed(3), [
    ['inputs (max)', (w) => driftValue(w.drift)],
    ['output (max)', (w) => driftValue(w.drift_output)]]],
  ['accuracy', 'Accuracy', '%', (v) => `${v.toFixed(1)} %`, [
    ['accuracy', (w) => (w.accuracy === null || w.accuracy === undefined ? null : w.accuracy * 100)],
    ['confidence', (w) => (w.confidence === null || w.confidence === undefined ? null : w.confidence * 100)]]],
];
const DEVICE_RANGE_S = 900;     // the charts show the last 15 minutes
const HISTORY_REFRESH_MS = 10000; // the history's sources change slowly

/** A window's drift column: a number (the max PSI), an object with max, or null. */
function driftValue(d) {
  if (d === null || d === undefined) return null;
  if (typeof d === 'number') return d;
  return typeof d.max === 'number' ? d.max : null;
}

/** The assignment inside a signed envelope ({payload: base64 JSON,
 * signature}), or null. The page only reads it: the device checks the
 * signature. */
function assignmentOf(envelope) {
  if (!envelope || typeof envelope.payload !== 'string') return null;
  try {
    const bin = atob(envelope.payload);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    return null;
  }
}

/** Whether text names what as a whole word: "device:edge-1" is not in
 * "device:edge-10". Names are [A-Za-z0-9._-]. */
function mentions(text, what) {
  for (let i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
    if (!/[A-Za-z0-9._-]/.test(text.charAt(i + what.length))) return true;
  }
  return false;
}

/**
 * The device's history, newest first, from what the API keeps: the audit
 * log's changes that name the device or its ring (admins only), the rollouts
 * that went through its ring, its current assignment, the model versions
 * its telemetry reported in turn, and the slot states this tab saw change.
 * Each entry: {ts (ms), source, text}.
 */
export function deviceHistory({device, audit, rollouts, desired, windows, seen}) {
  const out = [];
  for (const e of audit || []) {
    const text = `${e.target || ''} ${e.detail || ''}`;
    const mine = [`/devices/${device.id}`, `device ${device.id}`, `device:${device.id}`]
      .some((what) => mentions(text, what)) || (device.ring && mentions(text, `-> ring ${device.ring}`));
    if (mine) {
      out.push({ts: Date.parse(e.ts), source: 'audit',
        text: `${e.actor}: ${e.action} ${e.outcome}${e.detail ? ` (${e.detail})` : ''}`});
    }
  }
  for (const r of rollouts || []) {
    const ring = r.rings.find((x) => x.name === device.ring);
    if (!ring || !ring.started_at) continue;
    const slot = r.slot || 'production';
    out.push({ts: Date.parse(ring.started_at), source: 'rollout', rollout: r.id,
      text: `rollout #${r.id} of ${r.model}@${r.version} (${slot}) reached ring ${ring.name}`});
    if (ring.finished_at) {
      out.push({ts: Date.parse(ring.finished_at), source: 'rollout', rollout: r.id,
        text: `rollout #${r.id}: ring ${ring.name} ${ring.state}${ring.reason ? ` (${ring.reason})` : ''}`});
    }
  }
  const a = assignmentOf(desired);
  if (a) {
    const slots = Object.entries(a.slots || {}).map(([name, s]) =>
      `${name} ${s.model}@${s.version}${s.rollout_id ? ` (rollout #${s.rollout_id})` : ''}`);
    out.push({ts: Date.parse(a.issued_at), source: 'assignment',
      text: `assignment seq ${a.seq}: ${slots.join(', ') || 'no model'}`});
  }
  // Telemetry comes newest first: walk it oldest first for the changes.
  let last = null;
  for (const w of (windows || []).slice().reverse()) {
    const now = w.model ? `${w.model}@${w.version}` : 'no model';
    if (now !== last) {
      out.push({ts: Date.parse(w.window_start), source: 'telemetry', text: `reports ${now}`});
      last = now;
    }
  }
  for (const s of seen || []) out.push({ts: s.ts, source: 'seen', text: s.text});
  return out.filter((e) => Number.isFinite(e.ts)).sort((a, b) => b.ts - a.ts);
}

function mountDevice(ctx, deviceId, container) {
  const head = h('div', {class: 'page-head'},
    h('h1', {}, 'Device ', h('span', {class: 'mono'}, deviceId)),
    link('#/fleet', '← all devices'));
  const detail = h('div', {id: 'device-detail'});
  const charts = DEVICE_CHARTS.map(([name, chartTitle, axis, format]) => {
    const figure = chartFigure(`device-chart-${name}`, chartTitle, `${axis}, one point per telemetry window, last 15 minutes`);
    return {name, figure, chart: new LineChart(figure, {label: axis, height: 200, format})};
  });
  const history = h('div', {id: 'device-history'});
  const windows = h('div', {id: 'device-telemetry'});
  container.append(head, detail,
    h('h2', {}, 'Telemetry'), h('div', {class: 'chart-grid'}, charts.map((c) => c.figure)),
    h('h2', {}, 'History'),
    h('p', {class: 'muted'}, 'From the audit log (admins), the rollouts through its ring, its current ' +
      'assignment, the versions its telemetry reported, and the slot states this page saw change.'),
    history,
    h('h2', {}, 'Latest telemetry windows'), windows);

  const seen = [];        // slot state changes seen by this tab: {ts, text}
  let lastSlots = null;   // "slot: model@v state" strings of the last refresh
  let sources = null;     // {audit, rollouts, desired} of the last history fetch
  let sourcesAt = 0;

  function noteSlots(d) {
    const now = Object.entries(d.slots || {}).map(([name, s]) => `${name} ${slotLabel(s)} ${s.state}`);
    if (lastSlots) {
      for (const x of now) if (!lastSlots.includes(x)) seen.push({ts: Date.now(), text: `slot ${x}`});
    }
    lastSlots = now;
  }

  async function fetchSources(d) {
    const [audit, rollouts, desired] = await Promise.all([
      ctx.isAdmin ? ctx.api.get('/api/v1/audit?limit=500').then((x) => x.entries) : [],
      ctx.api.get('/api/v1/rollouts').then((x) => x.rollouts),
      // No assignment yet would be a 404: ask only when there is one (it has an ETag).
      d.desired_seq > 0 ? ctx.api.get(`/api/v1/devices/${seg(deviceId)}/desired`) : null,
    ]);
    return {audit, rollouts, desired};
  }

  return {
    async refresh() {
      const since = rfc3339(Date.now() - DEVICE_RANGE_S * 1000);
      const [d, tele] = await Promise.all([
        ctx.api.get(`/api/v1/devices/${seg(deviceId)}`),
        ctx.api.get(`/api/v1/telemetry?device=${seg(deviceId)}&since=${since}&limit=1000`),
      ]);
      noteSlots(d);
      replaceLive(detail, JSON.stringify(d), () => h('div', {},
        facts([
          ['Status', onlineBadge(d.online)],
          ['Ring', d.ring],
          ['Class', d.class || '—'],
          ['Tags', tags(d.tags)],
          ['Last seen', [time(d.last_seen), ' ', h('span', {class: 'muted'}, `(${ago(d.last_seen)})`)]],
          ['Enrolled', time(d.enrolled_at)],
          ['Desired seq', String(d.desired_seq)],
        ]),
        h('h2', {}, 'Model slots'),
        table('Model slots', ['Slot', 'Model', 'Deployment', 'Reason'],
          Object.entries(d.slots || {}).map(([name, s]) => [
            name,
            link(`#/models/${seg(s.name)}/${s.version}`, slotLabel(s)),
            badge(s.state),
            s.reason || '—',
          ]), {id: 'slots'})));

      for (const c of charts) {
        const spec = DEVICE_CHARTS.find((x) => x[0] === c.name)[4];
        const pts = spec.map(([, value]) => tele.windows.map((w) =>
          [Math.floor(Date.parse(w.window_start) / 1000), value(w)]));
        const {xs, ys} = align(pts);
        await c.chart.draw({xs, series: spec.map(([label], i) => ({label, values: ys[i]}))});
      }

      const now = Date.now();
      if (!sources || now - sourcesAt >= HISTORY_REFRESH_MS) {
        sources = await fetchSources(d);
        sourcesAt = now;
      }
      const entries = deviceHistory({device: d, ...sources, windows: tele.windows, seen});
      replaceLive(history, JSON.stringify(entries), () =>
        table('Device history', ['Time', 'Source', 'What'], entries.slice(0, 100).map((e) => [
          time(new Date(e.ts).toISOString()), e.source,
          e.rollout ? link(`#/rollouts/${e.rollout}`, e.text) : e.text,
        ]), {id: 'history', dataset: {count: entries.length}}));

      const latest = tele.windows.slice(0, 20);
      replaceLive(windows, JSON.stringify(latest), () =>
        table('Telemetry windows', ['Received', 'Model', 'Inferences', 'Errors', 'p50 ms', 'p95 ms',
          'p99 ms', 'Accuracy', 'Drift'],
        latest.map((w) => [
          time(w.received_at),
          w.model ? `${w.model}@${w.version}` : '—',
          String(w.inferences),
          String(w.errors),
          num(w.latency_ms && w.latency_ms.p50, 3),
          num(w.latency_ms && w.latency_ms.p95, 3),
          num(w.latency_ms && w.latency_ms.p99, 3),
          w.accuracy === null ? '—' : num(w.accuracy, 3),
          num(driftValue(w.drift), 3),
        ])));
    },
    unmount() {
      for (const c of charts) c.chart.destroy();
    },
  };
}
