// Overview: metric cards, requests and cost over the chosen range, each account's
// rate-limit state (countdown, 5h/7d utilization), the strategy, system status.

import * as api from './api.js';
import { lineChart, sparkline, timeLabel } from './charts.js';
import {
  h, fill, num, compact, usd, pct, ms, tps, until, duration, ago, select, field, errorBox, every,
} from './util.js';
import { stateBadge } from './accounts.js';

let root;
let range = '24h';
let stop = null;
let tick = null;
let accounts = [];
const els = {};

function card(label, value, sub, spark) {
  return h('div', { class: 'card metric' },
    h('div', { class: 'metric-label' }, label),
    h('div', { class: 'metric-value' }, value),
    sub ? h('div', { class: 'metric-sub' }, sub) : null,
    spark || null);
}

async function load() {
  try {
    const [stats, analytics, accs, health, strategy, strategies] = await Promise.all([
      api.get('/api/stats'),
      api.get(`/api/analytics?range=${range}`),
      api.get('/api/accounts'),
      api.get('/health', { accept: [503] }),
      api.get('/api/config/strategy'),
      api.get('/api/strategies'),
    ]);
    els.error.replaceChildren();
    renderCards(stats, analytics);
    renderChart(analytics);
    accounts = accs;
    renderLimits();
    renderStatus(health, strategy, strategies, stats);
  } catch (e) {
    fill(els.error, errorBox(`Could not load the overview: ${e.message}`, load));
  }
}

function renderCards(stats, analytics) {
  const ts = analytics.timeSeries;
  const spark = (key, label, color) => sparkline(ts.map((p) => p[key] || 0), `${label}, last ${range}`, color);
  fill(els.cards,
    card('Requests', num(stats.totalRequests), `${compact(analytics.totals.requests)} in the last ${range}`, spark('requests', 'Requests', 0)),
    card('Success rate', pct(stats.successRate), `${num(stats.successfulRequests)} succeeded`, spark('successRate', 'Success rate', 2)),
    card('Tokens', compact(stats.totalTokens), `${compact(stats.tokensByKind.input)} in · ${compact(stats.tokensByKind.output)} out`, spark('tokens', 'Tokens', 1)),
    card('Cost', usd(stats.totalCostUsd), `${usd(analytics.totals.totalCostUsd)} in the last ${range}`, spark('costUsd', 'Cost', 3)),
    card('Average latency', ms(stats.avgResponseTime), 'per request', spark('avgResponseTime', 'Latency', 4)),
    card('Tokens per second', tps(stats.avgTokensPerSecond), 'output, average', spark('avgTokensPerSecond', 'Tokens per second', 5)));
}

function renderChart(analytics) {
  const ts = analytics.timeSeries;
  const span = Date.parse(analytics.meta.to) - Date.parse(analytics.meta.from);
  lineChart(els.chart, {
    label: `Requests and cost over the last ${range}`,
    labels: ts.map((p) => timeLabel(p.time, span)),
    series: [
      { name: 'Requests', values: ts.map((p) => p.requests) },
      { name: 'Cost (USD)', values: ts.map((p) => p.costUsd), axis: 'right', color: 3 },
    ],
    format: compact,
    rightFormat: (v) => `$${v < 1 ? v.toFixed(3) : v.toFixed(2)}`,
    area: true,
  });
}

function bar(label, fraction) {
  const value = fraction === null || fraction === undefined ? null : Math.max(0, fraction * 100);
  const meter = h('div', { class: 'meter', role: 'meter', 'aria-label': `${label} utilization`, 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': value === null ? '0' : value.toFixed(0) });
  const fillEl = h('span', { class: value >= 90 ? 'hot' : value >= 70 ? 'warm' : '' });
  fillEl.style.width = `${Math.min(100, value || 0)}%`;
  meter.append(fillEl);
  return h('div', { class: 'util' },
    h('span', { class: 'util-label' }, label),
    meter,
    h('span', { class: 'util-value' }, value === null ? 'n/a' : `${value.toFixed(0)}%`));
}

/** The countdown text for one account, recomputed every second. */
function resetText(a) {
  const benched = until(a.rateLimitedUntil);
  if (benched) return `rate-limited, back in ${benched}`;
  const reset = until(a.rateLimitReset);
  if (reset) return `window resets in ${reset}`;
  return a.rateLimitStatus ? `limit status: ${a.rateLimitStatus}` : 'no limit reported yet';
}

function renderLimits() {
  if (!accounts.length) {
    fill(els.limits, h('p', { class: 'muted' }, 'No accounts yet. Add one in the Accounts tab.'));
    return;
  }
  fill(els.limits, accounts.map((a) => h('div', { class: 'limit-row', 'data-account': a.name },
    h('div', { class: 'limit-head' },
      h('strong', {}, a.name), stateBadge(a),
      h('span', { class: 'countdown muted', 'data-countdown': a.id }, resetText(a))),
    bar('5h', a.utilization5h),
    bar('7d', a.utilization7d))));
}

function updateCountdowns() {
  for (const a of accounts) {
    const el = els.limits.querySelector(`[data-countdown="${CSS.escape(a.id)}"]`);
    if (el) el.textContent = resetText(a);
  }
}

function renderStatus(health, strategy, strategies, stats) {
  const desc = (strategies.find((s) => s.name === strategy.strategy) || {}).description || '';
  const p = health.pool;
  fill(els.status,
    h('div', { class: 'card' },
      h('h3', {}, 'Strategy'),
      h('p', { class: 'strategy-name' }, h('code', {}, strategy.strategy)),
      h('p', { class: 'muted' }, desc),
      h('a', { href: '#settings' }, 'Change it in Settings')),
    h('div', { class: 'card' },
      h('h3', {}, 'System'),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Status'), h('dd', {}, h('span', { class: `pill ${health.status}` }, health.status)),
        h('dt', {}, 'Accounts'), h('dd', {}, `${p.available} available of ${p.configured}` + (p.paused ? `, ${p.paused} paused` : '') + (p.rateLimited ? `, ${p.rateLimited} rate-limited` : '') + (p.requiresReauth ? `, ${p.requiresReauth} need re-auth` : '')),
        p.nextAvailableAt ? h('dt', {}, 'Next back') : null,
        p.nextAvailableAt ? h('dd', {}, `in ${until(p.nextAvailableAt) || 'a moment'}`) : null,
        h('dt', {}, 'Version'), h('dd', {}, health.version),
        h('dt', {}, 'Uptime'), h('dd', {}, duration(health.uptimeSeconds)),
        h('dt', {}, 'Recent errors'), h('dd', {}, stats.recentErrors.length
          ? `${stats.recentErrors.length}, last ${ago(new Date(stats.recentErrors[0].timestamp).toISOString())}`
          : 'none'))));
}

export default {
  mount(panel) {
    root = panel;
    const rangeSel = select([['1h', 'Last hour'], ['6h', 'Last 6 hours'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']], range, { id: 'overview-range' });
    rangeSel.addEventListener('change', () => { range = rangeSel.value; load(); });
    els.error = h('div');
    els.cards = h('div', { class: 'cards', id: 'overview-cards' });
    els.chart = h('div', { class: 'chart-box', id: 'overview-chart' });
    els.limits = h('div', { class: 'limits', id: 'overview-limits' });
    els.status = h('div', { class: 'grid2', id: 'overview-status' });
    fill(root,
      h('div', { class: 'panel-head' }, h('h1', {}, 'Overview'), field('Range', rangeSel)),
      els.error,
      els.cards,
      h('div', { class: 'card' }, h('h2', {}, 'Requests and cost'), els.chart),
      h('div', { class: 'grid2' },
        h('div', { class: 'card' }, h('h2', {}, 'Rate limits'), els.limits),
        els.status));
    let resize = null;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(() => { if (!root.hidden) load(); }, 250);
    });
  },
  show() {
    load();
    stop = every(10000, load);
    tick = setInterval(updateCountdowns, 1000);
  },
  hide() {
    if (stop) stop();
    clearInterval(tick);
  },
};
