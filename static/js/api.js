// The REST API of docs/DESIGN.md section 6, as the dashboard uses it.
// Cookie sessions: every unsafe request carries X-Requested-With (CSRF).

export const API = '/api/v1';

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const detail = (body && body.error) || {};
    super(detail.message || fallback || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = detail.code || (status === 0 ? 'network' : 'http');
    this.field = detail.field || null;
  }
}

let onUnauthorized = () => {};
/** Called with the failing path when a request answers 401. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export async function request(method, path, { body, query, raw, signal, quiet401 } = {}) {
  let url = path.startsWith('/') ? path : `${API}/${path}`;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
    }
    const s = qs.toString();
    if (s) url += `?${s}`;
  }
  const headers = { Accept: raw ? '*/*' : 'application/json' };
  if (UNSAFE.has(method)) headers['X-Requested-With'] = 'testarena';
  const init = { method, headers, credentials: 'same-origin', signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, null, 'The server cannot be reached. Check your connection.');
  }
  if (!res.ok) {
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    const err = new ApiError(res.status, data, res.statusText);
    if (res.status === 429 || res.status === 503) {
      err.retryAfter = Number(res.headers.get('Retry-After')) || null;
    }
    if (res.status === 401 && !quiet401) onUnauthorized(path);
    throw err;
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body, opts) => request('POST', path, { ...opts, body });
export const patch = (path, body, opts) => request('PATCH', path, { ...opts, body });
export const del = (path, opts) => request('DELETE', path, opts);

export const enc = encodeURIComponent;

/** A log path `tasks/t1/unit.log` as a URL path, each component encoded. */
export function logUrl(queueId, path) {
  return `${API}/queues/${enc(queueId)}/logs/${path.split('/').map(enc).join('/')}`;
}

export function junitUrl(queueId) {
  return `${API}/queues/${enc(queueId)}/junit.xml`;
}

/**
 * Server-Sent Events of one queue, reconnecting with back-off.
 * `handlers`: {status(queue), log(chunk), end(data), open(), error(), reconnect()}.
 * `reconnect()` is called before a new connection so the owner can resync
 * and may return new query parameters.
 * Returns {close()}.
 */
export function queueEvents(queueId, query, handlers) {
  let es = null;
  let closed = false;
  let timer = null;
  let delay = 1000;
  let params = query || {};

  const open = () => {
    if (closed) return;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null) qs.set(k, String(v));
    }
    const s = qs.toString();
    es = new EventSource(`${API}/queues/${enc(queueId)}/events${s ? `?${s}` : ''}`);
    es.addEventListener('open', () => {
      delay = 1000;
      handlers.open && handlers.open();
    });
    es.addEventListener('status', (ev) => {
      handlers.status && handlers.status(JSON.parse(ev.data));
    });
    es.addEventListener('log', (ev) => {
      handlers.log && handlers.log(JSON.parse(ev.data));
    });
    es.addEventListener('end', (ev) => {
      stop();
      handlers.end && handlers.end(JSON.parse(ev.data));
    });
    es.addEventListener('error', () => {
      // The stream broke (or the server ended it without `end`): never
      // let EventSource replay from the old offset; resync, then reopen.
      if (es) es.close();
      es = null;
      if (closed) return;
      handlers.error && handlers.error();
      retry();
    });
  };

  // Resync first (the owner re-reads what it missed), then reopen; while
  // the server is away, keep trying with a growing delay.
  const retry = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (closed) return;
      let next = null;
      try {
        next = handlers.reconnect ? await handlers.reconnect() : null;
      } catch {
        delay = Math.min(delay * 2, 15000);
        retry();
        return;
      }
      if (closed) return;
      if (next === false) {
        stop();
        return;
      }
      if (next) params = next;
      delay = Math.min(delay * 2, 15000);
      open();
    }, delay);
  };

  const stop = () => {
    closed = true;
    clearTimeout(timer);
    if (es) es.close();
    es = null;
  };

  open();
  return { close: stop };
}

export const QUEUE_STATUSES = ['waiting', 'running', 'passed', 'failed', 'error', 'aborted'];
export const FINAL = new Set(['passed', 'failed', 'error', 'aborted', 'skipped']);
export const isFinal = (s) => FINAL.has(s);
