// Logs: the daemon's recent log (history) and the live feed, with pause, clear and
// a level and text filter.

import * as api from './api.js';
import { h, fill, clock, dateTime, field, select, errorBox } from './util.js';

const MAX_LINES = 2000;
const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
let els = {};
let live = null;
let paused = false;
let held = [];
let lines = [];
const filter = { level: 'TRACE', text: '' };

function visible(e) {
  if (LEVELS.indexOf((e.level || '').toUpperCase()) < LEVELS.indexOf(filter.level)) return false;
  if (!filter.text) return true;
  const hay = `${e.message} ${e.target} ${Object.entries(e.fields || {}).map(([k, v]) => `${k}=${v}`).join(' ')}`.toLowerCase();
  return hay.includes(filter.text.toLowerCase());
}

function line(e) {
  const fields = Object.entries(e.fields || {});
  return h('div', { class: `log-line lvl-${(e.level || '').toLowerCase()}` },
    h('time', { datetime: e.time, title: dateTime(e.time) }, clock(e.time)), ' ',
    h('span', { class: 'lvl' }, (e.level || '').padEnd(5)), ' ',
    h('span', { class: 'target' }, e.target), ' ',
    h('span', { class: 'msg' }, e.message),
    fields.length ? h('span', { class: 'fields' }, fields.map(([k, v]) => ` ${k}=${v}`).join('')) : null);
}

function render() {
  const shown = lines.filter(visible);
  if (!shown.length) {
    fill(els.out, h('p', { class: 'muted' }, lines.length ? 'No line matches the filter.' : 'No log lines yet.'));
  } else {
    fill(els.out, shown.map(line));
  }
  els.count.textContent = `${shown.length} of ${lines.length} lines`;
  scroll();
}

function atBottom() {
  const o = els.out;
  return o.scrollHeight - o.scrollTop - o.clientHeight < 40;
}

function scroll() {
  els.out.scrollTop = els.out.scrollHeight;
}

function add(e) {
  lines.push(e);
  if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
  if (!visible(e)) return;
  const stick = atBottom();
  if (els.out.querySelector('p.muted')) els.out.replaceChildren();
  els.out.append(line(e));
  while (els.out.childElementCount > MAX_LINES) els.out.firstElementChild.remove();
  els.count.textContent = `${els.out.childElementCount} of ${lines.length} lines`;
  if (stick) scroll();
}

function onLive(name, e) {
  if (name !== 'log' || !e) return;
  if (paused) {
    held.push(e);
    els.held.textContent = `${held.length} new while paused`;
  } else {
    add(e);
  }
}

async function history() {
  try {
    lines = await api.get('/api/logs/history?limit=1000');
    els.error.replaceChildren();
    render();
  } catch (err) {
    fill(els.error, errorBox(`Could not load the log history: ${err.message}`, history));
  }
}

function setState(state, why) {
  els.live.className = `pill ${state === 'open' ? 'ok' : 'degraded'}`;
  els.live.textContent = state === 'open' ? 'Live' : 'Reconnecting';
  els.live.title = why || '';
}

export default {
  mount(panel) {
    els = {
      error: h('div'),
      out: h('div', { class: 'log', id: 'log-output', role: 'log', 'aria-live': 'off', tabindex: '0', 'aria-label': 'Daemon log' }),
      live: h('span', { class: 'pill', id: 'logs-live', role: 'status' }, 'Connecting'),
      held: h('span', { class: 'muted', 'aria-live': 'polite' }),
      count: h('span', { class: 'muted' }),
    };
    const pause = h('button', { type: 'button', 'aria-pressed': 'false', id: 'logs-pause' }, 'Pause');
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.setAttribute('aria-pressed', String(paused));
      pause.textContent = paused ? 'Resume' : 'Pause';
      if (!paused) {
        held.forEach(add);
        held = [];
        els.held.textContent = '';
      }
    });
    const clear = h('button', { type: 'button', id: 'logs-clear' }, 'Clear');
    clear.addEventListener('click', () => { lines = []; held = []; els.held.textContent = ''; render(); });
    const reload = h('button', { type: 'button' }, 'Reload history');
    reload.addEventListener('click', history);
    const level = select(LEVELS.map((l) => [l, l === 'TRACE' ? 'All levels' : `${l} and above`]), filter.level, { id: 'log-level' });
    level.addEventListener('change', () => { filter.level = level.value; render(); });
    const text = h('input', { type: 'search', id: 'log-text', placeholder: 'account, error…' });
    text.addEventListener('input', () => { filter.text = text.value; render(); });
    fill(panel,
      h('div', { class: 'panel-head' }, h('h1', {}, 'Logs'), h('div', { class: 'inline' }, els.live, els.held, pause, clear, reload)),
      h('div', { class: 'filters', role: 'group', 'aria-label': 'Log filters' }, field('Level', level), field('Contains', text), els.count),
      els.error,
      els.out);
  },
  show() {
    history();
    if (!live) live = api.stream('/api/logs/stream', onLive, setState);
  },
  hide() {
    if (live) live.close();
    live = null;
  },
};
