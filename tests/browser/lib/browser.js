// Debian's Chromium through playwright-core: pages that record console
// errors, get the production Content-Security-Policy, and take screenshots.

import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { SHOTS, USERS } from './env.js';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CSP = "default-src 'self'";

export function chromiumAvailable() {
  return fs.existsSync(CHROMIUM)
    ? { ok: true }
    : { ok: false, reason: `${CHROMIUM} is missing: apt-get install -y chromium` };
}

export async function launch() {
  // Playwright gives every launch a fresh, temporary user-data dir.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * A new context and page. Every console error and uncaught exception is
 * recorded in `page.problems`; the browser's own "Failed to load resource"
 * lines (an API 4xx) go to `page.httpErrors` with their URL, so a test can
 * say which ones it caused on purpose.
 */
export async function newPage(browser, env, { width = 1440, height = 900, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.problems = [];
  page.httpErrors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'assert') return;
    const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text());
    if (m) page.httpErrors.push({ status: Number(m[1]), url: msg.location().url });
    else page.problems.push(`console.${msg.type()}: ${msg.text()} (${msg.location().url}:${msg.location().lineNumber})`);
  });
  page.on('pageerror', (err) => page.problems.push(`uncaught: ${err.message}\n${err.stack || ''}`));
  // nginx sends this CSP in production: the dashboard must work under it.
  await page.route((url) => url.origin === env.base && (url.pathname === '/' || url.pathname.endsWith('.html')), async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, headers: { ...res.headers(), 'content-security-policy': CSP } });
  });
  page.setDefaultTimeout(15000);
  return page;
}

/**
 * Fails when the page logged a console error, or an HTTP error that is not
 * in `expected` ([{status, url: RegExp}]).
 */
export function assertClean(page, expected = []) {
  assert.deepEqual(page.problems, [], `console errors on ${page.url()}`);
  const surprising = page.httpErrors.filter((e) => !expected.some((x) => x.status === e.status && x.url.test(e.url)));
  assert.deepEqual(surprising, [], `unexpected HTTP errors on ${page.url()}`);
}

export async function signIn(page, env, user) {
  await page.goto(`${env.base}/#/signin`);
  await page.fill('#signin-username', user);
  await page.fill('#signin-password', USERS[user].password);
  await page.click('#signin-submit');
  await page.waitForSelector('#who-name');
  assert.equal(await page.textContent('#who-name'), user);
}

/** Waits until the page has painted its last changes (fonts, two frames). */
export async function settle(page) {
  await page.evaluate(async () => {
    await document.fonts.ready;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  });
}

/** Asserts that nothing sticks out sideways at the current width (the page never scrolls horizontally). */
export async function assertFits(page, label) {
  const over = await page.evaluate(() => {
    const body = document.body;
    const saved = body.style.overflowX;
    body.style.overflowX = 'visible';
    const width = document.documentElement.clientWidth;
    const scroll = document.documentElement.scrollWidth;
    body.style.overflowX = saved;
    return scroll > width ? { width, scroll } : null;
  });
  assert.equal(over, null, `${label} is wider than the screen`);
}

/**
 * Screenshots at 1440 and 390 px wide into target/screenshots/NAME-WIDTH.png,
 * after checking that the page also fits a 375 px phone.
 */
export async function shoot(page, name, { widths = [1440, 390], fullPage = true, before } = {}) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const original = page.viewportSize();
  const files = [];
  await page.setViewportSize({ width: 375, height: 812 });
  await settle(page);
  await assertFits(page, `${name} at 375 px`);
  for (const width of widths) {
    await page.setViewportSize({ width, height: width < 600 ? 844 : 900 });
    if (before) await before(page, width);
    await settle(page);
    const file = path.join(SHOTS, `${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage });
    files.push(file);
  }
  await page.setViewportSize(original);
  await settle(page);
  return files;
}
