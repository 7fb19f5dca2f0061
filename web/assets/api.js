// api.js - the dashboard's one door to edgefleet's REST API (/api/v1, same
// origin): the bearer token, JSON in and out, the API's error shape, a
// conditional-GET cache for answers that carry an ETag, and the role probe.

/** An error answer of the API, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(method, path, status, code, message) {
    super(message);
    this.method = method;
    this.path = path;
    this.status = status;
    this.code = code;
  }

  /** One readable line: "POST /api/v1/rollouts: 409 conflict: ..." */
  line() {
    const what = this.status ? `${this.status} ${this.code}` : this.code;
    return `${this.method} ${this.path}: ${what}: ${this.message}`;
  }
}

export class Api {
  /**
   * token: the API token (sent as Authorization: Bearer).
   * onUnauthenticated: called once a request answers 401 (the token was
   * revoked or the server forgot it), so the app can sign out.
   */
  constructor(token, onUnauthenticated) {
    this.token = token;
    this.onUnauthenticated = onUnauthenticated;
    this.cache = new Map(); // path -> {etag, data}: answers that carried an ETag
  }

  async request(method, path, body) {
    const headers = {Authorization: `Bearer ${this.token}`, Accept: 'application/json'};
    const init = {method, headers, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const cached = method === 'GET' ? this.cache.get(path) : undefined;
    if (cached) headers['If-None-Match'] = cached.etag;
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(method, path, 0, 'network_error', 'the server cannot be reached');
    }
    if (resp.status === 304 && cached) return cached.data;
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!resp.ok) {
      const err = data && data.error ? data.error : {code: 'http_error', message: resp.statusText};
      if (resp.status === 401 && this.onUnauthenticated) this.onUnauthenticated();
      throw new ApiError(method, path, resp.status, err.code, err.message);
    }
    const etag = resp.headers.get('ETag');
    if (method === 'GET' && etag) this.cache.set(path, {etag, data});
    return data;
  }

  get(path) {
    return this.request('GET', path);
  }

  post(path, body) {
    return this.request('POST', path, body);
  }

  del(path) {
    return this.request('DELETE', path);
  }
}

/**
 * Finds the token's role without a route for it, from what the API refuses:
 * an admin may read the audit log (GET /api/v1/audit?limit=1 is 200; any
 * other token gets 403); an operator may create rollouts, so an empty
 * POST /api/v1/rollouts is 400 (no body) for an operator and 403 for a
 * viewer, decided before any body is read and changing nothing. Both
 * refusals are audited as such by the server. Returns 'admin', 'operator'
 * or 'viewer'; throws the ApiError of anything else (401: a bad token).
 */
export async function probeRole(api) {
  try {
    await api.get('/api/v1/audit?limit=1');
    return 'admin';
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) throw e;
  }
  try {
    await api.request('POST', '/api/v1/rollouts');
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) return 'operator';
    if (e instanceof ApiError && e.status === 403) return 'viewer';
    throw e;
  }
  // A 2xx cannot happen for an empty body; treat it as the weaker role.
  return 'viewer';
}

/** Encodes one path segment. */
export function seg(s) {
  return encodeURIComponent(String(s));
}
