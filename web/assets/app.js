// app.js - the dashboard's shell: sign-in, the role probe, hash routing
// (#/fleet, #/models, #/rollouts, #/monitoring, #/telemetry, #/audit), the one-line error
// bar and the 2-second refresh of the page on screen.

import {Api, ApiError, probeRole} from './api.js';
import {h} from './dom.js';
import * as fleet from './pages/fleet.js';
import * as models from './pages/models.js';
import * as rollouts from './pages/rollouts.js';
import * as monitoring from './pages/monitoring.js';
import * as telemetry from './pages/telemetry.js';
import * as audit from './pages/audit.js';

const REFRESH_MS = 2000;
const TOKEN_KEY = 'edgefleet.token';

// Each page: {id, title, adminOnly?, mount(ctx, params) -> {refresh(), unmount?()}}.
const PAGES = [fleet, models, rollouts, monitoring, telemetry, audit];

const ROLE_RANK = {viewer: 1, operator: 2, admin: 3};

const el = {
  nav: document.getElementById('nav'),
  session: document.getElementById('session'),
  main: document.getElementById('main'),
  error: document.getElementById('error'),
  updated: document.getElementById('updated'),
};

const state = {
  api: null,        // Api of the signed-in token, or null
  role: null,       // 'viewer' | 'operator' | 'admin'
  page: null,       // what mount() returned for the page on screen
  generation: 0,    // bumped at every navigation; stale refresh loops stop
  timer: null,      // the pending refresh
  stickyError: false, // the error on screen came from an action, not a refresh
};

// ---- the error line ---------------------------------------------------------

/** Shows an error in the one-line bar. Errors of the user's actions stay until
 * the next action or page; errors of a refresh go with the next good one. */
function showError(err, {sticky = false} = {}) {
  const text = err instanceof ApiError ? err.line() : String(err && err.message ? err.message : err);
  el.error.textContent = text;
  el.error.title = text;
  el.error.hidden = false;
  state.stickyError = sticky;
}

function clearError({sticky = false} = {}) {
  if (state.stickyError && !sticky) return;
  el.error.hidden = true;
  el.error.textContent = '';
  state.stickyError = false;
}

// ---- sign-in ---------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.api = null;
  state.role = null;
  stopPage();
  renderSignIn(message);
}

function renderSignIn(message) {
  el.nav.replaceChildren();
  el.session.replaceChildren();
  el.updated.textContent = '';
  clearError({sticky: true});
  const input = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'off',
    spellcheck: 'false', required: true, placeholder: 'efa_…', 'aria-describedby': 'token-help'});
  const form = h('form', {class: 'card signin', id: 'signin'},
    h('h1', {}, 'Sign in'),
    h('label', {for: 'token'}, 'API token'),
    input,
    h('p', {id: 'token-help', class: 'muted'},
      'An API token (viewer, operator or admin), as made by edgefleet-server init or ',
      h('code', {}, 'POST /api/v1/tokens'), '. It is kept in this tab only (session storage).'),
    h('button', {type: 'submit', class: 'primary'}, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    try {
      await startSession(token);
      if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/fleet';
      else route();
    } catch (e) {
      showError(e, {sticky: true});
      input.focus();
    }
  });
  el.main.replaceChildren(form);
  if (message) showError(message, {sticky: true});
  input.focus();
}

/** Checks the token (a viewer read), finds its role, keeps it for the tab. */
async function startSession(token) {
  const api = new Api(token, () => signOut('The token was refused (401): sign in again.'));
  await api.get('/api/v1/models');
  const role = await probeRole(api);
  sessionStorage.setItem(TOKEN_KEY, token);
  state.api = api;
  state.role = role;
  clearError({sticky: true});
  renderChrome();
}

function renderChrome() {
  el.nav.replaceChildren(...PAGES.filter(allowed).map((p) =>
    h('a', {href: `#/${p.id}`, dataset: {page: p.id}}, p.title)));
  el.session.replaceChildren(
    h('span', {class: `badge badge-role`, id: 'role', title: 'the role of this token'}, state.role),
    h('button', {type: 'button', id: 'signout', on: {click: () => signOut()}}, 'Sign out'));
}

function allowed(page) {
  return !page.adminOnly || state.role === 'admin';
}

// ---- routing and refresh ---------------------------------------------------------

function stopPage() {
  state.generation++;
  clearTimeout(state.timer);
  if (state.page && state.page.unmount) state.page.unmount();
  state.page = null;
}

function route() {
  if (!state.api) return;
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean)
    .map((p) => decodeURIComponent(p));
  const page = PAGES.find((p) => p.id === parts[0]);
  if (!page || !allowed(page)) {
    location.replace('#/fleet');
    return;
  }
  stopPage();
  clearError({sticky: true});
  for (const a of el.nav.querySelectorAll('a')) {
    if (a.dataset.page === page.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const generation = state.generation;
  const ctx = {
    api: state.api,
    role: state.role,
    /** Whether this token may change things (operator or admin). */
    canOperate: ROLE_RANK[state.role] >= ROLE_RANK.operator,
    isAdmin: state.role === 'admin',
    showError,
    clearError,
    /** Runs an operator action: clears the last action error, shows a new one. */
    async act(fn) {
      clearError({sticky: true});
      try {
        const result = await fn();
        refreshSoon(generation, 0);
        return result;
      } catch (e) {
        showError(e, {sticky: true});
        return undefined;
      }
    },
    /** Asks for a refresh now (after a filter changed). */
    refresh: () => refreshSoon(generation, 0),
  };
  const container = h('section', {class: 'page', id: `page-${page.id}`});
  el.main.replaceChildren(container);
  document.title = `${page.title} · edgefleet`;
  state.page = page.mount(ctx, parts.slice(1), container);
  refreshSoon(generation, 0);
}

function refreshSoon(generation, delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => refreshLoop(generation), delay);
}

async function refreshLoop(generation) {
  if (generation !== state.generation || !state.page) return;
  if (!document.hidden) {
    try {
      await state.page.refresh();
      if (generation !== state.generation) return;
      clearError();
      el.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (generation !== state.generation) return;
      if (!(e instanceof ApiError && e.status === 401)) showError(e);
    }
  }
  if (generation === state.generation) refreshSoon(generation, REFRESH_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.page) refreshSoon(state.generation, 0);
});

window.addEventListener('hashchange', route);

// The skip link moves focus to the page without touching the hash (which is
// the router's).
document.querySelector('.skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  el.main.focus();
});

// A page module that throws outside a refresh still reaches the error line.
window.addEventListener('unhandledrejection', (ev) => showError(ev.reason, {sticky: true}));

async function boot() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    renderSignIn();
    return;
  }
  try {
    await startSession(token);
    if (!location.hash || location.hash === '#/') location.replace('#/fleet');
    else route();
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    renderSignIn(e);
  }
}

boot();
