// Attempts on the queue page (DESIGN section 11, "Attempts"), with the real
// worker building the lx106 fixture and QEMU: the worker is SIGKILLed while
// a queue runs, its restart retries the queue (retry_errors defaults to 1),
// and the page, open all along, follows the queue through its second
// attempt to its verdict and lists the first attempt with a link to its
// build log under attempts/1/. Skipped, with the reason printed, when the
// worker (or QEMU, the cross compiler, Chromium) is missing.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, workerAvailable } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
const worker = workerAvailable();
const skip = !chrome.ok ? chrome.reason : !worker.ok ? worker.reason : false;
if (skip) console.log(`# skipping the attempts tests: ${skip}`);

describe('attempts on the queue page', { skip }, () => {
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

  it('follows a queue whose worker was killed through its second attempt', async () => {
    await env.startWorker();
    const q = await env.submit('alice', { branch: 'slow', scenarios: ['scenarios/slow.xml'] });
    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.waitForSelector('#activity-lines li >> text=build passed', { timeout: 60000 });
    assert.equal(await page.locator('#attempts').count(), 0, 'a first attempt shows no attempts');

    // The worker dies in the middle of the test; its restart recovers the
    // queue and, an attempt being left, runs it again.
    process.kill(-env.worker.pid, 'SIGKILL');
    await env.worker.exited;
    env.worker = null;
    await env.startWorker();

    await page.waitForSelector('.hero.status-passed', { timeout: 90000 });
    await page.waitForSelector('#attempts');
    assert.match(await page.textContent('.attempts-title'), /^Attempt 2 · 1 earlier$/);
    const earlier = page.locator('li.attempt[data-attempt="1"]');
    assert.equal(await earlier.locator('.attempt-reason').textContent(), 'worker lost');
    assert.match(await earlier.textContent(), /browser-worker on qemu · ended .+ after \d/);
    assert.doesNotMatch(await earlier.textContent(), /object/);
    const href = await earlier.locator('a.attempt-log').getAttribute('href');
    assert.equal(href, `#/queues/${q.id}/log/attempts/1/build.log`);
    await page.waitForSelector('#activity-lines li >> text=retrying after: worker lost (attempt 2 of 2)');
    await page.waitForSelector(`#log-files a[data-path="attempts/1/build.log"]`);
    const json = await env.queue('admin', q.id);
    assert.equal(json.attempt, 2);
    assert.equal(json.attempts.length, 1);

    await shoot(page, 'queue-attempts');
    await assertAccessibleBoth(page, 'queue with an earlier attempt');

    // The earlier attempt's build log opens in the log viewer.
    await earlier.locator('a.attempt-log').click();
    await page.waitForSelector('.lv-row .lv-text >> text=make', { timeout: 15000 });
    assertClean(page);
  });
});
