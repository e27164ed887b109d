// How the dashboard talks to the daemon: every call goes through `request`, so the
// admin key that access control will bring is added in one place (`authHeaders`).
// Live streams are read with fetch (not EventSource) for the same reason: EventSource
// cannot send an Authorization header.

const KEY_STORAGE = 'claudeflare.adminKey';

/** The headers every call carries. The one place to add credentials. */
function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Stores (or with null clears) the admin key sent as `Authorization: Bearer`. */
export function setAdminKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** Tells the page that the API wants an admin key (app.js shows the prompt). */
function askForKey() {
  window.dispatchEvent(new CustomEvent('claudeflare:needkey'));
}

/** An error answer of the API (`{"error":{"type","message"}}`) or a network failure. */
export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = type;
  }
}

/**
 * Calls the API. `body` is sent as JSON. Resolves with the parsed answer; rejects
 * with an ApiError whose message is fit to show. `accept` lists extra statuses that
 * count as answers (for /health's 503).
 */
export async function request(path, { method = 'GET', body, signal, accept = [] } = {}) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The daemon did not answer. Is it still running?');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.status === 401) askForKey();
  if (!res.ok && !accept.includes(res.status)) {
    const err = data && data.error;
    const message = err && err.message
      ? err.message
      : `${method} ${path} failed: ${res.status} ${res.statusText || ''}`.trim();
    throw new ApiError(res.status, (err && err.type) || 'http_error', message);
  }
  return data;
}

export const get = (path, opts) => request(path, opts);
export const post = (path, body = {}, opts) => request(path, { ...opts, method: 'POST', body });
export const del = (path, opts) => request(path, { ...opts, method: 'DELETE' });

/** Encodes an id for a path segment. */
export const seg = (id) => encodeURIComponent(id);

/**
 * Follows a server-sent event stream. Calls `onEvent(name, data)` for each event
 * (data parsed as JSON when it is JSON) and `onState('open'|'closed'|'error', why)`.
 * Reconnects by itself (1 s, doubling to 30 s). Returns `{ close() }`.
 */
export function stream(path, onEvent, onState = () => {}) {
  let stopped = false;
  let controller = null;
  let delay = 1000;
  let timer = null;

  const dispatch = (block) => {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    const text = data.join('\n');
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: hand over the text */
    }
    onEvent(name, parsed);
  };

  const connect = async () => {
    controller = new AbortController();
    try {
      const res = await fetch(path, {
        headers: { Accept: 'text/event-stream', ...authHeaders() },
        signal: controller.signal,
        cache: 'no-store',
      });
      if (res.status === 401) askForKey();
      if (!res.ok || !res.body) {
        let message = `${res.status} ${res.statusText}`;
        try {
          const err = (await res.json()).error;
          if (err && err.message) message = err.message;
        } catch {
          /* keep the status line */
        }
        throw new ApiError(res.status, 'stream', message);
      }
      onState('open');
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          dispatch(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
      if (!stopped) onState('closed', 'The live feed ended; reconnecting.');
    } catch (e) {
      if (stopped || e.name === 'AbortError') return;
      onState('error', e instanceof ApiError ? e.message : 'The live feed was cut; reconnecting.');
    }
    if (!stopped) {
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    }
  };
  connect();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      if (controller) controller.abort();
    },
  };
}
