// With the real worker building the lx106 fixture firmware and booting it in
// QEMU: a queue goes waiting -> running -> passed while its lines arrive
// live; a failing queue shows its failing Unity case; a running queue is
// aborted and deleted; a non-owner cannot abort it. Skipped, with the reason
// printed, when target/debug/testarena-worker (or QEMU, the cross compiler)
// is missing.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, workerAvailable } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
const worker = workerAvailable();
const skip = !chrome.ok ? chrome.reason : !worker.ok ? worker.reason : false;
if (skip) console.log(`# skipping the worker tests: ${skip}`);
const dialogButton = (page, name) => page.locator('dialog').getByRole('button', { name, exact: true });

describe('dashboard with a worker', { skip }, () => {
  let env;
  let browser;

  before(async () => {
    env = await startEnv({ worker: true });
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (env) {
      const left = await env.stop();
      assert.deepEqual(left, [], 'nothing was left running');
    }
  });

  it('shows a queue go waiting -> running -> passed, with lines arriving live', async () => {
    // A first queue keeps the only slot busy, so the next one waits.
    const first = await env.submit('admin', { branch: 'slow', scenarios: ['scenarios/slow.xml'] });
    await env.waitStatus(first.id, 'running', 60000);

    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.click('[data-nav="submit"]');
    await page.fill('#q-branch', 'slow');
    await page.fill('.scenario-input >> nth=0', 'scenarios/slow.xml');
    await page.click('#submit-queue');
    await page.waitForSelector('#queue-id');
    const id = await page.textContent('#queue-id');

    // Waiting, first in line.
    await page.waitForSelector('.hero.status-waiting');
    assert.match(await page.textContent('#verdict-title'), /Waiting · #1 in line/);

    // A second page follows the test's log before it even exists.
    const logPage = await newPage(browser, env);
    await signIn(logPage, env, 'alice');
    await logPage.goto(`${env.base}/#/queues/${id}/log/tasks/${id}.1/count.log`);
    await logPage.waitForSelector('#lv-state >> text=Waiting for output');

    // Running (pushed over SSE, no reload), with the timeline growing live.
    await page.waitForSelector('.hero.status-running', { timeout: 60000 });
    await page.waitForSelector('#activity-lines li >> text=claimed by worker browser-worker');
    await page.waitForSelector('#activity-lines li >> text=build passed', { timeout: 30000 });

    // The log lines arrive one by one while the test runs.
    await logPage.waitForSelector('.lv-row .lv-text >> text=tick 2', { timeout: 30000 });
    const early = parseInt((await logPage.textContent('#lv-count')).replace(/\D/g, ''), 10);
    assert.equal(await logPage.textContent('#lv-state'), 'Live');
    await logPage.waitForSelector('.lv-row .lv-text >> text=tick 9', { timeout: 15000 });
    assert.ok(early < 9, `lines arrived over time (${early} at first)`);
    await shoot(logPage, 'log-live', { fullPage: false });
    await assertAccessibleBoth(logPage, 'live log');

    // Passed, on both pages, without a reload.
    await page.waitForSelector('.hero.status-passed', { timeout: 60000 });
    assert.equal(await page.textContent('#verdict-title'), 'Every test passed');
    await logPage.waitForSelector('#lv-state >> text=Complete', { timeout: 15000 });
    assert.equal(await logPage.textContent('.lv-row[data-line="14"] .lv-text'), 'tick 14');
    await page.waitForSelector('#activity-lines li >> text=finished passed');
    await page.waitForSelector(`#log-files a[data-path="tasks/${id}.1/count.log"]`);
    assert.equal((await env.queue('admin', id)).status, 'passed');
    assertClean(page);
    assertClean(logPage);
  });

  it('shows the failing Unity case of a failing queue, and its message', async () => {
    const q = await env.submit('bob', { branch: 'fail', scenarios: ['scenarios/unit.xml', 'scenarios/quick.xml'] });
    const page = await newPage(browser, env);
    await signIn(page, env, 'bob');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.waitForSelector('.hero.status-failed', { timeout: 60000 });
    const failing = page.locator('li.case.case-failed');
    await failing.waitFor();
    assert.equal(await failing.count(), 1);
    assert.equal(await failing.getAttribute('data-name'), 'unit/test_the_answer');
    assert.equal(await failing.locator('.case-name').textContent(), 'test_the_answer');
    assert.equal(await failing.locator('.case-message').textContent(), 'Expected 42 Was 41');
    assert.equal(await page.textContent(`.task[data-task="${q.id}.1"] .test-message`), '1 unity failures');
    assert.equal(await page.locator('li.case.case-passed').count(), 3);
    assert.equal(await page.locator('li.case.case-skipped').count(), 1);
    assert.equal(await page.textContent('#n-failed'), '2');
    await shoot(page, 'queue');
    await assertAccessibleBoth(page, 'failed queue');
    await shoot(page, 'queue-dark', {
      widths: [1440],
      before: (p) => p.evaluate(() => document.documentElement.setAttribute('data-theme', 'dark')),
    });
    await page.evaluate(() => document.documentElement.removeAttribute('data-theme'));

    // JUnit XML names the failure.
    const junit = await page.evaluate(async (id) => (await fetch(`/api/v1/queues/${id}/junit.xml`)).text(), q.id);
    assert.match(junit, /test_the_answer/);
    assert.match(junit, /Expected 42 Was 41/);

    // The test's log, from its link, jumps to the FAIL line.
    await page.click(`.task[data-task="${q.id}.1"] .test-links a:has-text("Open log")`);
    await page.waitForSelector('#lv-state >> text=Complete');
    await page.click('#lv-first-failure');
    const row = page.locator('.lv-row.lv-current, .lv-row.lv-flash').first();
    await row.waitFor();
    assert.match(await row.textContent(), /test_the_answer:FAIL: Expected 42 Was 41/);
    assertClean(page);
  });

  it('aborts a running queue, then deletes it', async () => {
    const q = await env.submit('admin', { branch: 'hang', scenarios: ['scenarios/unit.xml'] });
    const page = await newPage(browser, env);
    await signIn(page, env, 'admin');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.waitForSelector('.hero.status-running', { timeout: 60000 });
    assert.equal(await page.locator('#btn-delete').count(), 0, 'no delete while running');
    await page.click('#btn-abort');
    await dialogButton(page, 'Abort queue').click();
    await page.waitForSelector('.hero.status-aborted', { timeout: 20000 });
    assert.equal(await page.textContent('#verdict-reason'), 'aborted by admin');
    await page.waitForSelector('#btn-delete');
    assert.equal(await page.locator('#btn-abort').count(), 0);

    await page.click('#btn-delete');
    await dialogButton(page, 'Delete queue').click();
    await page.waitForSelector('.page[data-page="queues"] :is(#queue-table, .empty)');
    assert.equal((await env.call('admin', 'GET', `queues/${q.id}`)).status, 404);
    assertClean(page);
  });

  it('does not let a non-owner abort a running queue', async () => {
    const q = await env.submit('admin', { branch: 'slow', scenarios: ['scenarios/sleep.xml'] });
    await env.waitStatus(q.id, 'running', 60000);
    const page = await newPage(browser, env);
    await signIn(page, env, 'bob');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.waitForSelector('.hero.status-running');
    assert.equal(await page.locator('#btn-abort').count(), 0);
    assert.equal(await page.locator('#btn-delete').count(), 0);
    const status = await page.evaluate(async (id) => (await fetch(`/api/v1/queues/${id}/abort`, {
      method: 'POST', headers: { 'X-Requested-With': 'testarena' },
    })).status, q.id);
    assert.equal(status, 403);
    assert.equal((await env.queue('admin', q.id)).status, 'running');

    // The workers panel shows it running on the worker.
    await page.click('[data-nav="workers"]');
    await page.waitForSelector(`.worker[data-worker="browser-worker"][data-state="busy"] a >> text=${q.id}`);
    await shoot(page, 'workers');
    await assertAccessibleBoth(page, 'workers (busy)');
    // And the list, with every status so far.
    await page.click('[data-nav="queues"]');
    await page.waitForSelector(`tr[data-id="${q.id}"][data-status="running"]`);
    await shoot(page, 'queues');

    // Its owner's view, while it runs.
    const owner = await newPage(browser, env);
    await signIn(owner, env, 'admin');
    await owner.goto(`${env.base}/#/queues/${q.id}`);
    await owner.waitForSelector('.hero.status-running');
    await owner.waitForSelector('#btn-abort');
    await owner.waitForSelector('#activity-lines li >> text=test #1/nap started');
    // The test in progress is listed with a link to follow its output.
    await owner.waitForSelector(`.test-pending[data-test="nap"] a[href$="/log/tasks/${q.id}.1/nap.log"]`);
    await shoot(owner, 'queue-running');
    await assertAccessibleBoth(owner, 'running queue');
    assertClean(owner);

    const r = await env.call('admin', 'POST', `queues/${q.id}/abort`);
    assert.equal(r.status, 202);
    await env.waitStatus(q.id, 'aborted', 20000);
    await page.waitForSelector(`tr[data-id="${q.id}"][data-status="aborted"]`, { timeout: 8000 });
    assertClean(page, [{ status: 403, url: /\/abort$/ }]);
  });
});
