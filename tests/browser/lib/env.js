// A throw-away TestArena: temp home, fixture repository, config, users, and
// the real `testarena-app` (and `testarena-worker` when it is built), each
// in its own process group so that stopping kills everything they started.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
export const APP_BIN = path.join(TARGET, 'debug', 'testarena-app');
export const WORKER_BIN = path.join(TARGET, 'debug', 'testarena-worker');
export const SHOTS = path.join(TARGET, 'screenshots');

export const USERS = {
  admin: { password: 'admin-pass-1', admin: true },
  alice: { password: 'alice-pass-1', admin: false },
  bob: { password: 'bob-pass-123', admin: false },
};

const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'TestArena Browser Tests',
  GIT_AUTHOR_EMAIL: 'browser@testarena.invalid',
  GIT_COMMITTER_NAME: 'TestArena Browser Tests',
  GIT_COMMITTER_EMAIL: 'browser@testarena.invalid',
  GIT_AUTHOR_DATE: '2024-01-02T12:00:00+00:00',
  GIT_COMMITTER_DATE: '2024-01-02T12:00:00+00:00',
  GIT_TERMINAL_PROMPT: '0',
};

// Scenarios of the `slow` branch: a test that prints a line every half
// second (to watch output arrive live) and one that sleeps (a queue that
// stays running as long as a test needs it).
const SLOW_XML = `<scenario name="slow" timeout="120">
  <description>Prints a line every half second</description>
  <test name="count" timeout="60">
    <run>i=1; while [ "$i" -le 14 ]; do echo "tick $i"; i=$((i+1)); sleep 0.5; done</run>
  </test>
</scenario>
`;
const SLEEP_XML = `<scenario name="sleep" timeout="600">
  <description>Stays running until aborted</description>
  <test name="nap" timeout="300">
    <run>echo "napping"; sleep 240</run>
  </test>
</scenario>
`;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  }
  return r.stdout;
}

/** Builds a binary when it is missing (or TESTARENA_BUILD=1); returns whether it exists. */
export function ensureBinary(pkg, bin, file) {
  if (fs.existsSync(file) && process.env.TESTARENA_BUILD !== '1') return true;
  if (process.env.TESTARENA_NO_BUILD === '1') return fs.existsSync(file);
  const r = spawnSync('cargo', ['build', '-p', pkg, '--bin', bin], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) console.log(`# cargo build -p ${pkg} --bin ${bin} failed (exit ${r.status})`);
  return fs.existsSync(file);
}

export function workerAvailable() {
  if (process.env.TESTARENA_NO_WORKER === '1') return { ok: false, reason: 'TESTARENA_NO_WORKER=1' };
  if (!fs.existsSync(WORKER_BIN)) {
    return { ok: false, reason: `${path.relative(ROOT, WORKER_BIN)} does not exist: build it with cargo build -p testarena-worker --bin testarena-worker` };
  }
  for (const tool of ['qemu-system-xtensa', 'xtensa-lx106-elf-gcc', 'make']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      return { ok: false, reason: `${tool} is not installed (see docs/LX106.md)` };
    }
  }
  return { ok: true };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function until(fn, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(100);
  }
}

function makeRepo(dir) {
  run('bash', [path.join(ROOT, 'tests/fixtures/make-repo.sh'), dir]);
  const git = (...args) => run('git', ['-C', dir, '-c', 'commit.gpgsign=false', ...args], { env: { ...process.env, ...GIT_ENV } });
  git('checkout', '-q', '-b', 'slow', 'main');
  fs.writeFileSync(path.join(dir, 'scenarios/slow.xml'), SLOW_XML);
  fs.writeFileSync(path.join(dir, 'scenarios/sleep.xml'), SLEEP_XML);
  git('add', 'scenarios/slow.xml', 'scenarios/sleep.xml');
  git('commit', '-q', '--no-verify', '-m', 'Slow scenarios for the browser tests');
  git('checkout', '-q', 'main');
}

// The lx106 target: the one profile file the scripts and the Rust test kit
// append to their configs too.
const LX106_PROFILE = fs.readFileSync(path.join(ROOT, 'tests/fixtures/lx106.toml'), 'utf8');

// `repoKeys` go into the repository's table and `extra` after it (the
// forge tests' keys, DESIGN section 12).
function configToml({ home, port, staticDir, repo, repoKeys = '', extra = '' }) {
  return `home = "${home}/data"
default_target = "lx106"

[server]
listen = "127.0.0.1:${port}"
static_dir = "${staticDir}"
login_attempts_per_minute = 1000

[worker]
id = "browser-worker"
slots = 1
poll_interval_ms = 100
abort_grace_s = 1
heartbeat_s = 1
# Every queue builds (the suites watch "build passed"); retry_errors keeps
# its default of 1 (attempts.test.js relies on it).
build_cache_mib = 0

[[repos]]
name = "firmware"
url = "${repo}"
${repoKeys}
${extra}
${LX106_PROFILE}`;
}

const live = new Set();
// A crash of the test process must not leave servers behind.
process.on('exit', () => {
  for (const child of live) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

function startProcess(name, bin, args, logFile, env = {}) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(bin, args, {
    detached: true, // its own process group
    stdio: ['ignore', fd, fd],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', ...env },
  });
  fs.closeSync(fd);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.label = name;
  live.add(child);
  child.exited.then(() => live.delete(child));
  return child;
}

async function stopProcess(child, graceMs = 6000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const done = await Promise.race([child.exited, sleep(graceMs).then(() => null)]);
  if (!done) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await child.exited;
  }
}

/** Kills processes still running whose command line mentions `dir` (QEMU or a shell of a scenario). */
function killLeftovers(dir) {
  const killed = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.includes(dir) && Number(pid) !== process.pid) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed.push(`${pid}: ${cmd.replace(/\0/g, ' ').slice(0, 120)}`);
      } catch {
        /* gone */
      }
    }
  }
  return killed;
}

/**
 * Starts a TestArena. Returns {base, home, dataDir, api(user), stop(), startWorker(), ...}.
 */
export async function startEnv({ worker = false, repoKeys = '', extra = '', appEnv = {} } = {}) {
  if (!ensureBinary('testarena-api', 'testarena-app', APP_BIN)) {
    throw new Error(`${APP_BIN} is missing and could not be built`);
  }
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'testarena-browser-'));
  const repo = path.join(home, 'repo');
  makeRepo(repo);
  const staticDir = path.join(ROOT, 'static');
  const configPath = path.join(home, 'config.toml');
  const dataDir = path.join(home, 'data');
  fs.mkdirSync(dataDir);

  for (const [name, u] of Object.entries(USERS)) {
    fs.writeFileSync(configPath, configToml({ home, port: 1, staticDir, repo }));
    run(APP_BIN, ['--config', configPath, 'user', 'add', name, ...(u.admin ? ['--admin'] : []), '--password-stdin'], {
      input: `${u.password}\n`,
      env: { ...process.env, RUST_LOG: 'warn' },
    });
  }

  let app = null;
  let port = 0;
  const appLog = path.join(home, 'app.log');
  for (let attempt = 0; attempt < 5 && !app; attempt++) {
    port = await freePort();
    fs.writeFileSync(configPath, configToml({ home, port, staticDir, repo, repoKeys, extra }));
    const child = startProcess('app', APP_BIN, ['--config', configPath], appLog, appEnv);
    const base = `http://127.0.0.1:${port}`;
    const up = await Promise.race([
      until(async () => (await fetch(`${base}/api/v1/health`)).ok, 30000, 'the app to answer /api/v1/health').then(() => true, () => false),
      child.exited.then(() => false),
    ]);
    if (up) app = child;
    else await stopProcess(child);
  }
  if (!app) throw new Error(`testarena-app did not start:\n${fs.readFileSync(appLog, 'utf8').slice(-3000)}`);
  const base = `http://127.0.0.1:${port}`;

  const env = {
    base,
    home,
    dataDir,
    configPath,
    repo,
    app,
    worker: null,
    /** fetch as `user` (Basic auth: no cookie, so no CSRF header needed). */
    async call(user, method, url, body) {
      const headers = { Authorization: `Basic ${Buffer.from(`${user}:${USERS[user].password}`).toString('base64')}` };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const res = await fetch(`${base}${url.startsWith('/') ? url : `/api/v1/${url}`}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        json = text;
      }
      return { status: res.status, body: json, headers: res.headers };
    },
    async submit(user, body) {
      const r = await env.call(user, 'POST', 'queues', body);
      if (r.status !== 201) throw new Error(`submit failed: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async queue(user, id) {
      return (await env.call(user, 'GET', `queues/${encodeURIComponent(id)}`)).body;
    },
    async waitStatus(id, statuses, ms = 60000) {
      const want = [].concat(statuses);
      return until(async () => {
        const q = await env.queue('admin', id);
        return want.includes(q.status) ? q : null;
      }, ms, `queue ${id} to be ${want.join(' or ')}`);
    },
    async startWorker() {
      if (env.worker) return env.worker;
      env.worker = startProcess('worker', WORKER_BIN, ['--config', configPath], path.join(home, 'worker.log'));
      await until(async () => {
        if (env.worker.exitCode !== null) throw new Error(`the worker exited: ${fs.readFileSync(path.join(home, 'worker.log'), 'utf8').slice(-2000)}`);
        const h = await (await fetch(`${base}/api/v1/health`)).json();
        return h.workers.some((w) => w.id === 'browser-worker');
      }, 30000, 'the worker to register');
      return env.worker;
    },
    async stopApp() {
      await stopProcess(app);
    },
    /** Starts the app again (after stopApp) on the same port and database. */
    async startApp() {
      app = startProcess('app', APP_BIN, ['--config', configPath], appLog, appEnv);
      env.app = app;
      await until(async () => (await fetch(`${base}/api/v1/health`)).ok, 30000, 'the app to answer again');
    },
    async stopWorker() {
      await stopProcess(env.worker);
      env.worker = null;
    },
    logs() {
      const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
      return { app: read(appLog), worker: read(path.join(home, 'worker.log')) };
    },
    async stop() {
      await stopProcess(env.worker);
      await stopProcess(app);
      const left = killLeftovers(home);
      if (left.length) console.log(`# killed leftover processes:\n# ${left.join('\n# ')}`);
      if (process.env.TESTARENA_KEEP_HOME === '1') console.log(`# kept ${home}`);
      else fs.rmSync(home, { recursive: true, force: true });
      return left;
    },
  };
  if (worker) await env.startWorker();
  return env;
}
