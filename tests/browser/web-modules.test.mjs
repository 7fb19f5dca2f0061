// web-modules.test.mjs - the dashboard's pure functions, in Node without a
// browser: series alignment, rollups to chart series, a device's history
// put together from the API's answers, the actions a rollout allows. The
// modules are the ones web/ serves (web/package.json marks them ES modules).
// Run by ctest (label browser) as `node --test tests/browser/web-modules.test.mjs`.

import assert from 'node:assert/strict';
import {test} from 'node:test';

import {align} from '../../web/assets/chart.js';
import {deviceHistory} from '../../web/assets/pages/fleet.js';
import {rollupSeries} from '../../web/assets/pages/monitoring.js';
import {allowedActions} from '../../web/assets/pages/rollouts.js';

test('align puts series on one time axis, a missing point a null', () => {
  const {xs, ys} = align([[[3, 0.3], [1, 0.1]], [[2, 2], [3, null]]]);
  assert.deepEqual(xs, [1, 2, 3]);
  assert.deepEqual(ys, [[0.1, null, 0.3], [null, 2, null]]);
});

test('rollupSeries: one series per version x ring, minutes in seconds, shares in percent', () => {
  const doc = {model: 'm', metric: 'accuracy', series: [
    {version: 2, ring: 'canary', points: [[120000, 1, 1]]},
    {version: 1, ring: 'default', points: [[60000, 0.5, 2], [120000, null, 0]]},
    {version: 1, ring: 'canary', points: [[60000, 0.25, 1]]},
  ]};
  const out = rollupSeries('accuracy', doc);
  assert.deepEqual(out.xs, [60, 120]);
  assert.deepEqual(out.series.map((s) => s.label), ['v1 canary', 'v1 default', 'v2 canary']);
  assert.deepEqual(out.series.map((s) => s.values), [[25, null], [50, null], [null, 100]]);
  // A colour per version; the second ring dashed.
  assert.equal(out.series[0].colour, out.series[1].colour);
  assert.notEqual(out.series[0].colour, out.series[2].colour);
  assert.equal(out.series[0].dash, undefined);
  assert.deepEqual(out.series[1].dash, [6, 4]);
  // Drift is drawn as it comes; an empty answer draws nothing.
  assert.deepEqual(rollupSeries('drift', {series: [{version: 1, ring: null, points: [[0, 0.4, 1]]}]})
    .series[0].values, [0.4]);
  assert.deepEqual(rollupSeries('drift', {series: []}), {xs: [], series: []});
});

test('deviceHistory merges audit, rollouts, the assignment, telemetry and seen states, newest first', () => {
  const device = {id: 'edge-1', ring: 'default'};
  const audit = [
    {ts: '2026-01-01T00:00:05Z', actor: 'token:1(admin)', action: 'POST /api/v1/assignments', outcome: 'ok',
      target: '/api/v1/assignments', detail: 'thyroid@1 -> ring default (2 devices)'},
    {ts: '2026-01-01T00:00:06Z', actor: 'token:1(admin)', action: 'PATCH /api/v1/devices/{id}', outcome: 'ok',
      target: '/api/v1/devices/edge-10', detail: 'device:edge-10 ring=x'},
    {ts: '2026-01-01T00:00:07Z', actor: 'token:1(admin)', action: 'PATCH /api/v1/devices/{id}', outcome: 'ok',
      target: '/api/v1/devices/edge-1', detail: ''},
  ];
  const rollouts = [
    {id: 4, model: 'thyroid', version: 2, slot: 'shadow', rings: [
      {name: 'default', state: 'succeeded', started_at: '2026-01-01T00:00:10Z', finished_at: '2026-01-01T00:00:20Z',
        reason: null}]},
    {id: 3, model: 'thyroid', version: 2, rings: [{name: 'canary', state: 'running', started_at: '2026-01-01T00:00:09Z'}]},
  ];
  const payload = {device_id: 'edge-1', seq: 7, issued_at: '2026-01-01T00:00:10Z',
    slots: {shadow: {model: 'thyroid', version: 2, rollout_id: '4'}}};
  const desired = {payload: Buffer.from(JSON.stringify(payload)).toString('base64'), signature: 'x'};
  const windows = [ // newest first, as the API answers
    {window_start: '2026-01-01T00:00:03Z', model: 'thyroid', version: 1},
    {window_start: '2026-01-01T00:00:02Z', model: 'thyroid', version: 1},
    {window_start: '2026-01-01T00:00:01Z', model: null, version: null},
  ];
  const seen = [{ts: Date.parse('2026-01-01T00:00:30Z'), text: 'slot shadow thyroid@2 committed'}];
  const h = deviceHistory({device, audit, rollouts, desired, windows, seen});
  assert.deepEqual(h.map((e) => [e.source, e.text]), [
    ['seen', 'slot shadow thyroid@2 committed'],
    ['rollout', 'rollout #4: ring default succeeded'],
    ['rollout', 'rollout #4 of thyroid@2 (shadow) reached ring default'],
    ['assignment', 'assignment seq 7: shadow thyroid@2 (rollout #4)'],
    ['audit', 'token:1(admin): PATCH /api/v1/devices/{id} ok'],
    ['audit', 'token:1(admin): POST /api/v1/assignments ok (thyroid@1 -> ring default (2 devices))'],
    ['telemetry', 'reports thyroid@1'],
    ['telemetry', 'reports no model'],
  ]);
  // Without the admin-only audit log and an assignment, the rest remains.
  assert.equal(deviceHistory({device, audit: [], rollouts: [], desired: null, windows, seen: []}).length, 2);
});

test('allowedActions: Promote only for a shadow rollout that succeeded', () => {
  assert.deepEqual(allowedActions({state: 'succeeded', slot: 'shadow'}), ['rollback', 'promote']);
  assert.deepEqual(allowedActions({state: 'succeeded', slot: 'production'}), ['rollback']);
  assert.deepEqual(allowedActions({state: 'succeeded'}), ['rollback']);
  assert.deepEqual(allowedActions({state: 'draft', slot: 'shadow'}), ['start', 'abort']);
  assert.deepEqual(allowedActions({state: 'running'}), ['pause', 'abort', 'rollback']);
});

test('manifestText keeps the manifest and puts number arrays on one line', async () => {
  const {manifestText} = await import('../../web/assets/pages/models.js');
  const mf = {version: 2, baseline: {features: [{edges: [0, 0.5, 1e-3], counts: [1, -2]}]}, labels: ['a', 'b']};
  const text = manifestText(mf);
  assert.deepEqual(JSON.parse(text), mf);
  assert.match(text, /"edges": \[0, 0\.5, 0\.001\]/);
  assert.match(text, /"counts": \[1, -2\]/);
  assert.match(text, /"labels": \[\n/); // strings stay one a line
});
