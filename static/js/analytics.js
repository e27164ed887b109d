// Analytics: range, filters (accounts, models, status), normal or cumulative mode,
// and charts of requests, tokens by kind, cost by model, latency and tokens/s per
// model, and cache hit rate.

import * as api from './api.js';
import { lineChart, barChart, donut, timeLabel } from './charts.js';
import {
  h, fill, num, compact, usd, pct, ms, tps, field, select, errorBox,
} from './util.js';

let els = {};
let last = null;
const state = { range: '24h', accounts: [], models: [], status: 'all', mode: 'normal' };
const known = { accounts: new Set(), models: new Set() };

function url() {
  const q = new URLSearchParams({ range: state.range, status: state.status, mode: state.mode, modelBreakdown: 'true' });
  if (state.accounts.length) q.set('accounts', state.accounts.join(','));
  if (state.models.length) q.set('models', state.models.join(','));
  return `/api/analytics?${q}`;
}

async function load() {
  els.root.setAttribute('aria-busy', 'true');
  try {
    const [data, accounts] = await Promise.all([api.get(url()), api.get('/api/accounts')]);
    els.error.replaceChildren();
    for (const a of accounts) known.accounts.add(a.name);
    for (const a of data.accountPerformance) known.accounts.add(a.name);
    for (const m of data.modelDistribution) known.models.add(m.model);
    last = data;
    syncChoices();
    render();
  } catch (e) {
    fill(els.error, errorBox(`Could not load the analytics: ${e.message}`, load));
  } finally {
    els.root.removeAttribute('aria-busy');
  }
}

/** A multi-choice filter as a group of checkboxes (keyboard and screen-reader friendly). */
function choices(kind, legend) {
  const box = h('fieldset', { class: 'checks', id: `an-${kind}` }, h('legend', {}, legend));
  box.addEventListener('change', () => {
    state[kind] = [...box.querySelectorAll('input:checked')].map((i) => i.value);
    load();
  });
  return box;
}

function syncChoices() {
  for (const kind of ['accounts', 'models']) {
    const box = els[kind];
    const have = new Set([...box.querySelectorAll('input')].map((i) => i.value));
    for (const v of [...known[kind]].sort()) {
      if (have.has(v)) continue;
      box.append(h('label', {}, h('input', { type: 'checkbox', value: v, checked: state[kind].includes(v) }), ` ${v}`));
    }
    if (!known[kind].size && !box.querySelector('.muted')) box.append(h('span', { class: 'muted' }, 'none yet'));
  }
}

function render() {
  const d = last;
  if (!d) return;
  const t = d.totals;
  const cum = d.meta.mode === 'cumulative';
  fill(els.totals,
    [['Requests', num(t.requests)], ['Success rate', pct(t.successRate)], ['Tokens', compact(t.totalTokens)],
      ['Cost', usd(t.totalCostUsd)], ['Average latency', ms(t.avgResponseTime)], ['Tokens per second', tps(t.avgTokensPerSecond)],
      ['Cache hit rate', pct(t.cacheHitRate)]]
      .map(([k, v]) => h('div', { class: 'card metric' }, h('div', { class: 'metric-label' }, k), h('div', { class: 'metric-value' }, v))));
  const ts = d.timeSeries;
  const span = Date.parse(d.meta.to) - Date.parse(d.meta.from);
  const labels = ts.map((p) => timeLabel(p.time, span));
  const byModel = d.timeSeriesByModel || {};
  const models = Object.keys(byModel);
  const suffix = cum ? ' (cumulative)' : '';

  if (models.length && !cum) {
    barChart(els.requests, {
      label: `Requests per ${bucketName(d.meta.bucketMs)} by model`,
      labels,
      series: models.map((m) => ({ name: m, values: byModel[m].map((p) => p.requests) })),
      format: compact,
      legend: true,
    });
  } else {
    lineChart(els.requests, {
      label: `Requests${suffix}`,
      labels,
      series: models.length
        ? models.map((m) => ({ name: m, values: byModel[m].map((p) => p.requests) }))
        : [{ name: 'Requests', values: ts.map((p) => p.requests) }],
      format: compact,
    });
  }
  donut(els.tokenKinds, {
    label: 'Tokens by kind',
    items: [
      { label: 'Input', value: d.tokenBreakdown.input },
      { label: 'Output', value: d.tokenBreakdown.output },
      { label: 'Cache read', value: d.tokenBreakdown.cacheRead },
      { label: 'Cache write', value: d.tokenBreakdown.cacheCreation },
    ],
    format: compact,
  });
  lineChart(els.tokens, {
    label: `Tokens over time${suffix}`,
    labels,
    series: [{ name: 'Tokens', values: ts.map((p) => p.tokens) }],
    format: compact,
    area: true,
  });
  donut(els.cost, {
    label: 'Cost by model',
    items: d.costByModel.map((m) => ({ label: m.model, value: m.costUsd })),
    format: usd,
  });
  lineChart(els.costTime, {
    label: `Cost over time${suffix}`,
    labels,
    series: [{ name: 'Cost (USD)', values: ts.map((p) => p.costUsd), color: 3 }],
    format: (v) => `$${v < 1 ? v.toFixed(3) : v.toFixed(2)}`,
    area: true,
  });
  const perf = d.modelPerformance;
  barChart(els.latency, {
    label: 'Latency per model, average and 95th percentile',
    labels: perf.map((m) => m.model),
    series: [
      { name: 'Average', values: perf.map((m) => m.avgResponseTime) },
      { name: '95th percentile', values: perf.map((m) => m.p95ResponseTime), color: 4 },
    ],
    stacked: false,
    format: ms,
  });
  barChart(els.speed, {
    label: 'Output tokens per second per model',
    labels: perf.map((m) => m.model),
    series: [{ name: 'Tokens per second', values: perf.map((m) => m.avgTokensPerSecond), color: 5 }],
    format: (v) => `${Math.round(v)}`,
  });
  lineChart(els.cache, {
    label: 'Cache hit rate over time',
    labels,
    series: [{ name: 'Cache hit rate (%)', values: ts.map((p) => p.cacheHitRate), color: 2 }],
    format: (v) => `${Math.round(v)}%`,
  });
  fill(els.accountsTable, d.accountPerformance.length
    ? h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Account', 'Requests', 'Success', 'Latency', 'Tokens', 'Cost'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, d.accountPerformance.map((a) => h('tr', {},
        h('th', { scope: 'row' }, a.name), h('td', { class: 'num' }, num(a.requests)), h('td', { class: 'num' }, pct(a.successRate)),
        h('td', { class: 'num' }, ms(a.avgResponseTime)), h('td', { class: 'num' }, compact(a.tokens)), h('td', { class: 'num' }, usd(a.costUsd))))))
    : h('p', { class: 'muted' }, 'No requests in this range.'));
}

function bucketName(bucketMs) {
  if (bucketMs >= 86400000) return 'day';
  if (bucketMs >= 3600000) return 'hour';
  if (bucketMs >= 300000) return '5 minutes';
  return 'minute';
}

function chartCard(title, el, wide) {
  return h('section', { class: `card${wide ? ' wide' : ''}` }, h('h2', {}, title), el);
}

export default {
  mount(panel) {
    const box = (id) => h('div', { class: 'chart-box', id });
    els = {
      root: panel,
      error: h('div'),
      totals: h('div', { class: 'cards', id: 'analytics-totals' }),
      requests: box('chart-requests'),
      tokenKinds: box('chart-token-kinds'),
      tokens: box('chart-tokens'),
      cost: box('chart-cost-model'),
      costTime: box('chart-cost-time'),
      latency: box('chart-latency'),
      speed: box('chart-speed'),
      cache: box('chart-cache'),
      accountsTable: h('div', { class: 'table-wrap' }),
      accounts: choices('accounts', 'Accounts'),
      models: choices('models', 'Models'),
    };
    const range = select([['1h', 'Last hour'], ['6h', 'Last 6 hours'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']], state.range, { id: 'an-range' });
    const status = select([['all', 'All'], ['success', 'Succeeded'], ['error', 'Failed']], state.status, { id: 'an-status' });
    const mode = select([['normal', 'Per interval'], ['cumulative', 'Cumulative']], state.mode, { id: 'an-mode' });
    range.addEventListener('change', () => { state.range = range.value; load(); });
    status.addEventListener('change', () => { state.status = status.value; load(); });
    mode.addEventListener('change', () => { state.mode = mode.value; load(); });
    fill(panel,
      h('div', { class: 'panel-head' }, h('h1', {}, 'Analytics'), h('button', { type: 'button', onclick: load }, 'Refresh')),
      h('div', { class: 'filters', role: 'group', 'aria-label': 'Analytics filters' },
        field('Range', range), field('Status', status), field('Mode', mode), els.accounts, els.models),
      els.error,
      els.totals,
      h('div', { class: 'chart-grid' },
        chartCard('Requests', els.requests, true),
        chartCard('Tokens by kind', els.tokenKinds),
        chartCard('Tokens over time', els.tokens),
        chartCard('Cost by model', els.cost),
        chartCard('Cost over time', els.costTime),
        chartCard('Latency per model', els.latency),
        chartCard('Tokens per second per model', els.speed),
        chartCard('Cache hit rate', els.cache),
        chartCard('Accounts', els.accountsTable)));
    let resize = null;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(() => { if (!panel.hidden) render(); }, 150);
    });
    window.addEventListener('themechange', () => { if (!panel.hidden) render(); });
  },
  show() {
    load();
  },
};
