// Drives the dashboard in Debian's Chromium with playwright-core. Started by
// tests/api/dashboard.rs with the daemon's address; talks to it over stdio:
//   "@@ SEND"            → asks the Rust test to send a request through the proxy,
//   stdin "SENT <id>"    ← the request's x-claudeflare-request-id,
//   "@@ OK <summary>"    → every check passed (exit 0); failures exit 1.
// Screenshots of each tab go to the directory given as the second argument.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node dashboard.mjs <daemon address> <screenshot dir>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
async function ask(command) {
  console.log(`@@ ${command}`);
  const { value, done } = await lines.next();
  if (done) throw new Error(`no answer to ${command}`);
  return value.trim();
}

function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
  console.error(`  ok: ${message}`);
}

const consoleErrors = [];
const profile = mkdtempSync(join(tmpdir(), 'claudeflare-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
  colorScheme: 'light',
});
context.setDefaultTimeout(15000);
const page = context.pages()[0] || (await context.newPage());
page.on('console', (msg) => {
  if (msg.type() === 'error') consoleErrors.push(`console: ${msg.text()}`);
});
page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
page.on('requestfailed', (req) => {
  // Live streams are aborted on purpose when a tab is left, and leaving a page
  // aborts whatever it was still fetching: neither is a failure.
  const why = (req.failure() && req.failure().errorText) || '';
  if (!req.url().includes('/stream') && why !== 'net::ERR_ABORTED') consoleErrors.push(`request failed: ${req.url()} ${why}`);
});

const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
async function noErrors(where) {
  const toasts = await page.locator('.toast.error').allTextContents();
  check(toasts.length === 0, `no error message shown (${where})${toasts.length ? `: ${toasts.join(' | ')}` : ''}`);
  check(consoleErrors.length === 0, `no console errors (${where})${consoleErrors.length ? `: ${consoleErrors.join(' | ')}` : ''}`);
}
const tab = (name) => page.getByRole('tab', { name });
const api = (path) => page.evaluate(async (p) => (await fetch(p)).json(), path);

let failed = false;
try {
  // Overview
  await page.goto(`${base}/`);
  await page.locator('#overview-cards .metric').first().waitFor();
  await page.locator('#overview-limits [data-account="alpha"]').waitFor();
  check(await page.title() !== '', 'the page has a title');
  const requestsCard = await page.locator('#overview-cards .metric').first().textContent();
  check(/Requests\s*[1-9]/.test(requestsCard), `the requests card counts the seeded traffic (${requestsCard.trim()})`);
  const util5h = await page.locator('#overview-limits [data-account="alpha"] [role=meter]').first().getAttribute('aria-valuenow');
  check(util5h === '42', `alpha's 5h utilization bar shows 42% (${util5h})`);
  await page.locator('#overview-chart svg').waitFor();
  await page.waitForTimeout(300);
  await shot('overview');
  await noErrors('overview');

  // Accounts: both shown; pausing beta in the UI pauses it in the API.
  await tab('Accounts').click();
  await page.locator('#accounts-body tr[data-account="alpha"]').waitFor();
  await page.locator('#accounts-body tr[data-account="beta"]').waitFor();
  check(await page.locator('#accounts-body tr').count() === 2, 'the accounts table shows both accounts');
  await page.getByRole('button', { name: 'Pause beta' }).click();
  await page.locator('#accounts-body tr[data-account="beta"] .state', { hasText: 'Paused' }).waitFor();
  const beta = (await api('/api/accounts')).find((a) => a.name === 'beta');
  check(beta && beta.paused === true, 'pausing beta in the UI paused it in the API');
  check(await page.getByRole('button', { name: 'Resume beta' }).isVisible(), 'beta now offers Resume');
  await shot('accounts');
  await noErrors('accounts');

  // Requests: a request sent through the proxy appears live; its detail shows the conversation.
  await tab('Requests').click();
  await page.locator('#requests-body tr[data-id]').first().waitFor();
  await page.locator('#requests-live', { hasText: 'Live' }).waitFor();
  const id = (await ask('SEND')).replace(/^SENT\s+/, '');
  const row = page.locator(`#requests-body tr[data-id="${id}"]`);
  await row.waitFor({ timeout: 10000 });
  check(await row.evaluate((tr) => tr.classList.contains('fresh')), `request ${id} arrived through the live stream`);
  await row.locator('button').click();
  const detail = page.locator('#request-detail');
  await detail.locator('.conversation').first().waitFor();
  const text = await detail.textContent();
  for (const expected of ['What is the weather in Paris?', 'get_weather', 'Tool use', 'Tool result', '18°C and sunny',
    'Thinking', 'Let me think', 'Hello', 'Request headers', 'anthropic-version', 'Tokens and cost']) {
    check(text.includes(expected), `the detail view shows "${expected}"`);
  }
  check(await detail.locator('.turn.user').count() >= 2 && await detail.locator('.turn.assistant').count() >= 2,
    'the conversation shows user and assistant turns');
  check(await detail.getByRole('button', { name: /^Copy/ }).count() >= 3, 'the detail view has copy buttons');
  await detail.scrollIntoViewIfNeeded();
  await shot('request-detail');
  await detail.getByRole('button', { name: 'Close' }).first().click();
  await shot('requests');
  await noErrors('requests');

  // Analytics: the charts render with data.
  await tab('Analytics').click();
  for (const chart of ['chart-requests', 'chart-token-kinds', 'chart-tokens', 'chart-cost-model', 'chart-latency', 'chart-speed', 'chart-cache']) {
    await page.locator(`#${chart} svg`).first().waitFor();
    const points = Number(await page.locator(`#${chart}`).getAttribute('data-points'));
    check(points > 0, `${chart} is drawn with data (${points} marks)`);
  }
  const totals = await page.locator('#analytics-totals').textContent();
  check(/Requests\s*[1-9]/.test(totals), 'the analytics totals count requests');
  await page.selectOption('#an-mode', 'cumulative');
  await page.locator('#chart-requests path.line').first().waitFor();
  check(await page.locator('#chart-requests path.line').count() > 0, 'cumulative mode draws lines');
  await page.selectOption('#an-mode', 'normal');
  await page.locator('#chart-requests rect.bar').first().waitFor();
  await shot('analytics');
  await noErrors('analytics');

  // Logs and Settings.
  await tab('Logs').click();
  await page.locator('#logs-live', { hasText: 'Live' }).waitFor();
  await page.locator('#logs-pause').click();
  check(await page.locator('#logs-pause').getAttribute('aria-pressed') === 'true', 'the log can be paused');
  await page.locator('#logs-pause').click();
  await shot('logs');
  await tab('Settings').click();
  await page.locator('#strategy-form input[value="session"]').waitFor();
  check(await page.locator('#strategy-form input[name=strategy]').count() >= 6, 'every strategy is offered with its description');
  await shot('settings');
  await noErrors('logs and settings');

  // Keyboard: arrow keys move between tabs.
  await tab('Settings').focus();
  await page.keyboard.press('ArrowLeft');
  check(await tab('Logs').getAttribute('aria-selected') === 'true', 'ArrowLeft moves to the previous tab');

  // Theme toggle.
  const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const before = await bg();
  await page.locator('#theme-toggle').click();
  const theme = await page.evaluate(() => document.documentElement.dataset.theme);
  const after = await bg();
  check(theme === 'dark' && before !== after, `the theme toggle switches to dark (${before} → ${after})`);
  await page.reload();
  await page.locator('#log-output').waitFor();
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'the chosen theme survives a reload');
  await tab('Analytics').click();
  await page.locator('#chart-requests rect.bar').first().waitFor();
  await page.waitForTimeout(200);
  await shot('analytics-dark');
  await tab('Overview').click();
  await page.locator('#overview-chart svg').waitFor();
  await shot('overview-dark');
  await page.locator('#theme-toggle').click();
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'light', 'the toggle switches back to light');

  // A phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `nothing overflows sideways on a phone (${overflow}px)`);
  await shot('overview-phone');
  await page.setViewportSize({ width: 1280, height: 900 });

  // The about page.
  await page.goto(`${base}/about`);
  await page.locator('h1').waitFor();
  check((await page.locator('main').textContent()).includes('Getting started'), 'the about page has the getting-started steps');
  await shot('about');
  await noErrors('about');

  console.log('@@ OK all dashboard checks passed');
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err.stack || err}`);
  if (consoleErrors.length) console.error(`console errors: ${consoleErrors.join('\n')}`);
  await shot('failure').catch(() => {});
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  stdin.close();
}
process.exit(failed ? 1 : 0);
