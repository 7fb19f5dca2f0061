// pages/fleet.js - the fleet: every device with its status, ring, the model
// version it runs and that deployment's state, filtered and searched in the
// page; and one device in detail (#/fleet/ID) with its latest telemetry.

import {seg} from '../api.js';
import {ago, badge, facts, h, link, num, onlineBadge, replaceLive, table, time} from '../dom.js';

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
            prod ? link(`#/models/${seg(prod.name)}/${prod.version}`, slotLabel(prod)) : '—',
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
    ring.replaceChildren(h('option', {value: ''}, 'all'), names.map((n) => h('option', {value: n}, n)));
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

function mountDevice(ctx, deviceId, container) {
  const head = h('div', {class: 'page-head'},
    h('h1', {}, 'Device ', h('span', {class: 'mono'}, deviceId)),
    link('#/fleet', '← all devices'));
  const detail = h('div', {id: 'device-detail'});
  const windows = h('div', {id: 'device-telemetry'});
  container.append(head, detail, h('h2', {}, 'Latest telemetry windows'), windows);

  return {
    async refresh() {
      const path = `/api/v1/devices/${seg(deviceId)}`;
      const [d, tele] = await Promise.all([
        ctx.api.get(path),
        ctx.api.get(`/api/v1/telemetry?device=${seg(deviceId)}&limit=20`),
      ]);
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
      replaceLive(windows, JSON.stringify(tele.windows), () =>
        table('Telemetry windows', ['Received', 'Model', 'Inferences', 'Errors', 'p50 ms', 'p95 ms',
          'p99 ms', 'Accuracy'],
        tele.windows.map((w) => [
          time(w.received_at),
          w.model ? `${w.model}@${w.version}` : '—',
          String(w.inferences),
          String(w.errors),
          num(w.latency_ms && w.latency_ms.p50, 3),
          num(w.latency_ms && w.latency_ms.p95, 3),
          num(w.latency_ms && w.latency_ms.p99, 3),
          w.accuracy === null ? '—' : num(w.accuracy, 3),
        ])));
    },
  };
}
