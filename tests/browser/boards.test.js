// The Boards page and the board on the queue page (DESIGN section 10), with
// the real worker registering two boards from its config: devkit-01 on a
// device that exists (/dev/null: present, so idle, but no tty) and
// bench-02 on one that does not (offline). An admin puts a board in
// maintenance and asks for a health check; a non-admin sees no buttons; a
// queue pinned to devkit-01 ends `error` with a board fault (its console
// is no serial port), shown on the queue page with the board it ran on.
// Skipped, with the reason printed, when the worker or Chromium is missing.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, workerAvailable, until } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
const worker = workerAvailable();
const skip = !chrome.ok ? chrome.reason : !worker.ok ? worker.reason : false;
if (skip) console.log(`# skipping the boards tests: ${skip}`);

const BOARDS = `
[[boards]]
id = "devkit-01"
target = "lx106"
serial = "/dev/null"
flash = ["true", "{serial}"]
reset = ["true"]
tags = ["wifi", "psram"]

[[boards]]
id = "bench-02"
target = "lx106"
serial = "/nonexistent/serial/by-id/usb-bench-02"
flash = ["true"]
reset = ["true"]
tags = ["wifi"]
health = { repo = "firmware", branch = "main", scenario = "scenarios/unit.xml", every_h = 24 }
`;

describe('boards', { skip }, () => {
  let env;
  let browser;

  before(async () => {
    env = await startEnv({ worker: true, extra: BOARDS });
    browser = await launch();
    await until(async () => {
      const r = await env.call('admin', 'GET', 'boards');
      return r.status === 200 && r.body.length === 2;
    }, 20000, 'the worker to register its boards');
  });

  after(async () => {
    if (browser) await browser.close();
    if (env) {
      const left = await env.stop();
      assert.deepEqual(left, [], 'nothing was left running');
    }
  });

  it('shows each board with its status and health; admins change them', async () => {
    const page = await newPage(browser, env);
    await signIn(page, env, 'admin');
    await page.click('[data-nav="boards"]');
    const devkit = page.locator('[data-board="devkit-01"]');
    await devkit.waitFor();
    assert.equal((await devkit.locator('.board-status').textContent()).trim(), 'Idle');
    assert.equal((await devkit.locator('.board-tags').textContent()).trim(), 'psram, wifi');
    const bench = page.locator('[data-board="bench-02"]');
    assert.equal((await bench.locator('.board-status').textContent()).trim(), 'Offline');
    assert.equal((await bench.locator('.board-health').textContent()).trim(), 'Health unknown');
    await shoot(page, 'boards');
    await assertAccessibleBoth(page, 'boards');

    // Maintenance, with a note; then back.
    await devkit.locator('.board-maintenance').click();
    await page.getByLabel('Note (why, until when)').fill('rewiring the hub');
    await page.locator('dialog').getByRole('button', { name: 'Start maintenance', exact: true }).click();
    await page.waitForSelector('[data-board="devkit-01"][data-state="maintenance"]');
    assert.equal(await page.textContent('[data-board="devkit-01"] .board-note'), 'rewiring the hub');
    const stored = await env.call('admin', 'GET', 'boards/devkit-01');
    assert.equal(stored.body.maintenance, true);
    await page.click('[data-board="devkit-01"] .board-maintenance');
    await page.waitForSelector('[data-board="devkit-01"][data-state="idle"]');

    // A health check on request: queued for the system user.
    await bench.locator('.board-check').click();
    await page.waitForSelector('.toast >> text=Health check queued');
    const b = await env.call('admin', 'GET', 'boards/bench-02');
    assert.match(b.body.health_queue, /^health-bench-02-/);
    const q = await env.queue('admin', b.body.health_queue);
    assert.equal(q.owner, 'testarena');
    assertClean(page);
  });

  it('shows no admin buttons to others, and the board a queue ran on', async () => {
    const page = await newPage(browser, env, { colorScheme: 'dark' });
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/boards`);
    await page.waitForSelector('[data-board="devkit-01"]');
    assert.equal(await page.locator('.board-maintenance, .board-check').count(), 0);

    const queued = await env.submit('alice', { branch: 'main', scenarios: ['scenarios/unit.xml'], board: 'devkit-01' });
    const done = await env.waitStatus(queued.id, ['error', 'failed', 'passed'], 90000);
    assert.equal(done.status, 'error');
    assert.match(done.status_reason, /^board devkit-01: /);
    assert.equal(done.ran_on, 'devkit-01');
    await page.goto(`${env.base}/#/queues/${queued.id}`);
    await page.waitForSelector('#queue-board');
    assert.equal(await page.textContent('#queue-board'), 'devkit-01');
    await shoot(page, 'queue-board');
    await assertAccessibleBoth(page, 'queue on a board');
    assertClean(page);
  });
});
