// The log viewer: a 60,000-line log stays responsive (bounded DOM, end and
// search in under 2 s), lossy decoding, jump to the first failure, long
// lines, and following a growing file live over SSE. No worker needed: the
// test writes the files into the queue's folder itself.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startEnv, until } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
if (!chrome.ok) console.log(`# skipping the log viewer tests: ${chrome.reason}`);

const LINES = 60000;
const FAIL_AT = 41234; // 1-based line numbers
const GURU_AT = 50001;
const BAD_UTF8_AT = 20000;
const LONG_AT = 30000;
const LONG_LEN = 100000;

function bigLog() {
  const parts = [];
  for (let n = 1; n <= LINES; n++) {
    let line;
    if (n === FAIL_AT) line = Buffer.from('test/test_big.c:99:test_needle:FAIL: Expected 1 Was 2\r\n');
    else if (n === GURU_AT) line = Buffer.from("Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\r\n");
    else if (n === BAD_UTF8_AT) line = Buffer.concat([Buffer.from('W (20000) flood: bytes '), Buffer.from([0xff, 0xfe]), Buffer.from(' and '), Buffer.from([0xc3, 0x28]), Buffer.from(' end\r\n')]);
    else if (n === LONG_AT) line = Buffer.from(`I (30000) flood: ${'x'.repeat(LONG_LEN)} needle-long\r\n`);
    else line = Buffer.from(`I (${n}) flood: line ${String(n).padStart(5, '0')} the quick brown fox jumps over the lazy dog\r\n`);
    parts.push(line);
  }
  return Buffer.concat(parts);
}

describe('log viewer', { skip: chrome.ok ? false : chrome.reason }, () => {
  let env;
  let browser;

  before(async () => {
    env = await startEnv({ worker: false });
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (env) await env.stop();
  });

  const taskDir = (q) => {
    const dir = path.join(env.dataDir, 'queues', q.id, 'tasks', q.tasks[0].id);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  };

  it('stays responsive on a 60,000-line log', async () => {
    const q = await env.submit('admin', { branch: 'main', scenarios: ['scenarios/unit.xml'] });
    const file = path.join(taskDir(q), 'big.log');
    fs.writeFileSync(file, bigLog());
    // Final, so the viewer reads it whole and does not follow it.
    await env.call('admin', 'POST', `queues/${q.id}/abort`);

    const page = await open(browser, env);
    await signIn(page, env, 'admin');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.click(`a.file-link[data-path="tasks/${q.tasks[0].id}/big.log"]`);
    const t0 = Date.now();
    await page.waitForFunction((n) => document.querySelector('#lv-count')?.textContent === `${n.toLocaleString()} lines`, LINES, { timeout: 20000 });
    const loadMs = Date.now() - t0;
    await page.waitForSelector('#lv-state >> text=Complete');

    const dom = await page.evaluate(() => ({ nodes: document.getElementsByTagName('*').length, rows: document.querySelectorAll('.lv-row').length }));
    assert.ok(dom.rows < 200, `rows in the DOM: ${dom.rows}`);
    assert.ok(dom.nodes < 2500, `elements in the document: ${dom.nodes}`);

    // The end, in under 2 s.
    let t = Date.now();
    await page.click('#lv-end');
    await page.locator(`.lv-row[data-line="${LINES}"]`).waitFor({ state: 'visible', timeout: 2000 });
    const endMs = Date.now() - t;
    assert.ok(endMs < 2000, `end took ${endMs} ms`);
    assert.match(await page.textContent(`.lv-row[data-line="${LINES}"] .lv-text`), /line 60000 the quick brown fox/);

    // Search finds one line among 60,000 in under 2 s.
    t = Date.now();
    await page.fill('#lv-search', 'line 45678');
    await page.press('#lv-search', 'Enter');
    await page.locator('.lv-row.lv-current[data-line="45678"]').waitFor({ state: 'visible', timeout: 2000 });
    const searchMs = Date.now() - t;
    assert.ok(searchMs < 2000, `search took ${searchMs} ms`);
    assert.equal(await page.textContent('#lv-matches'), '1 / 1');
    assert.equal(await page.textContent('.lv-row[data-line="45678"] mark'), 'line 45678');

    // Jump to the first failure (the Unity FAIL line, before the Guru Meditation).
    await page.click('#lv-first-failure');
    await page.locator(`.lv-row.lv-fail[data-line="${FAIL_AT}"]`).waitFor({ state: 'visible', timeout: 2000 });
    // And with the keyboard shortcut from the log itself.
    await page.click('#lv-end');
    await page.focus('.lv-scroll');
    await page.keyboard.press('f');
    await page.locator(`.lv-row[data-line="${FAIL_AT}"]`).waitFor({ state: 'visible', timeout: 2000 });

    // Bytes that are not UTF-8 are shown lossily.
    await page.fill('#lv-search', 'flood: bytes');
    await page.press('#lv-search', 'Enter');
    await page.locator(`.lv-row[data-line="${BAD_UTF8_AT}"]`).waitFor({ state: 'visible' });
    const lossy = await page.textContent(`.lv-row[data-line="${BAD_UTF8_AT}"] .lv-text`);
    assert.equal(lossy, 'W (20000) flood: bytes \uFFFD\uFFFD and \uFFFD( end');

    // A 100,000-character line is cut in the view and opens whole.
    await page.fill('#lv-search', 'needle-long');
    await page.press('#lv-search', 'Enter');
    await page.locator(`.lv-row[data-line="${LONG_AT}"] .lv-more`).click();
    const full = await page.textContent('dialog pre');
    assert.equal(full.length, 'I (30000) flood: '.length + LONG_LEN + ' needle-long'.length);
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog', { state: 'detached' });

    // Scrolling anywhere stays quick and the DOM stays small.
    const scroll = await page.evaluate(async () => {
      const s = document.querySelector('.lv-scroll');
      const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
      const t0 = performance.now();
      let worst = 0;
      for (let k = 0; k < 40; k++) {
        const a = performance.now();
        s.scrollTop = Math.floor(((k * 7919) % 40) / 40 * s.scrollHeight);
        await frame();
        await frame();
        worst = Math.max(worst, performance.now() - a);
      }
      return { total: performance.now() - t0, worst, rows: document.querySelectorAll('.lv-row').length };
    });
    assert.ok(scroll.total < 4000, `40 jumps took ${scroll.total} ms`);
    assert.ok(scroll.rows < 200, `rows after scrolling: ${scroll.rows}`);
    console.log(`# 60,000 lines: loaded in ${loadMs} ms, end ${endMs} ms, search ${searchMs} ms, 40 jumps ${Math.round(scroll.total)} ms (worst ${Math.round(scroll.worst)} ms), ${dom.nodes} elements`);

    await page.fill('#lv-search', 'line 4123');
    await page.press('#lv-search', 'Enter');
    await page.click('#lv-first-failure');
    await shoot(page, 'log', { fullPage: false });
    await assertAccessibleBoth(page, 'log viewer');
    await shoot(page, 'log-dark', {
      widths: [1440],
      fullPage: false,
      before: (p) => p.evaluate(() => document.documentElement.setAttribute('data-theme', 'dark')),
    });
    assertClean(page);
  });

  it('follows a growing log live and completes when the queue ends', async () => {
    const q = await env.submit('admin', { branch: 'main', scenarios: ['scenarios/unit.xml'] });
    const file = path.join(taskDir(q), 'live.log');
    fs.writeFileSync(file, 'boot 1\nboot 2\nboot 3\n');

    const page = await open(browser, env);
    await signIn(page, env, 'admin');
    await page.goto(`${env.base}/#/queues/${q.id}/log/tasks/${q.tasks[0].id}/live.log`);
    await page.waitForSelector('#lv-state >> text=Live');
    await page.waitForSelector('#lv-count >> text=3 lines');
    assert.equal(await page.getAttribute('#lv-follow', 'aria-pressed'), 'true');

    // Lines appended to the file appear, and the newest stays in view.
    for (let n = 4; n <= 60; n++) {
      fs.appendFileSync(file, `tick ${n}\n`);
      if (n % 8 === 0) await page.locator(`.lv-row[data-line="${n}"]`).waitFor({ state: 'visible', timeout: 5000 });
    }
    await page.locator('.lv-row[data-line="60"]').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.textContent('.lv-row[data-line="60"] .lv-text'), 'tick 60');

    // Scrolling up stops following.
    await page.evaluate(() => { document.querySelector('.lv-scroll').scrollTop = 0; });
    await page.waitForFunction(() => document.querySelector('#lv-follow').getAttribute('aria-pressed') === 'false');

    // A partial line waits for its newline; the end of the queue flushes it.
    fs.appendFileSync(file, 'no newline yet');
    await env.call('admin', 'POST', `queues/${q.id}/abort`);
    await page.waitForSelector('#lv-state >> text=Complete', { timeout: 10000 });
    await page.waitForSelector('#lv-count >> text=61 lines');
    await page.click('#lv-end');
    await page.locator('.lv-row[data-line="61"]').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('.lv-row[data-line="61"] .lv-text'), 'no newline yet');
    assertClean(page);
  });

  it('picks a live log up again after the server restarts', async () => {
    const q = await env.submit('admin', { branch: 'main', scenarios: ['scenarios/unit.xml'] });
    const file = path.join(taskDir(q), 'restart.log');
    fs.writeFileSync(file, 'before 1\nbefore 2\n');
    const page = await open(browser, env);
    await signIn(page, env, 'admin');
    await page.goto(`${env.base}/#/queues/${q.id}/log/tasks/${q.tasks[0].id}/restart.log`);
    await page.waitForSelector('#lv-state >> text=Live');
    await page.waitForSelector('#lv-count >> text=2 lines');

    // Lines over SSE whose text and bytes differ in length: multi-byte
    // characters (fewer UTF-16 units than bytes) and bytes that are not
    // UTF-8 (each shown as U+FFFD). The resume offset is the events'
    // `next_offset`, not anything counted from the text.
    fs.appendFileSync(file, Buffer.concat([
      Buffer.from('live 3 \u00e9t\u00e9 \u2713 \u{1F680}\n'),
      Buffer.from('live 4 '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' end\n'),
    ]));
    await page.locator('.lv-row[data-line="4"]').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.textContent('.lv-row[data-line="4"] .lv-text'), 'live 4 \uFFFD\uFFFD\uFFFD end');

    // Down long enough for a resync attempt to fail, then back.
    const failed = page.waitForEvent('requestfailed', { predicate: (r) => r.url().includes('/api/v1/'), timeout: 20000 });
    await env.stopApp();
    await page.waitForSelector('#lv-state >> text=Reconnecting');
    await failed;
    fs.appendFileSync(file, 'after 5\nafter 6\n');
    await env.startApp();
    await page.locator('.lv-row[data-line="6"]').waitFor({ state: 'visible', timeout: 20000 });
    await page.waitForSelector('#lv-state >> text=Live');
    // Resumed at the byte after the last event: every line once, none cut.
    assert.equal(await page.textContent('#lv-count'), '6 lines');
    assert.equal(await page.textContent('.lv-row[data-line="3"] .lv-text'), 'live 3 \u00e9t\u00e9 \u2713 \u{1F680}');
    assert.equal(await page.textContent('.lv-row[data-line="5"] .lv-text'), 'after 5');
    // And the stream goes on from there.
    fs.appendFileSync(file, 'after 7\n');
    await page.locator('.lv-row[data-line="7"]').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.textContent('#lv-count'), '7 lines');
    assert.equal(await page.textContent('.lv-row[data-line="7"] .lv-text'), 'after 7');
    // While the server was down the browser logged failed connections; nothing else.
    page.problems = page.problems.filter((p) => !/net::ERR_(CONNECTION_REFUSED|EMPTY_RESPONSE|INCOMPLETE_CHUNKED_ENCODING|CONNECTION_RESET)/.test(p));
    assertClean(page);
  });

  it('resumes the queue page’s timeline after the server restarts', async () => {
    const q = await env.submit('admin', { branch: 'main', scenarios: ['scenarios/unit.xml'] });
    const file = path.join(env.dataDir, 'queues', q.id, 'queue.log');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const line = (n, text) => `2024-01-02T12:00:${String(n).padStart(2, '0')}Z ${text}\n`;
    fs.writeFileSync(file, line(1, 'build started'));
    const page = await open(browser, env);
    await signIn(page, env, 'admin');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.waitForSelector('#activity .live-state.state-live');
    const texts = () => page.locator('#activity-lines .act-text').allTextContents();
    await until(async () => (await texts()).length === 1, 5000, 'the first timeline line');

    // A line longer in bytes than in characters, and one with bytes that are not UTF-8.
    fs.appendFileSync(file, Buffer.concat([
      Buffer.from(line(2, 'build passed \u2713 \u00fcber')),
      Buffer.from('2024-01-02T12:00:03Z test '), Buffer.from([0xff, 0xfe]), Buffer.from(' started\n'),
    ]));
    await until(async () => (await texts()).length === 3, 5000, 'three timeline lines');

    const failed = page.waitForEvent('requestfailed', { predicate: (r) => r.url().includes('/api/v1/'), timeout: 20000 });
    await env.stopApp();
    await page.waitForSelector('#activity .live-state.state-reconnecting');
    await failed;
    fs.appendFileSync(file, line(4, 'test unit passed'));
    await env.startApp();
    await until(async () => (await texts()).length >= 4, 20000, 'the line written while the server was away');
    fs.appendFileSync(file, line(5, 'test boot started'));
    await until(async () => (await texts()).length >= 5, 5000, 'a line after the restart');
    // Every line once, in order, none cut.
    assert.deepEqual(await texts(), [
      'build started',
      'build passed \u2713 \u00fcber',
      'test \uFFFD\uFFFD started',
      'test unit passed',
      'test boot started',
    ]);
    await page.waitForSelector('#activity .live-state.state-live');
    page.problems = page.problems.filter((p) => !/net::ERR_(CONNECTION_REFUSED|EMPTY_RESPONSE|INCOMPLETE_CHUNKED_ENCODING|CONNECTION_RESET)/.test(p));
    assertClean(page);
  });

  it('waits for a log that does not exist yet', async () => {
    const q = await env.submit('admin', { branch: 'main', scenarios: ['scenarios/unit.xml'] });
    const page = await open(browser, env);
    await signIn(page, env, 'admin');
    await page.goto(`${env.base}/#/queues/${q.id}/log/tasks/${q.tasks[0].id}/later.log`);
    await page.waitForSelector('#lv-state >> text=Waiting for output');
    fs.writeFileSync(path.join(taskDir(q), 'later.log'), 'first line\nsecond line\n');
    await page.locator('.lv-row[data-line="2"]').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.textContent('.lv-row[data-line="1"] .lv-text'), 'first line');
    await env.call('admin', 'POST', `queues/${q.id}/abort`);
    await page.waitForSelector('#lv-state >> text=Complete', { timeout: 10000 });
    assertClean(page);
  });
});

async function open(browser, env) {
  return newPage(browser, env);
}
