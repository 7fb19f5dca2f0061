// pages/audit.js - the audit log (admin): every change and every refusal,
// newest first (#/audit), and older pages (#/audit/before/ID), which do not
// move while being read; filtered in the page by outcome, actor, action and
// a text search over the target and detail.

import {badge, h, link, replaceLive, table, time} from '../dom.js';

export const id = 'audit';
export const title = 'Audit';
export const adminOnly = true;

const PAGE = 100;

export function mount(ctx, params, container) {
  const before = params[0] === 'before' && /^[1-9][0-9]*$/.test(params[1] || '') ? params[1] : null;
  const outcome = h('select', {id: 'audit-outcome'}, h('option', {value: ''}, 'all'),
    ['ok', 'refused', 'rejected', 'failed', 'aborted'].map((o) => h('option', {value: o}, o)));
  const actor = h('select', {id: 'audit-actor'}, h('option', {value: ''}, 'all'));
  const action = h('select', {id: 'audit-action'}, h('option', {value: ''}, 'all'));
  const search = h('input', {type: 'search', id: 'audit-search', placeholder: 'target, detail…',
    autocomplete: 'off'});
  const summary = h('p', {class: 'summary', id: 'audit-summary'});
  const live = h('div', {id: 'audit-table'});
  const pager = h('p', {class: 'buttons', id: 'audit-pager'});
  container.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Audit log'),
      before ? link('#/audit', '← newest') : null),
    h('form', {class: 'filters', role: 'search', on: {submit: (e) => e.preventDefault()}},
      h('label', {}, 'Outcome ', outcome),
      h('label', {}, 'Actor ', actor),
      h('label', {}, 'Action ', action),
      h('label', {}, 'Search ', search)),
    summary, live, pager);
  let entries = [];
  let frozen = false; // an older page is read once: it cannot change

  for (const input of [outcome, actor, action, search]) input.addEventListener('input', draw);

  /** Offers the values present (and the one chosen), keeping the choice. */
  function fill(select, values) {
    const keep = select.value;
    const want = keep && !values.includes(keep) ? [...values, keep] : values;
    const have = [...select.options].map((o) => o.value).slice(1);
    if (JSON.stringify(have) === JSON.stringify(want)) return;
    select.replaceChildren(h('option', {value: ''}, 'all'), ...want.map((v) => h('option', {value: v}, v)));
    select.value = keep;
  }

  function draw() {
    const q = search.value.trim().toLowerCase();
    const shown = entries.filter((e) => (!outcome.value || e.outcome === outcome.value) &&
      (!actor.value || e.actor === actor.value) && (!action.value || e.action === action.value) &&
      (!q || `${e.target || ''} ${e.detail || ''} ${e.action}`.toLowerCase().includes(q)));
    summary.textContent = `${entries.length} entries on this page` +
      (shown.length !== entries.length ? `, ${shown.length} shown` : '');
    replaceLive(live, JSON.stringify([shown]), () =>
      table('Audit entries', ['#', 'Time', 'Actor', 'Action', 'Target', 'Outcome', 'Status', 'Detail'],
        shown.map((e) => [String(e.id), time(e.ts), e.actor, h('code', {}, e.action), e.target || '—',
          badge(e.outcome), String(e.status), e.detail || '—']), {id: 'audit'}));
    const last = entries[entries.length - 1];
    pager.replaceChildren(entries.length === PAGE && last
      ? link(`#/audit/before/${last.id}`, 'Older entries →') : '');
  }

  return {
    async refresh() {
      if (frozen) return;
      const doc = await ctx.api.get(`/api/v1/audit?limit=${PAGE}${before ? `&before=${before}` : ''}`);
      entries = doc.entries;
      frozen = Boolean(before);
      fill(actor, [...new Set(entries.map((e) => e.actor))].sort());
      fill(action, [...new Set(entries.map((e) => e.action))].sort());
      draw();
    },
  };
}
