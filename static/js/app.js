// The dashboard's shell: tabs (kept in the URL hash), the theme toggle, and the
// health pill in the header. Each tab is a module with `mount(panel)` (called once)
// and optional `show()` / `hide()` (called when it becomes visible or hidden).

import * as api from './api.js';
import { $, $$, h, field, modal, showError } from './util.js';
import overview from './overview.js';
import accounts from './accounts.js';
import requests from './requests.js';
import analytics from './analytics.js';
import logs from './logs.js';
import settings from './settings.js';

const TABS = { overview, accounts, requests, analytics, logs, settings };
const mounted = new Set();
let current = null;

function select(name, focus = false) {
  if (!TABS[name]) name = 'overview';
  if (name === current) return;
  if (current && TABS[current].hide) TABS[current].hide();
  for (const tab of $$('[role=tab]')) {
    const on = tab.dataset.tab === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on && focus) tab.focus();
  }
  for (const panel of $$('[role=tabpanel]')) panel.hidden = panel.id !== name;
  current = name;
  const panel = document.getElementById(name);
  if (!mounted.has(name)) {
    mounted.add(name);
    try {
      TABS[name].mount(panel);
    } catch (e) {
      showError(`The ${name} tab failed to start`, e);
    }
  }
  if (TABS[name].show) TABS[name].show();
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · Claudeflare`;
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
}

function setupTabs() {
  const tabs = $$('[role=tab]');
  for (const tab of tabs) {
    tab.addEventListener('click', () => select(tab.dataset.tab));
    tab.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (e.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
      else if (e.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (e.key === 'Home') next = tabs[0];
      else if (e.key === 'End') next = tabs[tabs.length - 1];
      if (next) {
        e.preventDefault();
        select(next.dataset.tab, true);
      }
    });
  }
  window.addEventListener('hashchange', () => select(location.hash.slice(1)));
  select(location.hash.slice(1) || 'overview');
}

// Theme: "system" (no data-theme, the CSS follows prefers-color-scheme), "light",
// "dark". The toggle flips between light and dark starting from what is shown;
// a long press or Shift+click goes back to following the system.
const THEME_KEY = 'claudeflare.theme';

function effectiveTheme() {
  const set = document.documentElement.dataset.theme;
  if (set) return set;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function applyTheme(choice) {
  const root = document.documentElement;
  if (choice === 'light' || choice === 'dark') {
    root.dataset.theme = choice;
    localStorage.setItem(THEME_KEY, choice);
  } else {
    delete root.dataset.theme;
    localStorage.removeItem(THEME_KEY);
  }
  const btn = $('#theme-toggle');
  const shown = effectiveTheme();
  const mode = root.dataset.theme ? `${shown} theme` : `following the system (${shown})`;
  btn.setAttribute('aria-label', `Theme: ${mode}. Switch to ${shown === 'dark' ? 'light' : 'dark'}`);
  btn.title = `Theme: ${mode}. Shift+click to follow the system`;
  btn.textContent = shown === 'dark' ? '☾' : '☀';
  window.dispatchEvent(new CustomEvent('themechange'));
}

function setupTheme() {
  const btn = $('#theme-toggle');
  btn.addEventListener('click', (e) => {
    if (e.shiftKey) applyTheme('system');
    else applyTheme(effectiveTheme() === 'dark' ? 'light' : 'dark');
  });
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    if (!document.documentElement.dataset.theme) applyTheme('system');
  });
  applyTheme(localStorage.getItem(THEME_KEY) || 'system');
}

// The header pill: the daemon's health, every 10 s.
async function refreshHealth() {
  const pill = $('#health');
  try {
    const h = await api.get('/health', { accept: [503] });
    pill.textContent = h.status === 'ok' ? 'Healthy' : h.status === 'degraded' ? 'Degraded' : 'Unhealthy';
    pill.className = `pill ${h.status}`;
    pill.title = `${h.pool.available} of ${h.pool.configured} accounts available · strategy ${h.strategy} · v${h.version}`;
  } catch (e) {
    pill.textContent = 'Unreachable';
    pill.className = 'pill unhealthy';
    pill.title = e.message;
  }
}

// Access control: when the API answers 401, ask once for an admin key, keep it for
// this browser session (api.setAdminKey) and reload.
let asking = false;
window.addEventListener('claudeflare:needkey', async () => {
  if (asking) return;
  asking = true;
  const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: false, required: true });
  const answer = await modal('Admin key needed',
    h('div', {},
      h('p', {}, 'This daemon has access control on. Enter an admin key to use the dashboard; it is kept only for this browser tab.'),
      field('Admin key', key)),
    [h('button', { value: 'cancel', formnovalidate: true }, 'Cancel'), h('button', { value: 'save', class: 'primary' }, 'Use this key')]);
  if (answer === 'save' && key.value.trim()) {
    api.setAdminKey(key.value.trim());
    location.reload();
  }
  asking = false;
});

setupTheme();
setupTabs();
refreshHealth();
setInterval(() => { if (!document.hidden) refreshHealth(); }, 10000);
window.addEventListener('unhandledrejection', (e) => showError('Something went wrong', e.reason));
