// pages/models.js - the registry: every model (#/models), a model's versions
// with their metrics, lineage (parent, dataset, the alert and trigger that
// led to it) and the devices and rings running each, in either slot
// (#/models/NAME), and one version's manifest (#/models/NAME/VERSION).

import {seg} from '../api.js';
import {badge, bytes, facts, h, link, replaceLive, table, time} from '../dom.js';

export const id = 'models';
export const title = 'Models';

// Versions are immutable: their details are fetched once per page load.
const versionCache = new Map(); // "name@version" -> version detail (with manifest)

async function versionDetail(api, name, version) {
  const key = `${name}@${version}`;
  if (!versionCache.has(key)) {
    versionCache.set(key, await api.get(`/api/v1/models/${seg(name)}/versions/${version}`));
  }
  return versionCache.get(key);
}

export function mount(ctx, params, container) {
  if (params.length >= 2) return mountVersion(ctx, params[0], Number(params[1]), container);
  if (params.length === 1) return mountModel(ctx, params[0], container);
  return mountList(ctx, container);
}

/**
 * Where name (and version, when given) runs: [{device, slot, state}] for
 * every device slot (production, shadow) that holds it.
 */
function runningOn(devices, name, version) {
  const out = [];
  for (const d of devices) {
    for (const [slot, s] of Object.entries(d.slots || {})) {
      if (s && s.name === name && (version === undefined || s.version === version)) {
        out.push({device: d, slot, state: s.state, reason: s.reason});
      }
    }
  }
  return out;
}

/** "2: dev-1 committed, dev-2 shadow active; rings default 2" as links. */
function deviceList(running) {
  if (!running.length) return h('span', {class: 'muted'}, 'none');
  const rings = new Map();
  for (const r of running) rings.set(r.device.ring, (rings.get(r.device.ring) || 0) + 1);
  return h('span', {class: 'device-list'},
    `${running.length}: `,
    running.map((r, i) => [i ? ', ' : '', link(`#/fleet/${seg(r.device.id)}`, r.device.id),
      r.slot === 'production' ? null : h('span', {class: 'muted'}, ` ${r.slot}`),
      ' ', badge(r.state, 'badge-small')]),
    h('span', {class: 'muted rings-of'}, ` · ring${rings.size === 1 ? '' : 's'} ` +
      [...rings].map(([ring, n]) => `${ring} (${n})`).join(', ')));
}

/** A manifest's metrics, flattened one level: {"mse": 0.01, "accuracy": 0.95}. */
function metricPairs(metrics) {
  const out = [];
  for (const [k, v] of Object.entries(metrics || {})) {
    if (v !== null && typeof v === 'object') {
      for (const [k2, v2] of Object.entries(v)) out.push([`${k}.${k2}`, v2]);
    } else {
      out.push([k, v]);
    }
  }
  return out;
}

function metricText(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (v === null || v === undefined) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function metricsInline(metrics) {
  const pairs = metricPairs(metrics);
  if (!pairs.length) return h('span', {class: 'muted'}, '—');
  return h('span', {class: 'metrics'}, pairs.slice(0, 4).map(([k, v]) =>
    h('span', {class: 'metric'}, h('span', {class: 'muted'}, `${k} `), metricText(v))));
}

function lineageText(name, lineage) {
  if (!lineage) return '—';
  const parts = [];
  if (lineage.parent_version) {
    parts.push('from ', link(`#/models/${seg(name)}/${lineage.parent_version}`, `v${lineage.parent_version}`));
  } else {
    parts.push(h('span', {class: 'muted'}, 'first'));
  }
  if (lineage.alert_id) parts.push(', ', link(`#/monitoring/${seg(name)}`, `alert #${lineage.alert_id}`));
  if (lineage.trigger) parts.push(`, trigger: ${lineage.trigger}`);
  if (lineage.dataset_id) parts.push(`, dataset ${lineage.dataset_id}`);
  return h('span', {}, parts);
}

function mountList(ctx, container) {
  const live = h('div', {id: 'models-table'});
  container.append(h('div', {class: 'page-head'}, h('h1', {}, 'Models')), live);
  return {
    async refresh() {
      const [doc, fleet] = await Promise.all([ctx.api.get('/api/v1/models'),
        ctx.api.get('/api/v1/devices')]);
      replaceLive(live, JSON.stringify([doc, fleet]), () =>
        table('Models', ['Model', 'Description', 'Latest version', 'Running on', 'Created'],
          doc.models.map((m) => [
            link(`#/models/${seg(m.name)}`, m.name, `model-${m.name}`),
            m.description || h('span', {class: 'muted'}, '—'),
            m.latest_version ? link(`#/models/${seg(m.name)}/${m.latest_version}`, `v${m.latest_version}`) : '—',
            deviceList(runningOn(fleet.devices, m.name)),
            time(m.created_at),
          ]), {id: 'models'}));
    },
  };
}

function mountModel(ctx, name, container) {
  const live = h('div', {id: 'model-detail'});
  container.append(h('div', {class: 'page-head'},
    h('h1', {}, 'Model ', h('span', {class: 'mono'}, name)), link('#/models', '← all models')), live);
  return {
    async refresh() {
      const [m, fleet] = await Promise.all([ctx.api.get(`/api/v1/models/${seg(name)}`),
        ctx.api.get('/api/v1/devices')]);
      const details = await Promise.all(m.versions.map((v) => versionDetail(ctx.api, name, v.version)));
      const versions = m.versions.map((v, i) => ({...v, manifest: details[i].manifest}))
        .sort((a, b) => b.version - a.version);
      replaceLive(live, JSON.stringify([m, fleet]), () => h('div', {},
        m.description ? h('p', {}, m.description) : null,
        table('Versions', ['Version', 'Backend', 'Metrics', 'Lineage', 'Running on', 'Created'],
          versions.map((v) => [
            link(`#/models/${seg(name)}/${v.version}`, `v${v.version}`, `version-${v.version}`),
            v.backend,
            metricsInline(v.manifest.metrics),
            lineageText(name, v.manifest.lineage),
            deviceList(runningOn(fleet.devices, name, v.version)),
            time(v.created_at),
          ]), {id: 'versions'})));
    },
  };
}

/** The manifest as indented JSON, with arrays of numbers (histogram edges
 * and counts, vectors) on one line each. */
export function manifestText(mf) {
  return JSON.stringify(mf, null, 2).replace(/\[\s*((?:-?[\d.eE+-]+,\s*)*-?[\d.eE+-]+)\s*\]/g,
    (m, inner) => `[${inner.split(/,\s*/).join(', ')}]`);
}

function mountVersion(ctx, name, version, container) {
  const live = h('div', {id: 'version-detail'});
  container.append(h('div', {class: 'page-head'},
    h('h1', {}, h('span', {class: 'mono'}, `${name}@${version}`)),
    link(`#/models/${seg(name)}`, `← all versions of ${name}`)), live);
  const manifestBox = h('div', {id: 'manifest-box'});
  container.append(h('h2', {}, 'Manifest'), manifestBox);
  return {
    async refresh() {
      const [v, fleet] = await Promise.all([versionDetail(ctx.api, name, version),
        ctx.api.get('/api/v1/devices')]);
      const mf = v.manifest;
      const running = runningOn(fleet.devices, name, version);
      replaceLive(live, JSON.stringify(fleet), () => h('div', {},
        facts([
          ['Backend', v.backend],
          ['Device class', v.device_class || 'any'],
          ['Artifact', h('span', {}, bytes(v.size), ' · sha256 ',
            h('code', {title: v.sha256}, `${v.sha256.slice(0, 16)}…`))],
          ['Inputs', `${mf.input.size} (${mf.input.features.slice(0, 6).join(', ')}` +
            `${mf.input.features.length > 6 ? ', …' : ''})`],
          ['Outputs', `${mf.output.size}` + (mf.output.labels.length ? ` (${mf.output.labels.join(', ')})` : '')],
          ['Golden test vectors', String(mf.test_vectors.length)],
          ['Drift baseline', mf.baseline ? 'recorded' : 'none'],
          ['Lineage', lineageText(name, mf.lineage)],
          ['Training dataset', mf.lineage && mf.lineage.dataset_id ? `#${mf.lineage.dataset_id}` : '—'],
          ['Created', time(v.created_at)],
        ]),
        h('h2', {}, 'Metrics'),
        table('Metrics', ['Metric', 'Value'],
          metricPairs(mf.metrics).map(([k, val]) => [k, metricText(val)]), {id: 'metrics'}),
        h('h2', {}, 'Where it runs'),
        table('Devices running this version', ['Device', 'Ring', 'Slot', 'Deployment', 'Reason'],
          running.map((r) => [link(`#/fleet/${seg(r.device.id)}`, r.device.id), r.device.ring, r.slot,
            badge(r.state), r.reason || '—']),
          {id: 'running'})));
      // Immutable: drawn once, so that an open <details> stays open.
      replaceLive(manifestBox, 'once', () => h('details', {class: 'manifest', id: 'manifest'},
        h('summary', {}, 'The signed manifest.json, as parsed'),
        h('pre', {tabindex: '0', 'aria-label': 'manifest JSON'}, manifestText(mf))));
    },
  };
}
