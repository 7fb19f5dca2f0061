// pages/models.js - the registry: every model (#/models), a model's versions
// with their metrics, lineage and the devices running each (#/models/NAME),
// and one version's manifest (#/models/NAME/VERSION).

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

/** Devices whose production slot holds name (and version, when given). */
function runningOn(devices, name, version) {
  return devices.filter((d) => {
    const s = d.slots && d.slots.production;
    return s && s.name === name && (version === undefined || s.version === version);
  });
}

/** "2 devices: dev-1 (committed), dev-2 (active)" as links. */
function deviceList(devices) {
  if (!devices.length) return h('span', {class: 'muted'}, 'none');
  return h('span', {class: 'device-list'},
    `${devices.length}: `,
    devices.map((d, i) => [i ? ', ' : '', link(`#/fleet/${seg(d.id)}`, d.id),
      ' ', badge(d.slots.production.state, 'badge-small')]));
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
  if (lineage.trigger) parts.push(`, trigger ${lineage.trigger}`);
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

function mountVersion(ctx, name, version, container) {
  const live = h('div', {id: 'version-detail'});
  container.append(h('div', {class: 'page-head'},
    h('h1', {}, h('span', {class: 'mono'}, `${name}@${version}`)),
    link(`#/models/${seg(name)}`, `← all versions of ${name}`)), live);
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
          ['Created', time(v.created_at)],
        ]),
        h('h2', {}, 'Metrics'),
        table('Metrics', ['Metric', 'Value'],
          metricPairs(mf.metrics).map(([k, val]) => [k, metricText(val)]), {id: 'metrics'}),
        h('h2', {}, 'Where it runs'),
        table('Devices running this version', ['Device', 'Ring', 'Deployment', 'Reason'],
          running.map((d) => [link(`#/fleet/${seg(d.id)}`, d.id), d.ring,
            badge(d.slots.production.state), d.slots.production.reason || '—']),
          {id: 'running'})));
    },
  };
}
