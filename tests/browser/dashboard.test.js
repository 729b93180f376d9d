// The dashboard without a worker: sign-in, submit with field errors, the
// queue list (live, filters, pages), abort and delete of a waiting queue,
// what a non-admin may not do, tokens, users, workers. Screenshots of each page.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startEnv, until } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
const revParse = (repo, rev) => execFileSync('git', ['-C', repo, 'rev-parse', rev], { encoding: 'utf8' }).trim();
const optionTexts = (page, sel) => page.locator(`${sel} option`).allTextContents();
const dialogButton = (page, name) => page.locator('dialog').getByRole('button', { name, exact: true });
if (!chrome.ok) console.log(`# skipping the dashboard tests: ${chrome.reason}`);

describe('dashboard', { skip: chrome.ok ? false : chrome.reason }, () => {
  let env;
  let browser;
  const pages = [];
  const open = async (opts) => {
    const p = await newPage(browser, env, opts);
    pages.push(p);
    return p;
  };

  before(async () => {
    env = await startEnv({ worker: false });
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (env) await env.stop();
  });

  it('signs in, says who is signed in, and signs out', async () => {
    const page = await open();
    await page.goto(env.base);
    // A fresh visitor lands on the sign-in page, without a 401 in the console.
    await page.waitForSelector('#signin-username');
    assert.match(page.url(), /#\/signin/);
    await shoot(page, 'signin');
    await assertAccessibleBoth(page, 'signin');

    await page.fill('#signin-username', 'alice');
    await page.fill('#signin-password', 'not-her-password');
    await page.click('#signin-submit');
    await page.waitForSelector('#signin-error:not([hidden])');
    assert.match(await page.textContent('#signin-error'), /wrong username or password/i);

    await page.fill('#signin-password', 'alice-pass-1');
    await page.click('#signin-submit');
    await page.waitForSelector('#who-name');
    assert.equal(await page.textContent('#who-name'), 'alice');
    assert.match(page.url(), /#\/queues/);
    assert.equal(await page.isVisible('[data-nav="admin"]'), false, 'no admin link for a non-admin');

    // A reload keeps the session (who am I).
    await page.reload();
    await page.waitForSelector('#who-name');
    assert.equal(await page.textContent('#who-name'), 'alice');

    await page.click('#signout');
    await page.waitForSelector('#signin-username');
    const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
    assert.equal(me, 401, 'the session cookie is gone');
    assertClean(page, [
      { status: 401, url: /\/api\/v1\/session$/ }, // the wrong password
      { status: 401, url: /\/api\/v1\/me$/ }, // the check after sign-out
    ]);
  });

  it('submits a queue, showing API errors next to their fields', async () => {
    const page = await open();
    await signIn(page, env, 'alice');
    await page.click('[data-nav="submit"]');
    await page.waitForSelector('#submit-form');

    // The farm's one repository is shown, not offered; its targets are a
    // select with the default chosen (GET /api/v1/config).
    const cfg = (await env.call('alice', 'GET', 'config')).body;
    assert.deepEqual(cfg.repos, [{ name: 'firmware' }]);
    assert.equal(cfg.default_target, 'lx106');
    await page.waitForSelector('#q-target');
    assert.equal(await page.inputValue('#q-repo'), 'firmware');
    assert.equal(await page.getAttribute('#q-repo', 'readonly'), '');
    assert.deepEqual(await optionTexts(page, '#q-target'), cfg.targets.map((t) => (t.name === 'lx106' ? 'lx106 (default)' : t.name)));
    assert.equal(await page.inputValue('#q-target'), 'lx106');

    // Client-side: a branch is needed.
    await page.click('#submit-queue');
    await page.waitForSelector('#err-branch:not([hidden])');

    // API: the branch does not exist -> next to the branch field.
    await page.fill('#q-branch', 'no-such-branch');
    await page.fill('.scenario-input >> nth=0', 'scenarios/unit.xml');
    await page.click('#submit-queue');
    await page.waitForFunction(() => /does not exist/.test(document.querySelector('#err-branch').textContent));
    assert.equal(await page.getAttribute('#q-branch', 'aria-invalid'), 'true');

    // API: the second scenario does not exist -> next to the second scenario (scenarios[1]).
    await page.fill('#q-branch', 'main');
    await page.click('#add-scenario');
    await page.fill('.scenario-input >> nth=1', 'scenarios/missing.xml');
    await page.click('#submit-queue');
    const secondError = page.locator('.scenario-row >> nth=1').locator('.field-error');
    await secondError.waitFor({ state: 'visible' });
    assert.match(await secondError.textContent(), /missing\.xml does not exist/);
    assert.equal(await page.isVisible('#err-branch'), false, 'the branch error is gone');
    assert.equal(await page.locator('.scenario-input >> nth=1').getAttribute('aria-invalid'), 'true');

    // API: priority out of range -> next to priority.
    await page.fill('.scenario-input >> nth=1', 'scenarios/quick.xml');
    await page.fill('#q-priority', '5000');
    await page.click('#submit-queue');
    await page.waitForSelector('#err-priority:not([hidden])');

    // Client-side: a commit is 7 to 40 hex digits (nothing is sent).
    await page.fill('#q-priority', '3');
    await page.fill('#q-commit', 'main~1');
    await page.click('#submit-queue');
    await page.waitForFunction(() => /7 to 40 hex digits/.test(document.querySelector('#err-commit').textContent));
    assert.equal(await page.getAttribute('#q-commit', 'aria-invalid'), 'true');
    assert.equal(await page.isVisible('#err-priority'), false, 'the priority error is gone');

    // API: a commit that is not on the branch (the tip of `slow`) -> 422 on commit.
    const slowTip = revParse(env.repo, 'slow');
    await page.fill('#q-commit', slowTip.slice(0, 9));
    await page.click('#submit-queue');
    await page.waitForFunction(() => /is not on branch "main"/.test(document.querySelector('#err-commit').textContent));
    assert.equal(await page.getAttribute('#q-commit', 'aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'q-commit', 'the field at fault has the focus');
    await shoot(page, 'submit');
    await assertAccessibleBoth(page, 'submit');

    // Success with an abbreviated commit of main's history (the fixture's
    // main is one commit): lands on the queue, waiting (no worker), first
    // in line, pinned to the full sha.
    const older = revParse(env.repo, 'main');
    await page.fill('#q-commit', older.slice(0, 8).toUpperCase());
    await page.fill('#q-timeout', '600');
    await page.click('#submit-queue');
    await page.waitForSelector('#queue-id');
    const id = await page.textContent('#queue-id');
    await page.waitForSelector('#verdict-title');
    assert.match(await page.textContent('#verdict-title'), /Waiting · #1 in line/);
    const q = await env.queue('admin', id);
    assert.equal(q.owner, 'alice');
    assert.equal(q.priority, 3);
    assert.equal(q.timeout_s, 600);
    assert.equal(q.repo, 'firmware');
    assert.equal(q.target, 'lx106');
    assert.equal(q.commit, older);
    assert.deepEqual(q.tasks.map((t) => t.scenario), ['scenarios/unit.xml', 'scenarios/quick.xml']);
    assert.equal(await page.locator('.task').count(), 2);
    // The pinned commit: short on the page, whole in its title and the copy button.
    assert.equal(await page.textContent('#queue-commit'), older.slice(0, 10));
    assert.equal(await page.getAttribute('#queue-commit', 'title'), older);
    assert.equal(await page.getAttribute('#copy-commit', 'aria-label'), `Copy commit ${older}`);
    await page.click('#copy-commit');
    await page.waitForSelector(`.toast >> text=${older}`);
    assertClean(page, [{ status: 422, url: /\/api\/v1\/queues$/ }]);
  });

  it('offers the farm’s repositories and targets as selects', async () => {
    // A farm of two repositories and two targets, as GET /api/v1/config would
    // list it (the test farm has one of each); the submission goes to the real app.
    const page = await open();
    await page.route((url) => url.pathname === '/api/v1/config', (route) => route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({
        repos: [{ name: 'firmware' }, { name: 'bootloader' }],
        targets: [{ name: 'esp32s3-box' }, { name: 'lx106' }],
        default_target: 'lx106',
      }),
    }));
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/submit`);
    await page.waitForSelector('select#q-repo');
    assert.deepEqual(await optionTexts(page, '#q-repo'), ['firmware (default)', 'bootloader']);
    assert.equal(await page.inputValue('#q-repo'), 'firmware', 'the default repository first and chosen');
    assert.deepEqual(await optionTexts(page, '#q-target'), ['esp32s3-box', 'lx106 (default)']);
    assert.equal(await page.inputValue('#q-target'), 'lx106', 'the default target is chosen');
    await shoot(page, 'submit-choices');
    await assertAccessibleBoth(page, 'submit (choices)');

    // The choices are what is sent: the real app knows neither.
    await page.fill('#q-branch', 'main');
    await page.fill('.scenario-input >> nth=0', 'scenarios/unit.xml');
    await page.selectOption('#q-target', 'esp32s3-box');
    await page.click('#submit-queue');
    await page.waitForSelector('#err-target:not([hidden])');
    assert.equal(await page.getAttribute('#q-target', 'aria-invalid'), 'true');
    await page.selectOption('#q-target', 'lx106');
    await page.selectOption('#q-repo', 'bootloader');
    await page.click('#submit-queue');
    await page.waitForFunction(() => /no such repository/.test(document.querySelector('#err-repo').textContent));
    assert.equal(await page.isVisible('#err-target'), false);

    // "Submit similar" from someone else's queue keeps its commit and choices.
    const theirs = await env.submit('admin', { branch: 'main', commit: revParse(env.repo, 'main'), scenarios: ['scenarios/quick.xml'] });
    await page.goto(`${env.base}/#/queues/${theirs.id}`);
    await page.click('#btn-similar');
    await page.waitForSelector('select#q-repo');
    assert.equal(await page.inputValue('#q-commit'), theirs.commit);
    assert.equal(await page.inputValue('#q-branch'), 'main');
    assert.equal(await page.inputValue('#q-repo'), 'firmware');
    assert.equal(await page.inputValue('.scenario-input >> nth=0'), 'scenarios/quick.xml');
    // The queue list test counts the waiting queues: leave none behind.
    assert.equal((await env.call('admin', 'DELETE', `queues/${theirs.id}`)).status, 204);
    assertClean(page, [{ status: 422, url: /\/api\/v1\/queues$/ }]);
  });

  it('lists queues live, with filters, positions and cursor pages', async () => {
    // 30 more queues: alice on main, admin on feature/v1.2-dots.
    for (let i = 0; i < 15; i++) {
      await env.submit('alice', { branch: 'main', scenarios: ['scenarios/quick.xml'] });
      await env.submit('admin', { branch: 'feature/v1.2-dots', scenarios: ['scenarios/unit.xml', 'scenarios/quick.xml'] });
    }
    const page = await open();
    await signIn(page, env, 'admin');
    await page.waitForSelector('#queue-table');
    const rows = page.locator('#queue-table tbody tr');
    assert.equal(await rows.count(), 25, 'one page holds 25 queues');
    const firstRow = rows.first();
    assert.match(await firstRow.locator('.position').textContent(), /#\d+ in line/);
    assert.match(await firstRow.locator('time').textContent(), /just now|s ago/);
    await page.waitForSelector('[data-stat="waiting"] .stat-count');
    assert.equal(await page.textContent('[data-stat="waiting"] .stat-count'), '31');

    // Older, then newer.
    const newestId = await firstRow.getAttribute('data-id');
    await page.click('#page-older');
    await page.waitForFunction(() => document.querySelectorAll('#queue-table tbody tr').length === 6);
    assert.match(page.url(), /before=\d+/);
    await page.click('#page-newer');
    await page.waitForFunction((id) => document.querySelector('#queue-table tbody tr')?.dataset.id === id, newestId);

    // Live: a queue submitted elsewhere shows up, an abort elsewhere changes its row.
    const fresh = await env.submit('bob', { branch: 'main', scenarios: ['scenarios/quick.xml'] });
    const freshRow = page.locator(`tr[data-id="${fresh.id}"]`);
    await freshRow.waitFor({ timeout: 8000 });
    assert.equal(await freshRow.getAttribute('data-status'), 'waiting');
    const aborted = await env.call('bob', 'POST', `queues/${fresh.id}/abort`);
    assert.equal(aborted.status, 202);
    await page.waitForSelector(`tr[data-id="${fresh.id}"][data-status="aborted"]`, { timeout: 8000 });

    // Filters: owner, branch, status (and the URL keeps them).
    await page.fill('#f-owner', 'alice');
    await page.waitForFunction(() => [...document.querySelectorAll('#queue-table tbody tr')].every((tr) => tr.querySelector('.cell-owner').textContent === 'alice'));
    assert.match(page.url(), /owner=alice/);
    assert.equal(await rows.count(), 16);
    await page.fill('#f-owner', '');
    await page.fill('#f-branch', 'feature/v1.2-dots');
    await page.waitForFunction(() => document.querySelectorAll('#queue-table tbody tr').length === 15);
    await page.fill('#f-branch', '');
    await page.selectOption('#f-status', 'aborted');
    await page.waitForFunction(() => document.querySelectorAll('#queue-table tbody tr').length === 1);
    assert.equal(await rows.first().getAttribute('data-id'), fresh.id);
    // The stat chips filter too, and a second press clears.
    await page.click('[data-stat="aborted"]');
    await page.waitForFunction(() => document.querySelectorAll('#queue-table tbody tr').length === 25);
    await page.click('#f-mine');
    await page.waitForFunction(() => document.querySelector('#f-owner').value === 'admin');
    await page.click('#f-clear');
    await page.waitForFunction(() => document.querySelectorAll('#queue-table tbody tr').length === 25);

    // Keyboard: a row's link opens the queue.
    await page.locator('#queue-table tbody tr a.qlink').first().focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#queue-id');
    await page.goBack();
    await page.waitForSelector('#queue-table');
    await shoot(page, 'queues');
    await assertAccessibleBoth(page, 'queues');
    await shoot(page, 'queues-dark', {
      widths: [1440],
      before: (p) => p.evaluate(() => document.documentElement.setAttribute('data-theme', 'dark')),
    });
    await page.evaluate(() => document.documentElement.removeAttribute('data-theme'));
    assertClean(page);
  });

  it('lets the owner abort and delete a waiting queue', async () => {
    const q = await env.submit('alice', { branch: 'main', scenarios: ['scenarios/unit.xml'] });
    const page = await open();
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/queues/${q.id}`);
    await page.waitForSelector('#btn-abort');
    await shoot(page, 'queue-waiting');
    await assertAccessibleBoth(page, 'queue (waiting)');
    await page.click('#btn-abort');
    // Our own dialog, not window.confirm: cancel first, then confirm.
    await dialogButton(page, 'Cancel').click();
    await page.waitForSelector('dialog', { state: 'detached' });
    assert.equal((await env.queue('admin', q.id)).status, 'waiting');
    await page.click('#btn-abort');
    await dialogButton(page, 'Abort queue').click();
    await page.waitForSelector('#verdict-title >> text=Aborted');
    assert.equal(await page.textContent('#verdict-reason'), 'aborted by alice');
    assert.equal(await page.isVisible('#btn-abort'), false);

    // Rerun: a new queue, hers, with the same branch and scenarios.
    await page.click('#btn-rerun');
    await page.waitForFunction((old) => {
      const el = document.querySelector('#queue-id');
      return el && el.textContent !== old;
    }, q.id);
    const again = await env.queue('admin', await page.textContent('#queue-id'));
    assert.equal(again.owner, 'alice');
    assert.equal(again.branch, 'main');
    assert.deepEqual(again.tasks.map((t) => t.scenario), ['scenarios/unit.xml']);
    assert.equal(again.status, 'waiting');
    await page.goBack();
    await page.waitForSelector(`#queue-id >> text=${q.id}`);

    await page.click('#btn-delete');
    await dialogButton(page, 'Delete queue').click();
    await page.waitForSelector('.page[data-page="queues"] :is(#queue-table, .empty)');
    assert.equal(await page.locator(`tr[data-id="${q.id}"]`).count(), 0);
    assert.equal((await env.call('admin', 'GET', `queues/${q.id}`)).status, 404);
    assertClean(page);
  });

  it('keeps a non-admin out of the admin page and other people’s queues', async () => {
    const theirs = await env.submit('admin', { branch: 'main', scenarios: ['scenarios/quick.xml'] });
    const page = await open();
    await signIn(page, env, 'bob');
    assert.equal(await page.locator('[data-nav="admin"]').count(), 0, 'no Admin in the navigation');
    await page.goto(`${env.base}/#/admin`);
    await page.waitForSelector('#admin-denied');
    assert.equal(await page.locator('#user-table').count(), 0);

    await page.goto(`${env.base}/#/queues/${theirs.id}`);
    await page.waitForSelector('#queue-id');
    assert.equal(await page.locator('#btn-abort').count(), 0, 'no abort button on someone else’s queue');
    assert.equal(await page.locator('#btn-delete').count(), 0, 'no delete button');
    assert.equal(await page.locator('#btn-rerun').count(), 0, 'no rerun button');
    assert.equal(await page.locator('#btn-similar').count(), 1, 'but a “submit similar” link');

    // And the API refuses, even with the CSRF header a page would send.
    const statuses = await page.evaluate(async (id) => {
      const h = { 'X-Requested-With': 'testarena' };
      return {
        abort: (await fetch(`/api/v1/queues/${id}/abort`, { method: 'POST', headers: h })).status,
        del: (await fetch(`/api/v1/queues/${id}`, { method: 'DELETE', headers: h })).status,
        users: (await fetch('/api/v1/users')).status,
        noCsrf: (await fetch(`/api/v1/queues/${id}/abort`, { method: 'POST' })).status,
      };
    }, theirs.id);
    assert.deepEqual(statuses, { abort: 403, del: 403, users: 403, noCsrf: 403 });
    assert.equal((await env.queue('admin', theirs.id)).status, 'waiting');
    assertClean(page, [{ status: 403, url: /\/api\/v1\/(queues|users)/ }]);
  });

  it('creates a token, shows its secret once, and revokes it', async () => {
    const page = await open();
    await signIn(page, env, 'alice');
    await page.click('[data-nav="tokens"]');
    await page.waitForSelector('#token-name');
    await page.fill('#token-name', 'ci-runner');
    await page.click('#token-create');
    await page.waitForSelector('#token-secret:not([hidden])');
    const secret = await page.inputValue('#token-secret-value');
    assert.ok(secret.length >= 20, 'a secret is shown');
    const me = await fetch(`${env.base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal((await me.json()).username, 'alice');
    await page.waitForSelector('#token-table tr[data-token]');
    await shoot(page, 'tokens');
    await assertAccessibleBoth(page, 'tokens');

    // Shown once: after a reload only the prefix remains.
    await page.reload();
    await page.waitForSelector('#token-table');
    assert.equal(await page.locator('#token-secret-value').count(), 0);
    assert.equal(await page.locator(`text=${secret}`).count(), 0);

    await page.click('#token-table button:has-text("Revoke")');
    await dialogButton(page, 'Revoke token').click();
    await page.waitForSelector('text=No tokens');
    const after = await fetch(`${env.base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(after.status, 401);
    assertClean(page);
  });

  it('lets an admin create users, reset passwords, disable and promote', async () => {
    const page = await open();
    await signIn(page, env, 'admin');
    await page.click('[data-nav="admin"]');
    await page.waitForSelector('#user-table');

    // A field error from the API (password too short) next to the field.
    await page.fill('#nu-username', 'carol');
    await page.fill('#nu-password', 'short');
    await page.click('#nu-create');
    await page.waitForSelector('#nu-password-err:not([hidden])');
    await page.fill('#nu-password', 'carol-pass-1');
    await page.click('#nu-create');
    const row = page.locator('tr[data-user="carol"]');
    await row.waitFor();

    await row.locator('[data-action="password"]').click();
    await page.fill('dialog input[name="password"]', 'carol-pass-2');
    await dialogButton(page, 'Set password').click();
    await page.waitForSelector('dialog', { state: 'detached' });
    const login = async (pw) => (await fetch(`${env.base}/api/v1/session`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'carol', password: pw }),
    })).status;
    assert.equal(await login('carol-pass-2'), 200);

    await row.locator('[data-action="admin"]').click();
    await page.waitForSelector('tr[data-user="carol"] .role-pill');
    await row.locator('[data-action="disable"]').click();
    await dialogButton(page, 'Disable').click();
    await page.waitForSelector('tr[data-user="carol"] td[data-label="State"] >> text=Disabled');
    assert.equal(await login('carol-pass-2'), 401, 'a disabled user cannot sign in');
    const users = (await env.call('admin', 'GET', 'users')).body;
    const carol = users.find((u) => u.username === 'carol');
    assert.equal(carol.is_admin, true);
    assert.equal(carol.disabled, true);
    await shoot(page, 'admin');
    await assertAccessibleBoth(page, 'admin');
    assertClean(page, [{ status: 422, url: /\/api\/v1\/users$/ }]);
  });

  it('shows the workers panel', async () => {
    const page = await open();
    await signIn(page, env, 'admin');
    await page.click('[data-nav="workers"]');
    await page.waitForSelector('.health-card[data-health="ok"]');
    assert.equal(await page.textContent('#n-workers'), '0');
    await page.waitForSelector('text=No worker has registered');
    await shoot(page, 'workers-none');
    await assertAccessibleBoth(page, 'workers');
    assertClean(page);
  });

  it('is usable with the keyboard alone', async () => {
    const page = await open();
    await page.goto(`${env.base}/#/signin`);
    await page.waitForSelector('#signin-username');
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type('admin-pass-1');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#who-name');
    // After a navigation the focus moves to the new content.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    // On a fresh page the skip link comes first and moves focus to the content.
    await page.reload();
    await page.waitForSelector('#queue-table, .empty');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'skip-link');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.equal(outline, 'solid', 'focus is visible');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    // Tab reaches the navigation and Enter follows it.
    await page.focus('[data-nav="tokens"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#token-name');
    await until(() => page.evaluate(() => document.activeElement.id === 'token-name'), 3000, 'focus in the token form');
    assertClean(page);
  });

  it('follows the system colour scheme and remembers the toggle', async () => {
    const bg = (p) => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const dark = await open({ colorScheme: 'dark' });
    await signIn(dark, env, 'admin');
    assert.equal(await bg(dark), 'rgb(9, 11, 24)', 'dark by the system preference');
    assert.equal(await dark.getAttribute('#theme-toggle', 'aria-label'), 'Switch to light theme');

    const page = await open({ colorScheme: 'light' });
    await signIn(page, env, 'admin');
    assert.equal(await bg(page), 'rgb(236, 238, 251)');
    await page.click('#theme-toggle');
    assert.equal(await bg(page), 'rgb(9, 11, 24)');
    await page.reload();
    await page.waitForSelector('#who-name');
    assert.equal(await bg(page), 'rgb(9, 11, 24)', 'the choice survives a reload');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    await page.click('#theme-toggle');
    assert.equal(await bg(page), 'rgb(236, 238, 251)');
    assertClean(page);
    assertClean(dark);
  });

  it('shows hostile text as text, never as markup', async () => {
    const page = await open();
    await signIn(page, env, 'alice');
    const evil = '<img src=x onerror="window.__xss=1"><b>bold</b>';
    // A token name comes back in the list and in the "created" note.
    await page.click('[data-nav="tokens"]');
    await page.fill('#token-name', evil);
    await page.click('#token-create');
    await page.waitForSelector('#token-table tr[data-token]');
    assert.equal(await page.textContent('#token-table tr[data-token] strong'), evil);
    // A scenario path comes back inside an API error message.
    await page.click('[data-nav="submit"]');
    await page.fill('#q-branch', 'main');
    await page.fill('.scenario-input >> nth=0', `scenarios/${evil}.xml`);
    await page.click('#submit-queue');
    const err = page.locator('.scenario-row .field-error');
    await err.waitFor({ state: 'visible' });
    assert.ok((await err.textContent()).includes('<img src=x'), 'the message shows the path as typed');
    const injected = await page.evaluate(() => ({
      img: document.querySelectorAll('img[src="x"], b').length,
      xss: window.__xss === 1,
    }));
    assert.deepEqual(injected, { img: 0, xss: false });
    assertClean(page, [{ status: 422, url: /\/api\/v1\/queues$/ }]);
  });

  it('has no console errors on any page', () => {
    for (const p of pages) assert.deepEqual(p.problems, [], `console errors on ${p.url()}`);
  });
});
