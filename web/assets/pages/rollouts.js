// pages/rollouts.js - staged rollouts: the list with a form to create one
// (#/rollouts), and one rollout with its live progress ring by ring, its
// thresholds and gates, and the operator's actions (#/rollouts/ID), among
// them *Promote* for a shadow rollout that succeeded. A viewer sees no form
// and no action.

import {seg} from '../api.js';
import {badge, facts, h, link, percent, replaceLive, table, time} from '../dom.js';

export const id = 'rollouts';
export const title = 'Rollouts';

const ACTIONS = ['pending', 'notified', 'downloading', 'verifying', 'active', 'committed',
  'failed', 'rolled_back', 'cancelled'];

// Which operator action a rollout state allows (docs/rollouts.md).
const TRANSITIONS = {
  start: ['draft'],
  pause: ['running'],
  resume: ['paused'],
  abort: ['draft', 'running', 'paused'],
  rollback: ['running', 'paused', 'failed', 'succeeded'],
  promote: ['succeeded'], // shadow rollouts only (allowedActions)
};
// Actions that undo work on devices ask first.
const CONFIRM = {
  abort: 'Abort this rollout? Devices that have not committed the new version get their previous one back.',
  rollback: 'Roll this rollout back? Every device it reached gets its previous committed version again.',
  promote: 'Promote this shadow version? A production rollout of it starts over the same rings and policy.',
};

/** The slot a rollout targets; rollouts before shadow support have none. */
function slotOf(r) {
  return r.slot || 'production';
}

/** The actions an operator may take on a rollout in its state. */
export function allowedActions(r) {
  return Object.keys(TRANSITIONS).filter((a) => TRANSITIONS[a].includes(r.state) &&
    (a !== 'promote' || slotOf(r) === 'shadow'));
}

export function mount(ctx, params, container) {
  return params.length ? mountRollout(ctx, params[0], container) : mountList(ctx, container);
}

/** "default 2/2 ✓ · canary 0/1" : each ring's committed share, in order. */
function ringsSummary(r) {
  return h('span', {class: 'rings-summary'}, r.rings.map((ring, i) => [
    i ? ' · ' : '',
    h('span', {class: `ring-chip ring-${ring.state}`, title: `${ring.name}: ${ring.state}`},
      `${ring.name} ${ring.counts.committed}/${ring.devices}`)]));
}

function mountList(ctx, container) {
  const live = h('div', {id: 'rollouts-table'});
  const formHolder = h('div', {id: 'rollout-form-holder'});
  const newButton = ctx.canOperate
    ? h('button', {type: 'button', class: 'primary', id: 'new-rollout', 'aria-expanded': 'false',
      'aria-controls': 'rollout-form-holder', dataset: {action: 'new'}}, 'New rollout')
    : null;
  container.append(h('div', {class: 'page-head'}, h('h1', {}, 'Rollouts'), newButton), formHolder, live);
  if (newButton) {
    newButton.addEventListener('click', () => {
      const open = !formHolder.firstChild;
      formHolder.replaceChildren(open ? createForm(ctx, () => {
        formHolder.replaceChildren();
        newButton.setAttribute('aria-expanded', 'false');
        newButton.focus();
      }) : '');
      newButton.setAttribute('aria-expanded', String(open));
      if (open) formHolder.querySelector('select, input').focus();
    });
  }
  return {
    async refresh() {
      const doc = await ctx.api.get('/api/v1/rollouts');
      replaceLive(live, JSON.stringify(doc), () =>
        table('Rollouts', ['Rollout', 'Version', 'Slot', 'State', 'Rings', 'Created', 'Started', 'Finished'],
          doc.rollouts.map((r) => [
            link(`#/rollouts/${r.id}`, `#${r.id}`, `rollout-${r.id}`),
            link(`#/models/${seg(r.model)}/${r.version}`, `${r.model}@${r.version}`),
            slotOf(r),
            h('span', {title: r.reason || ''}, badge(r.state)),
            ringsSummary(r),
            time(r.created_at),
            time(r.started_at),
            time(r.finished_at),
          ]), {id: 'rollouts'}));
    },
  };
}

/** The form that creates a draft rollout; on success it opens the rollout. */
function createForm(ctx, close) {
  const model = h('select', {id: 'ro-model', name: 'model', required: true});
  const version = h('select', {id: 'ro-version', name: 'version', required: true});
  const rings = h('fieldset', {class: 'rings-pick'}, h('legend', {}, 'Rings, in order'));
  const number = (idName, value, attrs) => h('input', {id: idName, name: idName, type: 'number',
    value, required: true, ...attrs});
  const success = number('ro-success', '1', {min: 0, max: 1, step: 'any'});
  const error = number('ro-error', '0', {min: 0, max: 1, step: 'any'});
  const minDevices = number('ro-min-devices', '1', {min: 1, step: 1});
  const soak = number('ro-soak', '0', {min: 0, step: 1});
  const deadline = number('ro-deadline', '600', {min: 1, step: 1});
  const errGate = h('input', {id: 'ro-gate-error', type: 'number', min: 0, max: 1, step: 'any',
    placeholder: 'none'});
  const p99Gate = h('input', {id: 'ro-gate-p99', type: 'number', min: 0, step: 'any', placeholder: 'none'});
  const onBreach = h('select', {id: 'ro-on-breach'},
    h('option', {value: 'pause'}, 'pause the rollout'),
    h('option', {value: 'rollback'}, 'roll the rings back'));
  const supersede = h('input', {id: 'ro-supersede', type: 'checkbox'});
  const slot = h('select', {id: 'ro-slot'},
    h('option', {value: 'production'}, 'production'),
    h('option', {value: 'shadow'}, 'shadow'));
  const field = (label, input, help) => h('div', {class: 'field'},
    h('label', {for: input.id}, label), input, help ? h('small', {class: 'muted'}, help) : null);

  const form = h('form', {class: 'card rollout-form', id: 'rollout-form', 'aria-label': 'New rollout'},
    h('h2', {}, 'New rollout'),
    h('div', {class: 'grid'},
      field('Model', model),
      field('Version', version),
      field('Slot', slot, 'a shadow runs beside production and never answers; once it succeeds it can be promoted'),
      rings,
      field('Success share', success, 'a ring succeeds at committed/devices ≥ this'),
      field('Error share', error, 'a breach at failed/devices > this'),
      field('Minimum finished devices', minDevices, 'before the error share counts'),
      field('Soak, seconds', soak),
      field('Deadline, seconds', deadline),
      field('Gate: error rate at most', errGate, 'share 0..1, empty: no gate'),
      field('Gate: p99 latency at most, ms', p99Gate, 'empty: no gate'),
      field('On a breach', onBreach),
      h('div', {class: 'field check'}, supersede,
        h('label', {for: 'ro-supersede'}, 'Supersede: abort the model\'s running rollout first'))),
    h('div', {class: 'buttons'},
      h('button', {type: 'submit', class: 'primary', id: 'ro-create', dataset: {action: 'create'}}, 'Create rollout'),
      h('button', {type: 'button', on: {click: close}}, 'Cancel')));

  let models = [];
  (async () => {
    try {
      const [m, r] = await Promise.all([ctx.api.get('/api/v1/models'), ctx.api.get('/api/v1/rings')]);
      models = m.models.filter((x) => x.latest_version);
      model.replaceChildren(...models.map((x) => h('option', {value: x.name}, x.name)));
      const ordered = r.rings.slice().sort((a, b) => a.position - b.position || a.name.localeCompare(b.name));
      rings.append(...ordered.map((ring) => h('label', {class: 'check'},
        h('input', {type: 'checkbox', name: 'ring', value: ring.name, checked: true}),
        ` ${ring.name} `, h('span', {class: 'muted'}, `(${ring.devices} device${ring.devices === 1 ? '' : 's'})`))));
      fillVersions();
    } catch (e) {
      ctx.showError(e, {sticky: true});
    }
  })();

  function fillVersions() {
    const m = models.find((x) => x.name === model.value);
    const latest = m ? m.latest_version : 0;
    version.replaceChildren(...Array.from({length: latest}, (_, i) => latest - i)
      .map((v) => h('option', {value: v}, `v${v}`)));
  }
  model.addEventListener('change', fillVersions);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const chosen = [...rings.querySelectorAll('input[name=ring]:checked')].map((i) => i.value);
    const gates = [];
    if (errGate.value !== '') gates.push({metric: 'error_rate', max: Number(errGate.value)});
    if (p99Gate.value !== '') gates.push({metric: 'latency_p99_ms', max: Number(p99Gate.value)});
    const body = {
      model: model.value,
      version: Number(version.value),
      rings: chosen,
      policy: {
        success: Number(success.value),
        error: Number(error.value),
        min_devices: Number(minDevices.value),
        soak_s: Number(soak.value),
        deadline_s: Number(deadline.value),
        gates,
        on_breach: onBreach.value,
      },
    };
    if (supersede.checked) body.supersede = true;
    if (slot.value !== 'production') body.slot = slot.value;
    const created = await ctx.act(() => ctx.api.post('/api/v1/rollouts', body));
    if (created) location.hash = `#/rollouts/${created.id}`;
  });
  return form;
}

function mountRollout(ctx, rolloutId, container) {
  const head = h('div', {class: 'page-head'},
    h('h1', {}, `Rollout #${rolloutId}`), link('#/rollouts', '← all rollouts'));
  // A viewer gets no action bar at all, not an empty one.
  const actions = ctx.canOperate ? h('div', {class: 'actions', id: 'rollout-actions'}) : null;
  const live = h('div', {id: 'rollout-detail'});
  container.append(head, actions || '', live);
  let current = null;

  function drawActions(r) {
    if (!actions) return;
    const allowed = allowedActions(r);
    replaceLive(actions, allowed.join(','), () => h('div', {class: 'buttons'}, allowed.map((a) =>
      h('button', {type: 'button', class: ['start', 'resume', 'promote'].includes(a) ? 'primary' : (a === 'abort' || a === 'rollback' ? 'danger' : ''),
        id: `rollout-${a}`, dataset: {action: a, focusKey: `action-${a}`},
        on: {click: () => run(a)}}, a[0].toUpperCase() + a.slice(1)))));
  }

  async function run(action) {
    if (CONFIRM[action] && !window.confirm(CONFIRM[action])) return;
    const r = await ctx.act(() => ctx.api.post(`/api/v1/rollouts/${seg(rolloutId)}/${action}`));
    // Promote answers the new production rollout: follow it.
    if (r && String(r.id) !== String(rolloutId)) location.hash = `#/rollouts/${r.id}`;
    else if (r) draw(r);
  }

  function draw(r) {
    current = r;
    drawActions(r);
    replaceLive(live, JSON.stringify(r), () => h('div', {},
      facts([
        ['Version', link(`#/models/${seg(r.model)}/${r.version}`, `${r.model}@${r.version}`)],
        ['Slot', h('span', {id: 'rollout-slot'}, slotOf(r))],
        ['State', h('span', {id: 'rollout-state', dataset: {state: r.state}}, badge(r.state))],
        r.reason ? ['Reason', r.reason] : null,
        ['Created', time(r.created_at)],
        ['Started', time(r.started_at)],
        ['Finished', time(r.finished_at)],
        ['Policy', policyText(r.policy)],
      ]),
      h('h2', {}, 'Rings'),
      h('ol', {class: 'ring-list', id: 'rollout-rings'}, r.rings.map((ring) => ringCard(ring, r.policy)))));
  }

  return {
    async refresh() {
      draw(await ctx.api.get(`/api/v1/rollouts/${seg(rolloutId)}`));
    },
    get current() {
      return current;
    },
  };
}

function policyText(p) {
  const parts = [`success ≥ ${p.success}`, `error > ${p.error}`, `min ${p.min_devices} finished`,
    `soak ${p.soak_s} s`, `deadline ${p.deadline_s} s`, `on breach: ${p.on_breach}`];
  for (const g of p.gates || []) parts.push(`gate ${g.metric} ≤ ${g.max}`);
  return parts.join(' · ');
}

function ringCard(ring, policy) {
  const done = ring.devices ? ring.counts.committed / ring.devices : (ring.state === 'succeeded' ? 1 : 0);
  const failed = ring.counts.failed + ring.counts.rolled_back;
  const pending = Math.max(0, ring.devices - ring.counts.committed - failed);
  return h('li', {class: `card ring-card ring-${ring.state}`, dataset: {ring: ring.name, state: ring.state}},
    h('div', {class: 'ring-head'},
      h('h3', {}, `${ring.position}. ${ring.name}`), badge(ring.state)),
    h('progress', {class: 'progress', max: Math.max(ring.devices, 1),
      value: ring.devices ? ring.counts.committed : (ring.state === 'succeeded' ? 1 : 0),
      'aria-label': `${ring.name}: committed devices`}),
    h('p', {class: 'ring-progress'}, `${ring.counts.committed} of ${ring.devices} device${ring.devices === 1 ? '' : 's'} committed (${percent(done, 0)})` +
      (failed ? `, ${failed} failed` : '')),
    h('p', {class: 'tally', dataset: {committed: ring.counts.committed, failed, pending}},
      h('strong', {}, 'committed '), String(ring.counts.committed), ' · ',
      h('strong', {}, 'failed '), String(failed), ' · ',
      h('strong', {}, 'pending '), String(pending)),
    policy ? h('p', {class: 'muted thresholds'},
      `succeeds at ≥ ${percent(policy.success, 0)} committed; breach at > ${percent(policy.error, 0)} failed` +
      ` (after ${policy.min_devices} finished)` +
      (policy.gates || []).map((g) => `; gate ${g.metric} ≤ ${g.max}`).join('')) : null,
    h('p', {class: 'counts'}, ACTIONS.filter((a) => ring.counts[a]).map((a) =>
      h('span', {class: 'count'}, badge(a, 'badge-small'), ` ${ring.counts[a]}`))),
    h('p', {class: 'muted'}, 'started ', time(ring.started_at), ' · finished ', time(ring.finished_at)),
    ring.reason ? h('p', {class: ring.state === 'failed' ? 'reason reason-bad' : 'reason'},
      h('span', {class: 'muted'}, 'why: '), ring.reason) : null);
}
