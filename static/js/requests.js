// Requests: the history with filters, new rows arriving live from
// /api/requests/stream, and a detail view of one request.

import * as api from './api.js';
import {
  h, fill, num, usd, ms, tps, timeEl, dateTime, field, select, errorBox, showError, copyButton,
} from './util.js';
import { conversation, response, headers, codeBlock } from './conversation.js';

const PAGE = 100;
let els = {};
let rows = [];
let live = null;
let paused = false;
let missed = 0;
const filters = { account: '', model: '', status: '' };

function query(before) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (before) q.set('before', before);
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  return `/api/requests?${q}`;
}

function matches(r) {
  if (filters.account && r.accountName !== filters.account && r.accountId !== filters.account) return false;
  if (filters.model && r.model !== filters.model) return false;
  if (filters.status === 'success' && !r.success) return false;
  if (filters.status === 'error' && r.success) return false;
  return true;
}

async function load() {
  try {
    const got = await api.get(query());
    // Keep rows that arrived live while this page was loading (the history is
    // written in batches, so it can lag the live feed by a moment).
    const newest = got.length ? got[0].timestamp : '';
    const early = rows.filter((r) => r.timestamp >= newest && matches(r) && !got.some((x) => x.id === r.id));
    rows = early.concat(got);
    els.error.replaceChildren();
    render();
    refreshFilterOptions();
  } catch (e) {
    fill(els.error, errorBox(`Could not load the requests: ${e.message}`, load));
  }
}

async function more(btn) {
  if (!rows.length) return;
  btn.disabled = true;
  try {
    const older = await api.get(query(rows[rows.length - 1].id));
    rows = rows.concat(older);
    render();
    if (older.length < PAGE) btn.hidden = true;
  } catch (e) {
    showError('Could not load older requests', e);
  } finally {
    btn.disabled = false;
  }
}

function tokens(r) {
  const total = (r.inputTokens || 0) + (r.outputTokens || 0) + (r.cacheReadInputTokens || 0) + (r.cacheCreationInputTokens || 0);
  return total ? num(total) : '—';
}

function status(r) {
  const text = r.statusCode ? String(r.statusCode) : 'no answer';
  return h('span', { class: `badge ${r.success ? 'ok' : 'bad'}`, title: r.errorMessage || '' }, r.success ? text : `${text} ✕`);
}

function row(r, fresh) {
  const open = h('button', { type: 'button', class: 'link', 'aria-label': `Details of the request at ${dateTime(r.timestamp)}`, onclick: () => detail(r.id) }, timeEl(r.timestamp));
  return h('tr', { 'data-id': r.id, class: fresh ? 'fresh' : '' },
    h('td', {}, open),
    h('td', {}, r.accountName),
    h('td', {}, r.model || '—'),
    h('td', {}, status(r)),
    h('td', { class: 'num' }, ms(r.responseTimeMs)),
    h('td', { class: 'num' }, tokens(r)),
    h('td', { class: 'num' }, usd(r.costUsd)),
    h('td', { class: 'num' }, r.failoverAttempts || ''));
}

function render() {
  if (!rows.length) {
    fill(els.body, h('tr', {}, h('td', { colspan: '8', class: 'muted' }, 'No requests yet. Send one through the proxy and it appears here at once.')));
    return;
  }
  fill(els.body, rows.map((r) => row(r)));
}

function onLive(name, r) {
  if (name !== 'request' || !r || !r.id) return;
  if (paused) {
    missed += 1;
    els.liveNote.textContent = `${missed} new while paused`;
    return;
  }
  if (!matches(r) || rows.some((x) => x.id === r.id)) return;
  rows.unshift(r);
  if (rows.length === 1) els.body.replaceChildren();
  els.body.prepend(row(r, true));
}

function setLiveState(state, why) {
  els.live.className = `pill ${state === 'open' ? 'ok' : 'degraded'}`;
  els.live.textContent = state === 'open' ? 'Live' : 'Reconnecting';
  els.live.title = why || '';
}

let knownModels = new Set();
let knownAccounts = new Set();
function refreshFilterOptions() {
  for (const r of rows) {
    if (r.model) knownModels.add(r.model);
    if (r.accountName) knownAccounts.add(r.accountName);
  }
  const sync = (sel, values, allLabel) => {
    const v = sel.value;
    fill(sel, h('option', { value: '' }, allLabel), [...values].sort().map((x) => h('option', { value: x }, x)));
    sel.value = v;
  };
  sync(els.account, knownAccounts, 'All accounts');
  sync(els.model, knownModels, 'All models');
}

async function detail(id) {
  const panel = els.detail;
  panel.hidden = false;
  fill(panel, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const r = await api.get(`/api/requests/${api.seg(id)}`);
    renderDetail(r);
  } catch (e) {
    fill(panel, errorBox(`Could not load request ${id}: ${e.message}`, () => detail(id)), closeButton());
  }
  panel.focus();
}

function closeButton() {
  return h('button', { type: 'button', class: 'small', onclick: () => { els.detail.hidden = true; } }, 'Close');
}

function renderDetail(r) {
  const p = r.payload;
  const kv = (pairs) => h('dl', { class: 'kv' }, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const sections = [
    h('div', { class: 'detail-head' },
      h('h2', { id: 'detail-title' }, `${r.method} ${r.path}`),
      h('div', {}, copyButton(r.id, 'Copy id'), ' ', copyButton(() => JSON.stringify(r, null, 2), 'Copy all as JSON'), ' ', closeButton())),
    h('div', { class: 'grid3' },
      h('div', { class: 'card' }, h('h3', {}, 'Outcome'), kv([
        ['When', dateTime(r.timestamp)],
        ['Status', status(r)],
        ['Account', r.accountName],
        ['Model', r.model || '—'],
        r.errorMessage ? ['Error', r.errorMessage] : null,
        ['Failovers', String(r.failoverAttempts)],
        ['Streamed', r.stream ? 'yes' : 'no'],
      ])),
      h('div', { class: 'card' }, h('h3', {}, 'Timings'), kv([
        ['Total', ms(r.responseTimeMs)],
        ['First token', ms(r.timeToFirstTokenMs)],
        ['Output speed', tps(r.outputTokensPerSecond)],
      ])),
      h('div', { class: 'card' }, h('h3', {}, 'Tokens and cost'), kv([
        ['Input', num(r.inputTokens)],
        ['Output', num(r.outputTokens)],
        ['Cache read', num(r.cacheReadInputTokens)],
        ['Cache write', num(r.cacheCreationInputTokens)],
        ['Cost', usd(r.costUsd)],
      ]))),
  ];
  if (!p) {
    sections.push(h('p', { class: 'muted' }, 'No payload was stored for this request (payload storage off, or past retention).'));
  } else {
    if (p.truncated) sections.push(h('p', { class: 'error-box' }, 'The stored payload was cut at the size limit; what follows is partial.'));
    sections.push(
      h('section', { class: 'card', 'aria-labelledby': 'conv-h' }, h('div', { class: 'code-head' }, h('h3', { id: 'conv-h' }, 'Conversation'), copyButton(() => JSON.stringify(p.requestBody, null, 2), 'Copy request')), conversation(p.requestBody)),
      h('section', { class: 'card', 'aria-labelledby': 'resp-h' }, h('div', { class: 'code-head' }, h('h3', { id: 'resp-h' }, 'Response'), copyButton(() => JSON.stringify(p.responseBody, null, 2), 'Copy response')), response(p.responseBody)),
      h('div', { class: 'grid2' },
        h('section', { class: 'card' }, h('div', { class: 'code-head' }, h('h3', {}, 'Request headers'), copyButton(() => JSON.stringify(p.requestHeaders, null, 2), 'Copy')), headers(p.requestHeaders)),
        h('section', { class: 'card' }, h('div', { class: 'code-head' }, h('h3', {}, 'Response headers'), copyButton(() => JSON.stringify(p.responseHeaders, null, 2), 'Copy')), headers(p.responseHeaders))),
      h('details', { class: 'card' }, h('summary', {}, 'Raw bodies'), codeBlock('Request body', p.requestBody), codeBlock('Response body', p.responseBody)),
    );
  }
  fill(els.detail, sections);
}

export default {
  mount(panel) {
    els = {
      error: h('div'),
      body: h('tbody', { id: 'requests-body' }),
      account: select([['', 'All accounts']], '', { id: 'req-account' }),
      model: select([['', 'All models']], '', { id: 'req-model' }),
      status: select([['', 'All'], ['success', 'Succeeded'], ['error', 'Failed']], '', { id: 'req-status' }),
      live: h('span', { class: 'pill', id: 'requests-live', role: 'status' }, 'Connecting'),
      liveNote: h('span', { class: 'muted', 'aria-live': 'polite' }),
      detail: h('section', { class: 'detail', id: 'request-detail', tabindex: '-1', hidden: true, 'aria-labelledby': 'detail-title' }),
    };
    for (const key of ['account', 'model', 'status']) {
      els[key].addEventListener('change', () => { filters[key] = els[key].value; load(); });
    }
    const pause = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause live');
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.setAttribute('aria-pressed', String(paused));
      pause.textContent = paused ? 'Resume live' : 'Pause live';
      if (!paused && missed) { missed = 0; els.liveNote.textContent = ''; load(); }
    });
    const moreBtn = h('button', { type: 'button' }, 'Load older');
    moreBtn.addEventListener('click', () => more(moreBtn));
    fill(panel,
      h('div', { class: 'panel-head' }, h('h1', {}, 'Requests'), h('div', { class: 'inline' }, els.live, els.liveNote, pause)),
      h('div', { class: 'filters', role: 'group', 'aria-label': 'Filters' },
        field('Account', els.account), field('Model', els.model), field('Status', els.status)),
      els.error,
      els.detail,
      h('div', { class: 'card table-wrap' },
        h('table', { class: 'table', id: 'requests-table' },
          h('caption', { class: 'sr-only' }, 'Requests, newest first'),
          h('thead', {}, h('tr', {}, ['Time', 'Account', 'Model', 'Status', 'Duration', 'Tokens', 'Cost', 'Failovers'].map((t) => h('th', { scope: 'col' }, t)))),
          els.body),
        h('div', { class: 'actions' }, moreBtn)));
  },
  show() {
    if (!live) live = api.stream('/api/requests/stream', onLive, setLiveState);
    load();
  },
  hide() {
    if (live) live.close();
    live = null;
    setLiveState('closed', 'Paused while the tab is hidden');
  },
};
