// Settings: the routing strategy (with each one's description), retention, and
// maintenance (cleanup now, compact); the effective configuration, read-only.

import * as api from './api.js';
import { h, fill, num, field, notify, busy, errorBox, modal } from './util.js';

let els = {};

async function load() {
  try {
    const [strategies, current, retention, config] = await Promise.all([
      api.get('/api/strategies'),
      api.get('/api/config/strategy'),
      api.get('/api/config/retention'),
      api.get('/api/config'),
    ]);
    els.error.replaceChildren();
    renderStrategies(strategies, current.strategy);
    renderRetention(retention);
    renderConfig(config);
  } catch (e) {
    fill(els.error, errorBox(`Could not load the settings: ${e.message}`, load));
  }
}

function renderStrategies(list, current) {
  const save = h('button', { type: 'submit', class: 'primary' }, 'Use this strategy');
  const form = h('form', { id: 'strategy-form' },
    h('fieldset', { class: 'strategies' },
      h('legend', {}, `Routing strategy (now: ${current})`),
      list.map((s) => h('label', { class: 'strategy' },
        h('input', { type: 'radio', name: 'strategy', value: s.name, checked: s.name === current }),
        h('span', {}, h('strong', {}, s.name), s.name.startsWith('session') ? h('span', { class: 'badge good' }, 'recommended for subscriptions') : null,
          h('small', { class: 'muted' }, s.description))))),
    h('p', { class: 'hint' }, 'Spreading one person\'s traffic over several subscriptions at once can get accounts flagged; the session strategies look like ordinary use.'),
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const chosen = form.querySelector('input:checked');
    if (!chosen) return;
    busy(save, async () => {
      const r = await api.post('/api/config/strategy', { strategy: chosen.value });
      notify(`Strategy is now ${r.strategy}`);
      load();
    }, 'Could not change the strategy');
  });
  fill(els.strategy, form);
}

function renderRetention(r) {
  const payload = h('input', { type: 'number', min: '1', max: '3650', value: String(r.payloadDays), required: true });
  const request = h('input', { type: 'number', min: '1', max: '3650', value: String(r.requestDays), required: true });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save retention');
  const form = h('form', { id: 'retention-form' },
    h('div', { class: 'row' },
      field('Keep payloads (days)', payload, 'Headers and bodies; the largest part of the database.'),
      field('Keep requests (days)', request, 'The rows behind the statistics; at least as long as payloads.')),
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      const saved = await api.post('/api/config/retention', { payloadDays: Number(payload.value), requestDays: Number(request.value) });
      notify(`Retention saved: payloads ${saved.payloadDays} days, requests ${saved.requestDays} days`);
    }, 'Could not save the retention');
  });
  fill(els.retention, form);
}

function renderConfig(c) {
  const rows = Object.entries(c).filter(([, v]) => typeof v !== 'object' || v === null);
  fill(els.config, h('table', { class: 'table kv-table' },
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, h('code', {}, v === null ? '—' : String(v))))))));
}

function maintenance() {
  const cleanup = h('button', { type: 'button', id: 'cleanup' }, 'Clean up now');
  const compact = h('button', { type: 'button', id: 'compact' }, 'Compact the database');
  cleanup.addEventListener('click', () => busy(cleanup, async () => {
    const r = await api.post('/api/maintenance/cleanup');
    notify(`Cleanup done: ${num(r.deletedRequests)} requests and ${num(r.deletedPayloads)} payloads deleted`);
  }, 'Cleanup failed'));
  compact.addEventListener('click', async () => {
    const ok = await modal('Compact the database?', h('p', {}, 'This rewrites the database file to give free space back. Writes wait while it runs; on a large database that can take a while.'),
      [h('button', { value: 'cancel' }, 'Cancel'), h('button', { value: 'go', class: 'primary' }, 'Compact')]);
    if (ok !== 'go') return;
    busy(compact, async () => {
      await api.post('/api/maintenance/compact');
      notify('The database was compacted');
    }, 'Compacting failed');
  });
  return h('div', {},
    h('p', { class: 'muted' }, 'Retention runs by itself every hour. Clean up applies it now; compacting reclaims the space deleted rows leave in the file.'),
    h('div', { class: 'actions left' }, cleanup, compact));
}

export default {
  mount(panel) {
    els = {
      error: h('div'),
      strategy: h('div', { id: 'settings-strategy' }),
      retention: h('div', { id: 'settings-retention' }),
      config: h('div', { class: 'table-wrap', id: 'settings-config' }),
    };
    fill(panel,
      h('div', { class: 'panel-head' }, h('h1', {}, 'Settings')),
      els.error,
      h('section', { class: 'card' }, h('h2', {}, 'Strategy'), els.strategy),
      h('div', { class: 'grid2' },
        h('section', { class: 'card' }, h('h2', {}, 'Retention'), els.retention),
        h('section', { class: 'card' }, h('h2', {}, 'Maintenance'), maintenance())),
      h('details', { class: 'card' }, h('summary', {}, 'Effective configuration'), els.config));
  },
  show() {
    load();
  },
};
