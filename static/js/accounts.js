// Accounts: the table with state badges, adding an account (OAuth sign-in or API
// key), and pause, resume, rename, tier, priority, re-authenticate and remove.

import * as api from './api.js';
import {
  h, fill, num, until, ago, field, select, modal, notify, busy, errorBox, every, copyButton,
} from './util.js';

let root;
let els = {};
let stop = null;

/** The badge for an account's state, most important first. */
export function stateBadge(a) {
  const left = until(a.rateLimitedUntil);
  if (a.requiresReauth) return h('span', { class: 'badge bad' }, 'Needs re-auth');
  if (a.authFailed) return h('span', { class: 'badge bad', title: 'The upstream refused its credential. Resume to retry it.' }, 'Credential refused');
  if (a.paused) return h('span', { class: 'badge muted-badge' }, 'Paused');
  if (left) return h('span', { class: 'badge warn', title: a.rateLimitedUntil }, `Rate-limited, ${left} left`);
  if (!a.available) return h('span', { class: 'badge warn' }, (a.unavailableReason || 'unavailable').replace(/_/g, ' '));
  if (a.sessionInfo && a.sessionInfo.active) return h('span', { class: 'badge good' }, 'Active session');
  return h('span', { class: 'badge ok' }, 'Available');
}

const PROVIDERS = [['anthropic', 'Anthropic'], ['anthropic-compatible', 'Anthropic-compatible (give a base URL)'], ['zai', 'Z.ai (GLM)'], ['minimax', 'MiniMax']];
const providerName = (id) => (PROVIDERS.find(([v]) => v === id) || [id, id])[1].replace(/ \(.*\)$/, '');
const kindLabel = (a) => {
  const kind = a.kind === 'oauth' ? 'Subscription (OAuth)' : 'API key';
  if (!a.provider || a.provider === 'anthropic') return kind;
  return h('span', {}, `${providerName(a.provider)} · ${kind}`,
    a.baseUrl ? h('small', { class: 'muted', style: 'display:block' }, a.baseUrl) : null);
};
const tierLabel = { 1: 'Pro / 1x', 5: 'Max 5x', 20: 'Max 20x' };
const TIERS = [['1', 'Tier 1 (Pro, API)'], ['5', 'Tier 5 (Max 5x)'], ['20', 'Tier 20 (Max 20x)']];

async function load() {
  try {
    const accounts = await api.get('/api/accounts');
    els.error.replaceChildren();
    render(accounts);
  } catch (e) {
    fill(els.error, errorBox(`Could not load the accounts: ${e.message}`, load));
  }
}

function render(accounts) {
  if (!accounts.length) {
    fill(els.body, h('tr', {}, h('td', { colspan: '8', class: 'muted' }, 'No accounts yet: add one below. Until then requests pass through with the client\'s own key.')));
    return;
  }
  fill(els.body, accounts.map((a) => h('tr', { 'data-account': a.name, 'data-id': a.id },
    h('th', { scope: 'row' },
      h('div', { class: 'acct-name' }, a.name),
      h('small', { class: 'muted' }, a.email || a.organization || `…${a.credentialHint}`)),
    h('td', {}, kindLabel(a)),
    h('td', { class: 'state' }, stateBadge(a)),
    h('td', { class: 'num' }, tierLabel[a.tier] || a.tier),
    h('td', { class: 'num' }, a.priority),
    h('td', { class: 'num' }, num(a.totalRequests)),
    h('td', {}, a.lastUsed ? ago(a.lastUsed) : 'never'),
    h('td', { class: 'actions' }, actions(a)))));
}

function actions(a) {
  const act = (label, fn, extra = {}) => h('button', { type: 'button', class: 'small', ...extra, onclick: (e) => fn(e.currentTarget) }, label);
  const call = (btn, path, done, body) => busy(btn, async () => {
    await api.post(`/api/accounts/${api.seg(a.id)}/${path}`, body);
    notify(done(a.name));
    await load();
  }, `Could not change ${a.name}`);
  return [
    a.paused
      ? act('Resume', (b) => call(b, 'resume', (n) => `${n} is back in rotation`), { 'aria-label': `Resume ${a.name}` })
      : act('Pause', (b) => call(b, 'pause', (n) => `${n} is paused`), { 'aria-label': `Pause ${a.name}` }),
    until(a.rateLimitedUntil)
      ? act('Clear limit', (b) => call(b, 'reset-rate-limit', (n) => `${n} is back in rotation now`), { 'aria-label': `Clear the rate limit of ${a.name}` })
      : null,
    act('Edit', () => edit(a), { 'aria-label': `Edit ${a.name}` }),
    a.kind === 'oauth' ? act('Re-authenticate', () => reauth(a), { 'aria-label': `Re-authenticate ${a.name}` }) : null,
    act('Remove', () => remove(a), { class: 'small danger', 'aria-label': `Remove ${a.name}` }),
  ];
}

async function edit(a) {
  const name = h('input', { type: 'text', value: a.name, required: true, maxLength: 64, autocomplete: 'off' });
  const tier = select(TIERS, String(a.tier));
  const priority = h('input', { type: 'number', min: '0', max: '100', value: String(a.priority) });
  const result = await modal(`Edit ${a.name}`,
    h('div', {},
      field('Name', name),
      field('Tier', tier, 'How much traffic the weighted strategies give it.'),
      field('Priority', priority, '0 to 100, lower first: higher numbers serve only when every lower one is unavailable.')),
    [h('button', { value: 'cancel', formnovalidate: true }, 'Cancel'), h('button', { value: 'save', class: 'primary' }, 'Save')]);
  if (result !== 'save') return;
  const id = api.seg(a.id);
  try {
    if (name.value.trim() !== a.name) await api.post(`/api/accounts/${id}/rename`, { name: name.value.trim() });
    if (Number(tier.value) !== a.tier) await api.post(`/api/accounts/${id}/tier`, { tier: Number(tier.value) });
    if (Number(priority.value) !== a.priority) await api.post(`/api/accounts/${id}/priority`, { priority: Number(priority.value) });
    notify(`${name.value.trim()} saved`);
  } catch (e) {
    notify(`Could not save ${a.name}: ${e.message}`, 'error');
  }
  load();
}

async function remove(a) {
  const typed = h('input', { type: 'text', autocomplete: 'off', spellcheck: false });
  const confirmBtn = h('button', { value: 'remove', class: 'danger', disabled: true }, 'Remove');
  typed.addEventListener('input', () => { confirmBtn.disabled = typed.value !== a.name; });
  const result = await modal(`Remove ${a.name}?`,
    h('div', {},
      h('p', {}, 'It leaves the rotation for good; its request history stays. Type its name to confirm.'),
      field('Account name', typed)),
    [h('button', { value: 'cancel', formnovalidate: true }, 'Cancel'), confirmBtn]);
  if (result !== 'remove' || typed.value !== a.name) return;
  try {
    await api.del(`/api/accounts/${api.seg(a.id)}`);
    notify(`${a.name} removed`);
  } catch (e) {
    notify(`Could not remove ${a.name}: ${e.message}`, 'error');
  }
  load();
}

/** The second half of a sign-in: open the link, paste the code. */
function signInSteps(start, title) {
  const code = h('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: false, placeholder: 'CODE#STATE' });
  const expires = start.expiresAt ? ` The link is valid until ${new Date(start.expiresAt).toLocaleTimeString()}.` : '';
  return modal(title,
    h('div', {},
      h('ol', { class: 'steps' },
        h('li', {}, h('a', { href: start.authUrl, target: '_blank', rel: 'noopener noreferrer', class: 'button primary' }, 'Open the sign-in page'), ' ', copyButton(start.authUrl, 'Copy link'), expires),
        h('li', {}, 'Approve access. The page then shows a code.'),
        h('li', {}, field('Paste the code here', code)))),
    [h('button', { value: 'cancel', formnovalidate: true }, 'Cancel'), h('button', { value: 'finish', class: 'primary' }, 'Finish sign-in')])
    .then((r) => (r === 'finish' ? code.value.trim() : null));
}

async function finishSignIn(start, title, doneText) {
  for (;;) {
    const code = await signInSteps(start, title);
    if (!code) return false;
    try {
      await api.post('/api/oauth/callback', { sessionId: start.sessionId, code });
      notify(doneText);
      load();
      return true;
    } catch (e) {
      notify(`Sign-in failed: ${e.message}`, 'error');
      if (e.status !== 400 || /expired|unknown/i.test(e.message)) return false;
    }
  }
}

async function reauth(a) {
  try {
    const start = await api.post(`/api/accounts/${api.seg(a.id)}/reauth`, {});
    await finishSignIn(start, `Re-authenticate ${a.name}`, `${a.name} is signed in again`);
  } catch (e) {
    notify(`Could not start re-authentication of ${a.name}: ${e.message}`, 'error');
  }
}

function addForm() {
  const kind = h('fieldset', { class: 'choice' },
    h('legend', {}, 'Kind'),
    h('label', {}, h('input', { type: 'radio', name: 'add-kind', value: 'oauth', checked: true }), ' Claude subscription (OAuth sign-in)'),
    h('label', {}, h('input', { type: 'radio', name: 'add-kind', value: 'key' }), ' Console API key'));
  const name = h('input', { type: 'text', id: 'add-name', required: true, maxLength: 64, autocomplete: 'off', placeholder: 'e.g. work' });
  const mode = select([['max', 'Claude Pro / Max'], ['console', 'Anthropic Console (mints an API key)']], 'max', { id: 'add-mode' });
  const key = h('input', { type: 'password', id: 'add-key', autocomplete: 'off', spellcheck: false, placeholder: 'sk-ant-api03-…' });
  const tier = select(TIERS, '1', { id: 'add-tier' });
  const provider = select(PROVIDERS, 'anthropic', { id: 'add-provider' });
  const baseUrl = h('input', { type: 'url', id: 'add-base-url', autocomplete: 'off', placeholder: 'https://… (optional for presets)' });
  const modelMap = h('input', { type: 'text', id: 'add-model-map', autocomplete: 'off', placeholder: 'opus=glm-4.6,sonnet=glm-4.6' });
  const providerField = field('Provider', provider);
  const baseUrlField = field('Base URL', baseUrl);
  const modelMapField = field('Model map', modelMap, 'Requested model or family (opus, sonnet, haiku) = model to send.');
  const priority = h('input', { type: 'number', id: 'add-priority', min: '0', max: '100', value: '0' });
  const modeField = field('Sign in to', mode);
  const keyField = field('API key', key, 'Stored encrypted; only its last four characters are shown again.');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Start sign-in');
  const sync = () => {
    const oauth = kind.querySelector('input:checked').value === 'oauth';
    modeField.hidden = !oauth;
    keyField.hidden = oauth;
    providerField.hidden = oauth;
    baseUrlField.hidden = oauth;
    modelMapField.hidden = oauth;
    key.required = !oauth;
    submit.textContent = oauth ? 'Start sign-in' : 'Add account';
  };
  kind.addEventListener('change', sync);
  const form = h('form', { class: 'add-form', 'aria-label': 'Add an account' },
    kind, h('div', { class: 'row' }, field('Name', name), modeField, keyField, field('Tier', tier), field('Priority', priority)),
    h('div', { class: 'row' }, providerField, baseUrlField, modelMapField),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const oauth = kind.querySelector('input:checked').value === 'oauth';
    busy(submit, async () => {
      if (oauth) {
        const start = await api.post('/api/oauth/init', { name: name.value.trim(), mode: mode.value, tier: Number(tier.value) });
        if (await finishSignIn(start, `Sign in ${name.value.trim()}`, `${name.value.trim()} added`)) form.reset();
      } else {
        const body = { name: name.value.trim(), apiKey: key.value.trim(), tier: Number(tier.value), priority: Number(priority.value), provider: provider.value };
        if (baseUrl.value.trim()) body.baseUrl = baseUrl.value.trim();
        const pairs = modelMap.value.split(',').map((p) => p.split('=').map((x) => x.trim())).filter((p) => p.length === 2 && p[0] && p[1]);
        if (pairs.length) body.modelMap = Object.fromEntries(pairs);
        await api.post('/api/accounts', body);
        notify(`${name.value.trim()} added`);
        form.reset();
        load();
      }
      sync();
    }, 'Could not add the account');
  });
  sync();
  return form;
}

export default {
  mount(panel) {
    root = panel;
    els = {
      error: h('div'),
      body: h('tbody', { id: 'accounts-body' }),
    };
    fill(root,
      h('div', { class: 'panel-head' }, h('h1', {}, 'Accounts'), h('button', { type: 'button', onclick: load }, 'Refresh')),
      els.error,
      h('div', { class: 'card table-wrap' },
        h('table', { class: 'table', id: 'accounts-table' },
          h('caption', { class: 'sr-only' }, 'Accounts and their state'),
          h('thead', {}, h('tr', {}, ['Account', 'Kind', 'State', 'Tier', 'Priority', 'Requests', 'Last used', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
          els.body)),
      h('div', { class: 'card' }, h('h2', {}, 'Add an account'), addForm()));
  },
  show() {
    load();
    // Refresh unless the user is in a dialog or on a control of the table (a
    // re-render would move their focus).
    stop = every(5000, () => {
      const inTable = els.body.contains(document.activeElement);
      if (!document.querySelector('dialog[open]') && !inTable) load();
    });
  },
  hide() {
    if (stop) stop();
  },
};
