// Small helpers: building elements, formatting numbers and times, messages, copying.

/**
 * Builds an element: h('button', {class: 'x', onclick: f}, 'text', child).
 * Attributes starting with "on" become listeners; `dataset`-style keys (data-*) and
 * aria-* are set as attributes; `null`/`false` attributes and children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    else if (k in el && !k.includes('-') && !(el instanceof SVGElement)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const nf = new Intl.NumberFormat();
export const num = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : nf.format(Math.round(n)));

/** 1234 → 1.2K, 3400000 → 3.4M. */
export function compact(n) {
  if (n === null || n === undefined) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}K`;
  return nf.format(Math.round(n * 100) / 100);
}

export function usd(n) {
  if (n === null || n === undefined) return '—';
  if (n !== 0 && Math.abs(n) < 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toFixed(2)}`;
}

export function pct(n, digits = 1) {
  return n === null || n === undefined ? '—' : `${n.toFixed(digits)}%`;
}

export function ms(n) {
  if (n === null || n === undefined) return '—';
  if (n >= 10000) return `${(n / 1000).toFixed(1)} s`;
  if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
  return `${Math.round(n)} ms`;
}

export function tps(n) {
  if (n === null || n === undefined) return '—';
  return `${n >= 1000 ? compact(n) : n.toFixed(1)} tok/s`;
}

/** A duration in seconds as "2h 05m", "4m 10s", "12s". */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${String(mm).padStart(2, '0')}m`;
  if (mm) return `${mm}m ${String(ss).padStart(2, '0')}s`;
  return `${ss}s`;
}

/** The time left until an RFC 3339 instant, or null when it has passed. */
export function until(iso) {
  if (!iso) return null;
  const left = (Date.parse(iso) - Date.now()) / 1000;
  return left > 0 ? duration(left) : null;
}

export function ago(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 5) return 'just now';
  return `${duration(s)} ago`;
}

export function clock(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString();
}

/** A <time> element whose text is the local time and whose title is the full date. */
export function timeEl(iso, text = clock(iso)) {
  return h('time', { datetime: iso, title: dateTime(iso) }, text);
}

/** Shows a message in the corner: kind is 'error' or 'ok'. Errors stay until closed. */
export function notify(message, kind = 'ok') {
  const region = document.getElementById('toasts');
  const close = () => item.remove();
  const item = h(
    'div',
    { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', {}, message),
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: close }, '×'),
  );
  region.append(item);
  if (kind !== 'error') setTimeout(close, 4000);
  return item;
}

/** Shows an error in plain words (an ApiError's message is already plain). */
export function showError(prefix, err) {
  if (err && err.name === 'AbortError') return;
  const why = err && err.message ? err.message : String(err);
  console.warn(prefix, err);
  notify(`${prefix}: ${why}`, 'error');
}

/** An inline error box with a retry button. */
export function errorBox(message, retry) {
  return h(
    'div',
    { class: 'error-box', role: 'alert' },
    h('span', {}, message),
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null,
  );
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h('textarea', { class: 'offscreen', 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

/** A button that copies what `get()` returns. */
export function copyButton(get, label = 'Copy') {
  const btn = h('button', { type: 'button', class: 'small copy' }, label);
  btn.addEventListener('click', async () => {
    try {
      await copyText(typeof get === 'function' ? get() : get);
      btn.textContent = 'Copied';
      setTimeout(() => { btn.textContent = label; }, 1500);
    } catch (e) {
      showError('Could not copy', e);
    }
  });
  return btn;
}

/** Runs `fn` with the button disabled, showing errors. */
export async function busy(button, fn, errorPrefix = 'That did not work') {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(errorPrefix, e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** A <select> from [value, label] pairs. */
export function select(options, value, attrs = {}) {
  const s = h('select', attrs);
  for (const [v, label] of options) s.append(h('option', { value: v }, label));
  if (value !== undefined) s.value = value;
  return s;
}

/** Opens a modal dialog; resolves with the dialog's returnValue when it closes. */
export function modal(title, body, actions) {
  const dlg = h(
    'dialog',
    { class: 'modal', 'aria-labelledby': 'modal-title' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'modal-title' }, title),
      body,
      h('div', { class: 'actions' }, actions)),
  );
  document.body.append(dlg);
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue);
      dlg.remove();
    });
  });
}

/** Calls fn every `ms` while the page is visible; returns a stop function. */
export function every(msInterval, fn) {
  const id = setInterval(() => {
    if (!document.hidden) fn();
  }, msInterval);
  return () => clearInterval(id);
}
