// dashboard.test.mjs - the web dashboard in a real browser against a real
// fleet: mosquitto, edgefleet-server serving web/, two edgefleet-agent
// processes running a thyroid model and sending telemetry every second.
// Debian's chromium, driven by playwright-core. Run by ctest (label
// browser) as `node --test tests/browser/dashboard.test.mjs`.
//
// Screenshots of every page go to $EF_ARTIFACTS_DIR/dashboard-*.png, by
// default $EF_BUILD_DIR/test-artifacts/.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {after, before, test} from 'node:test';

import {chromium} from 'playwright-core';

import {BUILD_DIR, Fleet, tail, waitFor} from './fleet.mjs';

const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps trying to reach
// Google's hosts, which this machine's closed network refuses.
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic'];
const ARTIFACTS = process.env.EF_ARTIFACTS_DIR || path.join(BUILD_DIR, 'test-artifacts');
const LAPTOP = {width: 1280, height: 900};
const TABLET = {width: 800, height: 1180};
// The trigger the test makes through the API: any drift at all fires it.
const DRIFT_TRIGGER = {model: 'thyroid', metric: 'drift', aggregation: 'max', op: 'above',
  threshold: 0.0001, window_s: 60, min_devices: 1, cooldown_s: 3600, action: 'none'};

let fleet;
let context;     // one browser profile (a fresh --user-data-dir)...
let profile;     // ...in this directory, removed at the end
let rolloutId;   // made from the page by the admin, looked at by the viewer
let driftTrigger; // made through the API before the admin signs in
let thirdNet;     // thyroid@3's network, pushed by the shadow test
let failed = false;
const consoleErrors = new Map(); // page name -> [text]

/** Records every console error and uncaught exception of a page. */
function watchConsole(page, name) {
  const errors = [];
  consoleErrors.set(name, errors);
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push({text: msg.text(), url: msg.location().url || ''});
  });
  page.on('pageerror', (err) => errors.push({text: `uncaught: ${err.message}`, url: ''}));
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, {recursive: true});
  const file = path.join(ARTIFACTS, `dashboard-${name}.png`);
  await page.screenshot({path: file, fullPage: true});
  return file;
}

/** A canvas's size and how many of its pixels are painted. */
async function ink(canvas) {
  return canvas.evaluate((c) => {
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
    return {w: c.width, h: c.height, ink: n};
  });
}

/** The data-points of a chart figure: {series label: points}. */
async function chartPoints(figure) {
  return JSON.parse((await figure.getAttribute('data-points')) || '{}');
}

/** Whether the page is no wider than its viewport. */
async function overflowPx(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

async function signIn(page, token) {
  await page.goto(fleet.url + '/');
  await page.locator('#token').fill(token);
  await page.getByRole('button', {name: 'Sign in'}).click();
  await page.locator('#role').waitFor();
}

before(async () => {
  fleet = new Fleet({devices: 2, tickMs: 250});
  await fleet.start();
  const [net1, net2, net3] = await Promise.all([fleet.train('thyroid-1', 8, 30, 1),
    fleet.train('thyroid-2', 6, 20, 7), fleet.train('thyroid-3', 7, 25, 11)]);
  thirdNet = net3; // pushed by the shadow test
  assert.equal((await fleet.push('thyroid', net1)).version, 1);
  assert.equal((await fleet.push('thyroid', net2)).version, 2);
  await fleet.startAgents();
  fleet.feed();
  await fleet.api('POST', '/api/v1/assignments', {model: 'thyroid', version: 1, ring: 'default'});
  await fleet.waitSlots('thyroid', 1, 'committed', 30000);

  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ef-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: LAPTOP,
  });
});

after(async () => {
  if (context) await context.close();
  if (profile) fs.rmSync(profile, {recursive: true, force: true});
  if (!fleet) return;
  const problems = await fleet.stop();
  if (failed || problems.length) {
    const logs = fleet.children.map((c) => `--- ${c.name} (${c.logPath}) ---\n${tail(c.logText(), 3000)}`);
    console.error(`logs kept in ${fleet.dir}\n${logs.join('\n')}`);
  } else {
    fleet.cleanup();
  }
  assert.deepEqual(problems, [], problems.join('\n'));
});

/** Runs a step; on failure keeps a screenshot of the page and the logs. */
async function step(page, name, fn) {
  try {
    await fn();
  } catch (e) {
    failed = true;
    await shot(page, `failed-${name}`).catch(() => {});
    throw e;
  }
}

test('the server serves the dashboard as static files, safely', async () => {
  const index = await fetch(fleet.url + '/');
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.ok(index.headers.get('etag'));
  assert.match(index.headers.get('content-security-policy'), /default-src 'none'/);
  const js = await fetch(fleet.url + '/assets/app.js');
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.match(js.headers.get('cache-control'), /max-age=\d+/);
  const again = await fetch(fleet.url + '/assets/app.js', {headers: {'If-None-Match': js.headers.get('etag')}});
  assert.equal(again.status, 304);
  const uplot = await fetch(fleet.url + '/vendor/uplot/uPlot.esm.js');
  assert.equal(uplot.status, 200);
  for (const bad of ['/assets/nope.js', '/assets/%2e%2e/index.html', '/vendor/uplot/..%2f..%2fpackage.json',
    '/vendor/uplot/uPlot.d.ts', '/assets/.hidden']) {
    const r = await fetch(fleet.url + bad);
    assert.equal(r.status, 404, bad);
  }
  const post = await fetch(fleet.url + '/', {method: 'POST'});
  assert.equal(post.status, 405);
});

test('an admin signs in, sees the fleet, rolls v2 out from the page and watches it succeed', async () => {
  driftTrigger = await fleet.api('POST', '/api/v1/triggers', DRIFT_TRIGGER);
  assert.ok(driftTrigger.id, JSON.stringify(driftTrigger));
  const page = await context.newPage();
  watchConsole(page, 'admin');

  await step(page, 'signin', async () => {
    await page.goto(fleet.url + '/');
    await page.locator('#signin').waitFor();
    await shot(page, 'signin');
    await signIn(page, fleet.adminToken);
    assert.equal(await page.locator('#role').textContent(), 'admin');
    await page.waitForURL(/#\/fleet$/);
  });

  await step(page, 'fleet', async () => {
    for (const id of fleet.deviceIds) {
      const row = page.locator('#devices tbody tr', {hasText: id});
      await row.waitFor();
      await row.getByText('thyroid@1').waitFor({timeout: 10000});
      await row.getByText('committed').waitFor();
      await row.getByText('online').waitFor();
    }
    assert.match(await page.locator('#fleet-summary').textContent(), /2 devices, 2 online/);
    // Search narrows the table in the page.
    await page.locator('#fleet-search').fill('site=field');
    await waitFor(async () => (await page.locator('#devices').getAttribute('data-count')) === '1', 5000,
      'search for site=field shows one device');
    await page.locator('#fleet-search').fill('');
    // The other filters: offline shows nobody, online both.
    await page.locator('#fleet-online').selectOption('offline');
    await waitFor(async () => (await page.locator('#devices').getAttribute('data-count')) === '0', 5000,
      'status offline shows no device');
    await page.locator('#fleet-online').selectOption('online');
    await page.locator('#fleet-ring').selectOption('default');
    await page.locator('#fleet-state').selectOption('committed');
    await waitFor(async () => (await page.locator('#devices').getAttribute('data-count')) === '2', 5000,
      'online, ring default, committed shows both devices');
    await page.locator('#fleet-state').selectOption('failed');
    await waitFor(async () => (await page.locator('#devices').getAttribute('data-count')) === '0', 5000,
      'deployment failed shows no device');
    for (const id of ['#fleet-online', '#fleet-ring', '#fleet-state']) await page.locator(id).selectOption('');
    await shot(page, 'fleet');
  });

  await step(page, 'models', async () => {
    await page.getByRole('link', {name: 'Models', exact: true}).click();
    await page.locator('#models').getByRole('link', {name: 'thyroid'}).click();
    const versions = page.locator('#versions tbody tr');
    await waitFor(async () => (await versions.count()) === 2, 10000, 'two versions listed');
    // Newest first: v2 (from v1, running nowhere yet), then v1 on both devices.
    const [v2, v1] = [versions.first(), versions.last()];
    await v1.getByRole('link', {name: 'edge-1'}).waitFor();
    await v1.getByRole('link', {name: 'edge-2'}).waitFor();
    await v2.getByText('none').waitFor();
    await v1.getByText('ring default (2)').waitFor();
    await shot(page, 'models');
    // One version: its metrics, lineage and the signed manifest.
    await v2.getByRole('link', {name: 'v2', exact: true}).click();
    await page.waitForURL(/#\/models\/thyroid\/2$/);
    await page.locator('#version-detail').getByText('from v1').waitFor();
    assert.ok(await page.locator('#metrics tbody tr').count() >= 1, 'the manifest has metrics');
    await page.locator('#manifest summary').click();
    const manifest = JSON.parse(await page.locator('#manifest pre').textContent());
    assert.equal(manifest.version, 2);
    assert.equal(manifest.lineage.parent_version, 1);
    assert.ok(manifest.baseline, 'pushed with --data: the manifest has a drift baseline');
    await shot(page, 'model-version');
  });

  await step(page, 'rollout', async () => {
    await page.getByRole('link', {name: 'Rollouts', exact: true}).click();
    await page.locator('#new-rollout').click();
    await page.locator('#ro-model').selectOption('thyroid');
    await waitFor(async () => (await page.locator('#ro-version option').count()) === 2, 5000, 'versions offered');
    await page.locator('#ro-version').selectOption('2');
    assert.ok(await page.locator('input[name=ring][value=default]').isChecked());
    await page.locator('#ro-create').click();
    await page.waitForURL(/#\/rollouts\/\d+$/);
    rolloutId = Number(page.url().split('/').pop());
    await page.locator('#rollout-state[data-state="draft"]').waitFor();
    await page.locator('#rollout-start').click();
    await page.locator('#rollout-state[data-state="running"], #rollout-state[data-state="succeeded"]').first()
      .waitFor({timeout: 10000});
    await page.locator('#rollout-state[data-state="succeeded"]').waitFor({timeout: 60000});
    const ring = page.locator('.ring-card[data-ring="default"]');
    assert.equal(await ring.getAttribute('data-state'), 'succeeded');
    assert.match(await ring.locator('.ring-progress').textContent(), /^2 of 2 devices committed/);
    // Succeeded: only rollback is left to an operator.
    assert.deepEqual(await page.locator('#rollout-actions button').evaluateAll(
      (bs) => bs.map((b) => b.dataset.action)), ['rollback']);
    await shot(page, 'rollout');
    const r = await fleet.api('GET', `/api/v1/rollouts/${rolloutId}`);
    assert.equal(r.state, 'succeeded');
    assert.equal(r.version, 2);
  });

  await step(page, 'fleet-after', async () => {
    await page.getByRole('link', {name: 'Fleet', exact: true}).click();
    for (const id of fleet.deviceIds) {
      const row = page.locator('#devices tbody tr', {hasText: id});
      await row.getByText('thyroid@2').waitFor({timeout: 15000});
    }
  });

  await step(page, 'device', async () => {
    await page.locator('#devices').getByRole('link', {name: 'edge-1', exact: true}).click();
    await page.waitForURL(/#\/fleet\/edge-1$/);
    await page.locator('#slots tbody tr', {hasText: 'thyroid@2'}).waitFor();
    // Charts of its own telemetry: latency and accuracy from every window,
    // drift from the windows that had enough inputs.
    const latency = page.locator('#device-chart-latency');
    const lat = await waitFor(async () => {
      const p = await chartPoints(latency);
      return p.p99 > 1 ? p : null;
    }, 15000, 'device latency chart with points');
    const windows = (await fleet.api('GET', '/api/v1/telemetry?device=edge-1&since=900&limit=1000')).windows;
    assert.ok(lat.p99 <= windows.length, `${lat.p99} points from ${windows.length} windows`);
    const acc = await waitFor(async () => {
      const p = await chartPoints(page.locator('#device-chart-accuracy'));
      return p.accuracy > 1 ? p : null;
    }, 15000, 'device accuracy chart with points');
    assert.ok(acc.accuracy > 1);
    const drift = await waitFor(async () => {
      const p = await chartPoints(page.locator('#device-chart-drift'));
      return p['inputs (max)'] > 1 ? p : null;
    }, 15000, 'device drift chart with points');
    assert.ok(drift['inputs (max)'] > 1);
    const painted = await ink(latency.locator('.uplot canvas'));
    assert.ok(painted.w > 200 && painted.h > 100 && painted.ink > 500, JSON.stringify(painted));
    // Its history: the rollout made from the page reached its ring, and its
    // telemetry went from v1 to v2.
    const history = page.locator('#history');
    await history.locator('tbody tr', {hasText: `rollout #${rolloutId} of thyroid@2`}).first().waitFor();
    await history.locator('tbody tr', {hasText: 'reports thyroid@2'}).first().waitFor();
    await history.locator('tbody tr', {hasText: 'assignment seq'}).first().waitFor();
    await shot(page, 'device');
  });

  await step(page, 'telemetry', async () => {
    await page.getByRole('link', {name: 'Telemetry', exact: true}).click();
    await page.locator('#tele-range').selectOption({label: 'last 5 minutes'});
    const chart = page.locator('#telemetry-chart');
    await chart.locator('.uplot canvas').waitFor();
    const points = await waitFor(async () => {
      const p = JSON.parse((await chart.getAttribute('data-points')) || '{}');
      return p['p99 v1'] > 1 && p['errors v1'] > 1 && p['p99 v2'] >= 1 ? p : null;
    }, 20000, 'chart series with points for v1 and v2');
    assert.ok(points['p99 v1'] > 1, JSON.stringify(points));
    // The canvas is drawn: uPlot sized it, and it is not blank.
    const painted = await chart.locator('.uplot canvas').evaluate((c) => {
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]) ink++;
      return {w: c.width, h: c.height, ink};
    });
    assert.ok(painted.w > 200 && painted.h > 100 && painted.ink > 500, JSON.stringify(painted));
    await page.locator('#telemetry-table tbody tr', {hasText: 'thyroid@1'}).waitFor();
    await shot(page, 'telemetry');
  });

  await step(page, 'monitoring', async () => {
    await page.getByRole('link', {name: 'Monitoring', exact: true}).click();
    await page.waitForURL(/#\/monitoring/);
    await page.locator('#mon-model').selectOption('thyroid');
    await page.locator('#mon-range').selectOption({label: 'last 15 minutes'});
    const chart = page.locator('#chart-drift');
    // Drift that the agents measured against the manifest's baseline, rolled
    // up per minute by the server: the chart holds the API's points.
    const points = await waitFor(async () => {
      const p = await chartPoints(chart);
      return Object.values(p).some((n) => n >= 1) ? p : null;
    }, 30000, 'drift chart with points');
    const rollups = await fleet.api('GET', '/api/v1/telemetry/rollups?model=thyroid&metric=drift&since=900');
    const real = rollups.series.flatMap((x) => x.points.filter((pt) => pt[1] !== null));
    assert.ok(real.length >= 1, JSON.stringify(rollups));
    assert.ok(real.some((pt) => pt[1] > 0), 'the devices measured some drift');
    assert.ok(Object.values(points).reduce((a, b) => a + b, 0) >= 1, JSON.stringify(points));
    // The alert the trigger fired: a row in the list and a marker on the chart.
    const alertRow = page.locator('#alerts tbody tr', {hasText: 'drift'}).first();
    await alertRow.waitFor({timeout: 30000});
    await alertRow.getByText('firing').or(alertRow.getByText('resolved')).first().waitFor();
    const alerts = (await fleet.api('GET', '/api/v1/alerts?model=thyroid'));
    const list = Array.isArray(alerts) ? alerts : alerts.alerts;
    assert.ok(list.some((a) => a.trigger_id === driftTrigger.id && a.metric === 'drift'), JSON.stringify(list));
    await waitFor(async () => Number(await chart.getAttribute('data-markers')) >= 1, 15000,
      'an alert marker on the drift chart');
    const painted = await ink(chart.locator('.uplot canvas'));
    assert.ok(painted.w > 200 && painted.h > 100 && painted.ink > 500, JSON.stringify(painted));
    // The trigger is listed, with its threshold line's rule.
    await page.locator('#triggers tbody tr', {hasText: `drift max above ${DRIFT_TRIGGER.threshold}`}).waitFor();
    assert.ok(await overflowPx(page) <= 0, 'the monitoring page fits a laptop');
    await shot(page, 'monitoring');
  });

  await step(page, 'audit-filter', async () => {
    await page.getByRole('link', {name: 'Audit', exact: true}).click();
    await page.locator('#audit tbody tr', {hasText: '/api/v1/rollouts/{id}/start'}).first().waitFor();
    const all = await page.locator('#audit tbody tr').count();
    await page.locator('#audit-search').fill('/start');
    await waitFor(async () => {
      const rows = await page.locator('#audit tbody tr').allTextContents();
      return rows.length >= 1 && rows.length < all && rows.every((t) => t.includes('/start'));
    }, 5000, 'search narrows the audit log');
    await page.locator('#audit-search').fill('');
    // By actor: the monitor's own entries (the alert it raised) or a token's.
    const actors = (await page.locator('#audit-actor option').evaluateAll((os) => os.map((o) => o.value)))
      .filter(Boolean);
    assert.ok(actors.length >= 1, 'actors offered');
    const actor = actors.includes('monitor') ? 'monitor' : actors[0];
    await page.locator('#audit-actor').selectOption(actor);
    await waitFor(async () => {
      const cells = await page.locator('#audit tbody tr td:nth-child(3)').allTextContents();
      return cells.length >= 1 && cells.every((t) => t === actor);
    }, 5000, `the audit log filtered to actor ${actor}`);
    await shot(page, 'audit');
    await page.locator('#audit-actor').selectOption('');
  });

  await step(page, 'audit-keyboard', async () => {
    await page.getByRole('link', {name: 'Audit', exact: true}).click();
    await page.locator('#audit tbody tr', {hasText: '/api/v1/rollouts/{id}/start'}).first().waitFor();
    // Keyboard, on a fresh load (the tab keeps its session): the first Tab
    // reaches the skip link, Enter moves to the page, the next Tabs reach
    // the page's controls.
    await page.reload();
    await page.locator('#audit tbody tr').first().waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'audit-outcome');
  });

  assert.deepEqual(consoleErrors.get('admin'), [], 'console errors on the admin page');
  await page.close();
});

test('a shadow rollout from the page succeeds, and Promote rolls it out to production', async () => {
  assert.ok(rolloutId, 'the admin test rolled v2 out');
  assert.equal((await fleet.push('thyroid', thirdNet)).version, 3);
  const page = await context.newPage();
  watchConsole(page, 'shadow');
  page.on('dialog', (d) => d.accept()); // Promote asks first
  await signIn(page, fleet.adminToken);

  let shadowId;
  await step(page, 'shadow', async () => {
    await page.goto(`${fleet.url}/#/rollouts`);
    await page.locator('#new-rollout').click();
    await page.locator('#ro-model').selectOption('thyroid');
    await waitFor(async () => (await page.locator('#ro-version option').count()) === 3, 5000, 'three versions offered');
    await page.locator('#ro-version').selectOption('3');
    await page.locator('#ro-slot').selectOption('shadow');
    await page.locator('#ro-create').click();
    await page.waitForURL(/#\/rollouts\/\d+$/);
    shadowId = Number(page.url().split('/').pop());
    assert.equal(await page.locator('#rollout-slot').textContent(), 'shadow');
    await page.locator('#rollout-start').click();
    await page.locator('#rollout-state[data-state="succeeded"]').waitFor({timeout: 60000});
    const ring = page.locator('.ring-card[data-ring="default"]');
    assert.equal(await ring.locator('.tally').getAttribute('data-committed'), '2');
    assert.equal(await ring.locator('.tally').getAttribute('data-pending'), '0');
    // A succeeded shadow: rollback or promote.
    assert.deepEqual(await page.locator('#rollout-actions button').evaluateAll(
      (bs) => bs.map((b) => b.dataset.action)), ['rollback', 'promote']);
    // Production stays on v2; v3 runs beside it in every shadow slot.
    const {devices} = await fleet.api('GET', '/api/v1/devices');
    for (const id of fleet.deviceIds) {
      const d = devices.find((x) => x.id === id);
      assert.equal(d.slots.production.version, 2, JSON.stringify(d.slots));
      assert.equal(d.slots.shadow && d.slots.shadow.version, 3, JSON.stringify(d.slots));
    }
    await shot(page, 'rollout-shadow');
  });

  await step(page, 'promote', async () => {
    await page.locator('#rollout-promote').click();
    await page.waitForURL((u) => /#\/rollouts\/\d+$/.test(u.hash) && Number(u.hash.split('/').pop()) !== shadowId);
    await page.locator('#rollout-slot', {hasText: 'production'}).waitFor();
    await page.locator('#rollout-state[data-state="succeeded"]').waitFor({timeout: 60000});
    await fleet.waitSlots('thyroid', 3, 'committed', 30000);
    await page.goto(`${fleet.url}/#/fleet`);
    for (const id of fleet.deviceIds) {
      await page.locator('#devices tbody tr', {hasText: id}).getByText('thyroid@3').waitFor({timeout: 15000});
    }
    await shot(page, 'rollout-promoted');
  });
  assert.deepEqual(consoleErrors.get('shadow'), [], 'console errors on the shadow page');
  await page.close();
});

test('a viewer sees everything and no action button, on a tablet', async () => {
  assert.ok(rolloutId, 'the admin test made a rollout');
  const viewerToken = (await fleet.api('POST', '/api/v1/tokens', {role: 'viewer', name: 'browser'})).token;
  const page = await context.newPage();
  await page.setViewportSize(TABLET);
  watchConsole(page, 'viewer');

  await step(page, 'viewer', async () => {
    // A wrong token: the API's error, in one line, and still the sign-in form.
    await page.goto(fleet.url + '/');
    await page.locator('#token').fill('efa_not-a-token');
    await page.getByRole('button', {name: 'Sign in'}).click();
    const error = page.locator('#error');
    await error.waitFor();
    assert.match(await error.textContent(), /^GET \/api\/v1\/models: 401 unauthenticated: /);
    const lines = await error.evaluate((e) => Math.round(e.clientHeight / parseFloat(getComputedStyle(e).lineHeight)));
    assert.ok(lines <= 2, `the error takes ${lines} lines`); // one line of text plus padding
    await signIn(page, viewerToken);
    assert.ok(await error.isHidden(), 'the error goes once signed in');
    assert.equal(await page.locator('#role').textContent(), 'viewer');
    await page.locator('#devices tbody tr', {hasText: 'edge-1'}).waitFor();
    assert.equal(await page.getByRole('link', {name: 'Audit', exact: true}).count(), 0);

    await page.getByRole('link', {name: 'Rollouts', exact: true}).click();
    await page.locator('#rollouts tbody tr', {hasText: `#${rolloutId}`}).waitFor();
    assert.equal(await page.locator('#new-rollout').count(), 0);
    await page.locator('#rollouts').getByRole('link', {name: `#${rolloutId}`}).click();
    await page.locator('#rollout-state[data-state="succeeded"]').waitFor();
    await page.waitForTimeout(500); // a refresh has run
    assert.equal(await page.locator('main button, main [data-action]').count(), 0,
      'a viewer sees no action button');
    // The page fits a tablet: nothing wider than the viewport.
    const overflow = await overflowPx(page);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a tablet`);
    await shot(page, 'viewer-tablet');

    // Monitoring: the charts and the alert, no trigger form or delete button.
    await page.getByRole('link', {name: 'Monitoring', exact: true}).click();
    await page.locator('#alerts tbody tr', {hasText: 'drift'}).first().waitFor({timeout: 15000});
    await page.locator('#triggers tbody tr', {hasText: 'drift'}).first().waitFor();
    await waitFor(async () => Object.values(await chartPoints(page.locator('#chart-drift'))).some((n) => n >= 1),
      15000, 'the viewer\'s drift chart has points');
    assert.equal(await page.locator('main button, main [data-action]').count(), 0,
      'a viewer sees no trigger button');
    assert.ok(await overflowPx(page) <= 0, 'the monitoring page fits a tablet');
    await shot(page, 'monitoring-tablet');
  });

  // The only errors in a viewer's console: the wrong token's 401 and the role
  // probe's two refusals (see docs/dashboard.md).
  const expected = (e) =>
    (/status of 401/.test(e.text) && e.url.endsWith('/api/v1/models')) ||
    (/status of 403/.test(e.text) &&
      (e.url.endsWith('/api/v1/audit?limit=1') || e.url.endsWith('/api/v1/rollouts')));
  const unexpected = consoleErrors.get('viewer').filter((e) => !expected(e));
  assert.deepEqual(unexpected, [], 'unexpected console errors on the viewer page');
  await page.close();
});

test('an operator gets the actions but not the audit log', async () => {
  assert.ok(rolloutId, 'the admin test made a rollout');
  const operatorToken = (await fleet.api('POST', '/api/v1/tokens', {role: 'operator', name: 'browser'})).token;
  const page = await context.newPage();
  watchConsole(page, 'operator');
  await step(page, 'operator', async () => {
    await signIn(page, operatorToken);
    assert.equal(await page.locator('#role').textContent(), 'operator');
    assert.equal(await page.getByRole('link', {name: 'Audit', exact: true}).count(), 0);
    await page.goto(`${fleet.url}/#/rollouts/${rolloutId}`);
    await page.locator('#rollout-state[data-state="succeeded"]').waitFor();
    await page.locator('#rollout-rollback').waitFor();
    await page.getByRole('link', {name: '← all rollouts'}).click();
    await page.locator('#new-rollout').waitFor();

    // A trigger made in the page's form, listed, then deleted from the page.
    page.on('dialog', (d) => d.accept());
    await page.getByRole('link', {name: 'Monitoring', exact: true}).click();
    await page.locator('#new-trigger').click();
    // The form opens with the focus on its first field, and Tab walks it in order.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tr-metric');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tr-aggregation');
    await page.locator('#tr-metric').selectOption('latency_p99');
    await page.locator('#tr-threshold').fill('5000');
    await page.locator('#tr-window').fill('120');
    await page.locator('#tr-create').click();
    const row = page.locator('#triggers tbody tr', {hasText: 'latency_p99 mean above 5000 over 120 s'});
    await row.waitFor();
    const triggers = await fleet.api('GET', '/api/v1/triggers?model=thyroid');
    const made = (Array.isArray(triggers) ? triggers : triggers.triggers).find((t) => t.metric === 'latency_p99');
    assert.ok(made, JSON.stringify(triggers));
    assert.equal(made.threshold, 5000);
    assert.equal(made.window_s, 120);
    await page.locator(`#trigger-delete-${made.id}`).click();
    await row.waitFor({state: 'detached'});
    const left = await fleet.api('GET', '/api/v1/triggers?model=thyroid');
    assert.ok(!(Array.isArray(left) ? left : left.triggers).some((t) => t.id === made.id), 'deleted');
  });
  // The probe: 403 on the audit log, 400 on the empty POST (an operator's).
  const expected = (e) =>
    (/status of 403/.test(e.text) && e.url.endsWith('/api/v1/audit?limit=1')) ||
    (/status of 400/.test(e.text) && e.url.endsWith('/api/v1/rollouts'));
  assert.deepEqual(consoleErrors.get('operator').filter((e) => !expected(e)), [],
    'unexpected console errors on the operator page');
  await page.close();
});
