// dom.js - building the page: an element helper that never parses HTML (every
// value from the API lands as text), formatters, state badges, and a
// replace-in-place that keeps keyboard focus across the 2-second refreshes.

/**
 * h('a', {href: '#/fleet', class: 'x'}, 'text', child, [more]) -> Element.
 * Attributes: `class`, `dataset` (object), `on` (object of event -> handler),
 * booleans (true sets the attribute, false/null/undefined leaves it out),
 * anything else becomes an attribute. Children: strings and numbers become
 * text nodes; null, undefined and false are skipped; arrays are flattened.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'on') {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * Replaces the content of container with node, unless the new content is the
 * same as what is shown (same `key`, usually the JSON it was drawn from), so
 * that a refresh that changed nothing touches nothing. When it does replace,
 * the element that had focus is found again by its data-focus-key and
 * focused, so a keyboard user is not thrown back to the top every 2 s.
 */
export function replaceLive(container, key, build) {
  if (container.dataset.liveKey === key) return false;
  const active = document.activeElement;
  const focusKey = active && container.contains(active) ? active.dataset.focusKey : null;
  container.replaceChildren(build());
  container.dataset.liveKey = key;
  if (focusKey) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
  return true;
}

/** A state as a badge: the word is always there, the colour only helps. */
export function badge(state, extraClass) {
  const s = state === null || state === undefined ? 'none' : String(state);
  return h('span', {class: `badge badge-${s.replace(/[^a-z_]/g, '')} ${extraClass || ''}`.trim()}, s);
}

/** online/offline with a dot that is not the only carrier of meaning. */
export function onlineBadge(online) {
  return h('span', {class: online ? 'badge badge-online' : 'badge badge-offline'},
    online ? 'online' : 'offline');
}

/** RFC 3339 -> local "YYYY-MM-DD HH:MM:SS", with the full value as a tooltip. */
export function time(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  const pad = (n) => String(n).padStart(2, '0');
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', {datetime: iso, title: iso}, text);
}

/** Unix ms -> "2026-01-02T03:04:05Z" (whole seconds, UTC), as the API's
 * since/until take it. */
export function rfc3339(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "3 s ago", "5 min ago", ... for a timestamp, or an em dash. */
export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A number for a table: fixed digits, or an em dash for null. */
export function num(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return Number.isInteger(v) && digits === 0 ? String(v) : Number(v).toFixed(digits);
}

export function percent(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return `${(v * 100).toFixed(digits)} %`;
}

/** A table with a header row; rows are arrays of cells (Nodes or text). */
export function table(caption, headers, rows, attrs = {}) {
  return h('div', {class: 'table-wrap'},
    h('table', attrs,
      caption ? h('caption', {class: 'visually-hidden'}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((th) => h('th', {scope: 'col'}, th)))),
      h('tbody', {}, rows.length
        ? rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))
        : h('tr', {}, h('td', {colspan: headers.length, class: 'muted'}, 'Nothing yet.')))));
}

/** A description list from [term, value] pairs. */
export function facts(pairs) {
  return h('dl', {class: 'facts'},
    pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function link(href, text, focusKey) {
  return h('a', {href, dataset: focusKey ? {focusKey} : undefined}, text);
}
