// History in the dashboard, with the real worker and QEMU: the fixture's
// history.xml on the fail branch run twice at one commit, its `coin` test
// turned to fail between the runs (a file in the farm's home). The queue
// page shows the comparison ("1 new failure since …") and the badges (new
// failure, known flaky), the Tests page lists coin first by flakiness, the
// test's page draws its verdict strip and its duration chart as SVG, and
// "Rerun failed" makes a queue of only what failed. Axe in both colour
// schemes, screenshots at 1440 and 390 px. Skipped, with the reason printed,
// when the worker (or QEMU, the cross compiler) is missing.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startEnv, workerAvailable } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
const worker = workerAvailable();
const skip = !chrome.ok ? chrome.reason : !worker.ok ? worker.reason : false;
if (skip) console.log(`# skipping the history tests: ${skip}`);
const SCENARIO = 'scenarios/history.xml';

describe('history in the dashboard', { skip }, () => {
  let env;
  let browser;
  let first;
  let second;

  before(async () => {
    env = await startEnv({ worker: true });
    await env.startWorker();
    browser = await launch();
    const coin = path.join(env.dataDir, 'history-coin');
    first = await env.submit('alice', { branch: 'fail', scenarios: [SCENARIO] });
    await env.waitStatus(first.id, ['failed'], 90000);
    fs.writeFileSync(coin, 'fail\n');
    second = await env.submit('alice', { branch: 'fail', commit: first.commit, scenarios: [SCENARIO] });
    await env.waitStatus(second.id, ['failed'], 90000);
    fs.rmSync(coin);
  });

  after(async () => {
    if (browser) await browser.close();
    if (env) {
      const left = await env.stop();
      assert.deepEqual(left, [], 'nothing was left running');
    }
  });

  it('shows a new failure, known flaky, and the comparison on the queue page', async () => {
    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/queues/${second.id}`);
    await page.waitForSelector('#history:not([hidden]) #compare-line');
    const line = await page.textContent('#compare-line');
    assert.match(line, new RegExp(`1 new failure since ${first.id}`));
    assert.match(line, /still failing/);
    const coin = page.locator('[data-test="coin"]');
    await coin.locator('.hbadge-new').waitFor();
    assert.equal(await coin.locator('.hbadge-flaky').count(), 1, 'coin is known flaky');
    assert.equal(await page.locator('[data-test="steady"] .hbadge').count(), 0, 'steady has no badge');
    assert.ok(await page.isVisible('#btn-rerun-failed'));
    assert.ok(await page.isVisible('#btn-rerun-5'));
    await shoot(page, 'history-queue');
    await assertAccessibleBoth(page, 'queue page with history');

    // The first queue had nothing to compare with.
    await page.goto(`${env.base}/#/queues/${first.id}`);
    await page.waitForSelector('#compare-line >> text=nothing to compare with');
    assertClean(page);
  });

  it('lists the tests, flaky first, and sorts them', async () => {
    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.click('[data-nav="tests"]');
    await page.waitForSelector('.tests-table tbody tr');
    const firstRow = page.locator('.tests-table tbody tr').first();
    assert.equal(await firstRow.getAttribute('data-test'), 'coin');
    assert.equal(await firstRow.getAttribute('data-flaky'), 'true');
    await page.click('#tests-sort [data-sort="name"]');
    await page.waitForSelector('#tests-sort [data-sort="name"][aria-pressed="true"]');
    await page.waitForFunction(() => document.querySelector('.tests-table tbody tr')?.dataset.test === 'coin');
    await page.click('#tests-sort [data-sort="failures"]');
    await page.waitForFunction(() => document.querySelector('.tests-table tbody tr')?.dataset.test !== 'coin');
    const top = await page.locator('.tests-table tbody tr').first().getAttribute('data-test');
    assert.ok(top.startsWith('unit'), `unit failed twice: ${top}`);
    assert.match(page.url(), /sort=failures/);
    await page.fill('#tests-branch', 'main');
    await page.press('#tests-branch', 'Enter');
    await page.waitForSelector('.tests-table-wrap >> text=No tests in this window');
    await page.fill('#tests-branch', '');
    await page.press('#tests-branch', 'Enter');
    await page.click('#tests-sort [data-sort="flaky"]');
    await page.waitForFunction(() => document.querySelector('.tests-table tbody tr')?.dataset.test === 'coin');
    await shoot(page, 'history-tests');
    await assertAccessibleBoth(page, 'tests page');
    assertClean(page);
  });

  it('draws a test\'s verdicts and durations, each linking to its queue', async () => {
    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/tests`);
    await page.click('.tests-table tbody tr[data-test="coin"] a');
    await page.waitForSelector('#verdict-strip');
    assert.equal(await page.textContent('#test-name'), 'coin');
    const marks = page.locator('#verdict-strip .mark');
    assert.equal(await marks.count(), 2);
    assert.equal(await marks.nth(0).getAttribute('class'), 'mark mark-passed', 'oldest first');
    assert.equal(await marks.nth(1).getAttribute('class'), 'mark mark-failed');
    assert.equal(await marks.nth(1).getAttribute('href'), `#/queues/${second.id}`);
    const dots = page.locator('#duration-chart circle');
    assert.equal(await dots.count(), 2);
    assert.equal(await page.locator('#duration-chart a').first().getAttribute('href'), `#/queues/${first.id}`);
    assert.equal(await page.locator('#runs-table tbody tr').count(), 2);
    await shoot(page, 'history-test');
    await assertAccessibleBoth(page, 'test page');
    await marks.nth(1).click();
    await page.waitForSelector(`#queue-id >> text=${second.id}`);
    assertClean(page);
  });

  it('reruns only what failed', async () => {
    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/queues/${second.id}`);
    await page.click('#btn-rerun-failed');
    await page.waitForFunction((old) => {
      const el = document.querySelector('#queue-id');
      return el && el.textContent !== old;
    }, second.id);
    const id = await page.textContent('#queue-id');
    const q = await env.queue('alice', id);
    assert.deepEqual([...q.tasks[0].only].sort(), ['coin', 'unit']);
    assert.equal(q.commit, first.commit);
    const done = await env.waitStatus(id, ['failed', 'passed'], 90000);
    assert.ok(!done.tasks[0].tests.some((t) => t.name === 'steady'), 'steady passed: not run again');
    await page.waitForSelector('#compare-line >> text=1 fixed', { timeout: 15000 });
    assertClean(page);
  });
});
