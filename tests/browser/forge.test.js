// Forges on the dashboard (DESIGN section 12): a queue that a signed Gitea
// push started shows who pushed, and its page lists the commit statuses
// and notifications sent for it, with their tries and last answers. The
// forge is a STAND-IN (no Gitea runs here): a local HTTP server that takes
// Gitea's status endpoint and answers the first status 500, so a retry
// shows; the push is the webhook Gitea sends, signed with the secret.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { startEnv, until } from './lib/env.js';
import { assertAccessibleBoth } from './lib/a11y.js';
import { launch, newPage, signIn, assertClean, shoot, chromiumAvailable } from './lib/browser.js';

const chrome = chromiumAvailable();
if (!chrome.ok) console.log(`# skipping the forge tests: ${chrome.reason}`);

const SECRET = 'browser-forge-hook-secret-Zq81';
const TOKEN = 'browser-forge-status-token-Wd52';

// The stand-in: Gitea's POST /api/v1/repos/{owner}/{repo}/statuses/{sha}
// and a notification URL; the first status is answered 500.
function startStandin() {
  const got = [];
  let failFirst = true;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      let code = 404;
      if (req.url.startsWith('/notify/')) code = 200;
      else if (/^\/api\/v1\/repos\/[^/]+\/[^/]+\/statuses\/[0-9a-f]{40}$/.test(req.url)) {
        code = req.headers.authorization === `token ${TOKEN}` ? 201 : 401;
        let context = '';
        try {
          context = JSON.parse(body).context;
        } catch {
          /* not JSON: refused below */
        }
        if (code === 201 && failFirst && context === 'testarena') {
          failFirst = false;
          code = 500;
        }
      }
      got.push({ url: req.url, code, body });
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(code === 500 ? '{"message":"the stand-in was told to fail"}' : '{"id":1}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, got, base: `http://127.0.0.1:${server.address().port}` }));
  });
}

describe('forges on the dashboard', { skip: chrome.ok ? false : chrome.reason }, () => {
  let env;
  let browser;
  let standin;

  before(async () => {
    standin = await startStandin();
    env = await startEnv({
      repoKeys: [
        'forge = "gitea"',
        `forge_api = "${standin.base}/api/v1"`,
        'forge_repo = "team/firmware"',
        'webhook_secret_env = "BROWSER_FORGE_HOOK_SECRET"',
        'status_token_env = "BROWSER_FORGE_STATUS_TOKEN"',
      ].join('\n'),
      extra: `[[notify]]\nurl = "${standin.base}/notify/chat/T000/s3cret-path"\nevents = ["queue.finished"]\n`,
      appEnv: { BROWSER_FORGE_HOOK_SECRET: SECRET, BROWSER_FORGE_STATUS_TOKEN: TOKEN },
    });
    browser = await launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (env) {
      const left = await env.stop();
      assert.deepEqual(left, [], 'nothing was left running');
    }
    if (standin) standin.server.close();
  });

  it('shows who pushed and each delivery with its tries and last answer', async () => {
    // The pushed commit asks for the unit scenario on main.
    const git = (...args) => execFileSync('git', ['-C', env.repo, '-c', 'commit.gpgsign=false', ...args], {
      env: {
        ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_AUTHOR_NAME: 'Forge Test', GIT_AUTHOR_EMAIL: 'forge@testarena.invalid',
        GIT_COMMITTER_NAME: 'Forge Test', GIT_COMMITTER_EMAIL: 'forge@testarena.invalid',
      },
      encoding: 'utf8',
    });
    const fs = await import('node:fs');
    fs.writeFileSync(`${env.repo}/.testarena.toml`, '[[push]]\nbranches = ["main"]\nscenarios = ["scenarios/unit.xml"]\n');
    git('add', '.testarena.toml');
    git('commit', '-q', '--no-verify', '-m', 'Test pushes');
    const sha = git('rev-parse', 'HEAD').trim();

    // The webhook Gitea sends after the push, signed.
    const body = JSON.stringify({ ref: 'refs/heads/main', before: '0'.repeat(40), after: sha, pusher: { login: 'dana', username: 'dana' } });
    const signature = crypto.createHmac('sha256', SECRET).update(body).digest('hex');
    const res = await fetch(`${env.base}/api/v1/hooks/firmware`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Gitea-Event': 'push', 'X-Gitea-Delivery': 'browser-1', 'X-Gitea-Signature': signature },
      body,
    });
    assert.equal(res.status, 200);
    const receipt = await res.json();
    assert.equal(receipt.outcome, 'started', JSON.stringify(receipt));
    const id = receipt.queues[0];

    // No worker runs here: the admin aborts the waiting queue, which ends it,
    // and its end goes to the forge (error) and to the notification URL.
    const aborted = await env.call('admin', 'POST', `queues/${id}/abort`);
    assert.equal(aborted.status, 202);
    await until(async () => {
      const list = (await env.call('alice', 'GET', `queues/${id}/deliveries`)).body;
      return list.some((d) => d.context === 'testarena' && d.state === 'delivered');
    }, 20000, 'the queue status retried and delivered');

    const page = await newPage(browser, env);
    await signIn(page, env, 'alice');
    await page.goto(`${env.base}/#/queues/${id}`);
    await page.waitForSelector('#triggered-by');
    assert.equal(await page.textContent('#triggered-by'), 'dana');
    assert.match(await page.textContent('#queue-owner'), /testarena · pushed by dana/);

    await page.waitForSelector('#deliveries:not([hidden]) .delivery');
    const queueStatus = page.locator('.delivery[data-kind="status"]').filter({ hasText: 'on testarena' }).filter({ hasNotText: 'testarena/' });
    assert.equal(await queueStatus.getAttribute('data-state'), 'delivered');
    const text = await queueStatus.textContent();
    assert.match(text, /Commit status error on testarena/);
    assert.match(text, /2 tries · last answer 201/);
    assert.ok(await page.locator('.delivery[data-kind="status"]', { hasText: 'testarena/scenarios/unit.xml' }).count() === 1);
    const note = page.locator('.delivery[data-kind="notify"]');
    assert.match(await note.textContent(), /Notification queue\.finished/);
    // The notification URL's path is a secret: only its host is shown.
    assert.ok(!(await page.textContent('#deliveries')).includes('s3cret'));

    await assertAccessibleBoth(page, 'queue page with deliveries');
    await shoot(page, 'queue-deliveries');
    assertClean(page);
  });
});
