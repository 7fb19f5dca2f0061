// pages/audit.js - the audit log (admin): every change and every refusal,
// newest first (#/audit), and older pages (#/audit/before/ID), which do not
// move while being read.

import {badge, h, link, replaceLive, table, time} from '../dom.js';

export const id = 'audit';
export const title = 'Audit';
export const adminOnly = true;

const PAGE = 100;

export function mount(ctx, params, container) {
  const before = params[0] === 'before' && /^[1-9][0-9]*$/.test(params[1] || '') ? params[1] : null;
  const outcome = h('select', {id: 'audit-outcome'}, h('option', {value: ''}, 'all'),
    ['ok', 'refused', 'rejected', 'failed', 'aborted'].map((o) => h('option', {value: o}, o)));
  const live = h('div', {id: 'audit-table'});
  const pager = h('p', {class: 'buttons', id: 'audit-pager'});
  container.append(
    h('div', {class: 'page-head'}, h('h1', {}, 'Audit log'),
      before ? link('#/audit', '← newest') : null),
    h('form', {class: 'filters', on: {submit: (e) => e.preventDefault()}},
      h('label', {}, 'Outcome ', outcome)),
    live, pager);
  let entries = [];
  let frozen = false; // an older page is read once: it cannot change

  outcome.addEventListener('input', draw);

  function draw() {
    const shown = entries.filter((e) => !outcome.value || e.outcome === outcome.value);
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
      draw();
    },
  };
}
