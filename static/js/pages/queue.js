// One queue: verdict, commit, timings, tasks with their tests and Unity
// cases, logs, JUnit; abort, delete and rerun; live over SSE while it runs.

import { h, icon, replace, timeAgo, elapsed, absTime, shortSha, bytes, tick } from '../dom.js';
import { get, post, del, request, enc, logUrl, junitUrl, queueEvents, isFinal } from '../api.js';
import { statusBadge, pageHeader, errorPanel, loading, confirmDialog, toast, setBusy, copyText } from '../ui.js';
import { attemptsBlock } from './queue-attempts.js';
import { boardRow } from './queue-board.js';
import { deliveriesPanel, ownerLine } from './queue-deliveries.js';
import { historyPanel } from './queue-history.js';

const ACTIVITY_MAX = 400;
const STATUS_ICONS = { passed: 'check', failed: 'x', error: 'alert', aborted: 'stop', running: 'spin', waiting: 'clock' };
const ACTIVITY_TAIL = 64 * 1024;

export function logHref(queueId, path) {
  return `#/queues/${enc(queueId)}/log/${path.split('/').map(enc).join('/')}`;
}

export async function render(root, ctx) {
  const id = ctx.args[0];
  let queue = null;
  let logs = [];
  let events = null;
  let disposed = false;
  let logsTimer = null;
  let deleting = false; // set while our DELETE runs: no more reads of this queue
  const alive = () => !disposed && !deleting;

  const header = h('div.q-header');
  const hero = h('section.panel.glass.hero#verdict', { attrs: { 'aria-label': 'Verdict' } });
  const tasksBox = h('section.tasks#tasks', { attrs: { 'aria-labelledby': 'tasks-heading' } });
  const meta = h('section.panel.glass.meta#meta', { attrs: { 'aria-labelledby': 'meta-heading' } });
  const logsBox = h('section.panel.glass.logs#logs', { attrs: { 'aria-labelledby': 'logs-heading' } });
  const activityList = h('ol.activity-lines#activity-lines');
  const activityState = h('span.live-state');
  const activity = h('section.panel.glass.activity#activity', { attrs: { 'aria-labelledby': 'activity-heading' } },
    h('div.panel-head', h('h2#activity-heading', 'Activity'), activityState),
    h('div.activity-scroll', { tabindex: 0, attrs: { role: 'region', 'aria-label': 'Queue timeline' } }, activityList));
  const deliveries = deliveriesPanel(id);
  const history = historyPanel(ctx);
  const layout = h('div.q-layout',
    h('div.q-main', hero, history.el, tasksBox),
    h('aside.q-side', meta, deliveries.el, logsBox, activity));

  replace(root, loading('Loading queue…'));

  try {
    queue = await get(`queues/${enc(id)}`);
  } catch (e) {
    if (e.status === 404) {
      replace(root,
        pageHeader('Queue not found', { crumbs: [h('a', { href: '#/queues' }, 'Queues'), h('span', id)] }),
        h('div.panel.glass', h('p', `There is no queue ${id}. It may have been deleted.`),
          h('p', h('a.btn', { href: '#/queues' }, 'Back to the queues'))));
    } else {
      replace(root, errorPanel(e, () => ctx.navigate(window.location.hash)));
    }
    return { title: id };
  }
  if (disposed) return {};
  replace(root, header, layout);

  // ---- drawing ----
  const keepFocus = (fn) => {
    const active = document.activeElement;
    const key = active && root.contains(active) ? active.dataset.key : null;
    fn();
    if (key) {
      const again = root.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus();
    }
  };

  const draw = () => keepFocus(() => {
    drawHeader();
    drawHero();
    drawMeta();
    drawTasks();
    drawLogs();
    deliveries.update(queue);
    history.update(queue, root);
    tick(root);
  });

  const drawHeader = () => {
    const q = queue;
    const may = ctx.session.mayChange(q.owner);
    const actions = [];
    actions.push(h('a.btn.btn-ghost', { href: junitUrl(q.id), dataset: { key: 'junit' }, download: `${q.id}-junit.xml`, title: 'Download the JUnit XML report' }, icon('download'), 'JUnit XML'));
    if (may) {
      actions.push(h('button.btn#btn-rerun', { type: 'button', dataset: { key: 'rerun' }, on: { click: rerun } }, icon('redo'), 'Rerun'));
    } else {
      const qs = new URLSearchParams({ branch: q.branch, repo: q.repo, target: q.target, scenarios: q.tasks.map((t) => t.scenario).join(',') });
      if (q.commit) qs.set('commit', q.commit);
      actions.push(h('a.btn#btn-similar', { href: `#/submit?${qs}`, dataset: { key: 'similar' } }, icon('redo'), 'Submit similar'));
    }
    if (may && (q.status === 'waiting' || q.status === 'running')) {
      actions.push(h('button.btn.btn-warn#btn-abort', { type: 'button', dataset: { key: 'abort' }, on: { click: abort } }, icon('stop'), 'Abort'));
    }
    if (may && q.status !== 'running') {
      actions.push(h('button.btn.btn-danger#btn-delete', { type: 'button', dataset: { key: 'delete' }, on: { click: remove } }, icon('trash'), 'Delete'));
    }
    replace(header, pageHeader(h('span.q-title', h('span.mono#queue-id', q.id), statusBadge(q.status)), {
      crumbs: [h('a', { href: '#/queues' }, 'Queues'), h('span', { attrs: { 'aria-current': 'page' } }, q.id)],
      subtitle: h('span', h('span.mono', q.branch),
        q.commit ? [' @ ', h('span.mono', { title: q.commit }, shortSha(q.commit))] : null,
        ' on ', h('span', q.repo), ' · ', q.target, ' · by ', h('strong', q.owner)),
      actions,
    }));
  };

  const drawHero = () => {
    const q = queue;
    const total = q.tasks.length;
    const done = q.tasks.filter((t) => isFinal(t.status)).length;
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const t of q.tasks) {
      passed += t.passed;
      failed += t.failed;
      skipped += t.skipped;
    }
    const verdictText = {
      waiting: q.position ? `Waiting · #${q.position} in line` : 'Waiting for a worker',
      running: `Running · ${done} of ${total} ${total === 1 ? 'task' : 'tasks'} done`,
      passed: 'Every test passed',
      failed: 'Failed',
      error: 'The farm hit an error',
      aborted: 'Aborted',
    }[q.status] || q.status;
    hero.className = `panel glass hero status-${q.status}`;
    replace(hero,
      h('div.verdict',
        h('div.verdict-icon', { attrs: { 'aria-hidden': 'true' } }, icon(STATUS_ICONS[q.status] || 'alert')),
        h('div.verdict-text',
          h('p.verdict-title#verdict-title', verdictText),
          q.status_reason ? h('p.verdict-reason#verdict-reason', q.status_reason) : null),
        h('dl.verdict-numbers',
          h('div', h('dt', 'Passed'), h('dd.count-pass#n-passed', String(passed))),
          h('div', h('dt', 'Failed'), h('dd.count-fail#n-failed', String(failed))),
          h('div', h('dt', 'Skipped'), h('dd.count-skip#n-skipped', String(skipped))),
          h('div', h('dt', 'Time'), h('dd', q.started_at ? elapsed(q.started_at, q.finished_at) : (q.status === 'waiting' ? h('span.muted', 'not started') : '—'))))),
      h('div.progress', { attrs: { role: 'img', 'aria-label': `${done} of ${total} tasks finished` } },
        q.tasks.map((t) => h(`span.seg.status-${t.status}`, { title: `${t.scenario}: ${t.status}` }))));
  };

  const drawMeta = () => {
    const q = queue;
    const row = (label, value) => h('div.meta-row', h('dt', label), h('dd', value));
    replace(meta,
      h('h2#meta-heading', 'Details'),
      h('dl.meta-list',
        row('Repository', q.repo),
        row('Branch', h('span.mono.break', q.branch)),
        row('Commit', q.commit ? commitLine(q.commit) : h('span.muted', 'the branch’s tip when it runs')),
        row('Target', q.target),
        boardRow(q, row),
        row('Owner', ownerLine(q)),
        row('Worker', q.worker || h('span.muted', '—')),
        row('Priority', String(q.priority)),
        row('Timeout', q.timeout_s ? `${q.timeout_s} s` : h('span.muted', 'worker default')),
        q.status === 'waiting' ? row('Position', q.position ? `#${q.position} in line` : '—') : null,
        row('Created', timeAgo(q.created_at)),
        row('Started', timeAgo(q.started_at)),
        row('Finished', timeAgo(q.finished_at)),
        row('Duration', elapsed(q.started_at, q.finished_at))),
      attemptsBlock(q, (path) => logHref(q.id, path)));
  };

  // The pinned commit: short, with the full id on hover and a copy button.
  const commitLine = (sha) => h('span.commit-line',
    h('code.commit#queue-commit', { title: sha, dataset: { sha } }, shortSha(sha)),
    h('button.icon-btn#copy-commit', {
      type: 'button', title: 'Copy the full commit id', dataset: { key: 'copy-commit' },
      attrs: { 'aria-label': `Copy commit ${sha}` },
      on: {
        click: async () => {
          const ok = await copyText(sha);
          toast(ok ? `Copied ${sha}` : `Commit ${sha}`);
        },
      },
    }, icon('copy')));

  const logFor = (task, testName) => {
    const base = testName.split('/')[0];
    const path = `tasks/${task.id}/${base}.log`;
    if (logs.some((l) => l.path === path)) return path;
    return null;
  };

  // The .log files of a task: a test in progress has one before it has a result.
  const taskLogs = (task) => logs
    .filter((l) => l.path.startsWith(`tasks/${task.id}/`) && l.path.endsWith('.log'))
    .map((l) => l.path);

  const drawTasks = () => {
    const q = queue;
    const open = new Set([...tasksBox.querySelectorAll('details[open]')].map((d) => d.dataset.key));
    const closed = new Set([...tasksBox.querySelectorAll('details:not([open])')].map((d) => d.dataset.key));
    replace(tasksBox,
      h('h2.section-title#tasks-heading', 'Tasks', h('span.count-chip', String(q.tasks.length))),
      q.tasks.map((t) => taskCard(q, t, logFor, open, closed, taskLogs(t))));
  };

  const drawLogs = () => {
    const q = queue;
    const files = logs.filter((l) => l.path.endsWith('.log'));
    replace(logsBox,
      h('div.panel-head', h('h2#logs-heading', 'Logs'), h('span.muted', files.length ? `${files.length} files` : '')),
      files.length
        ? h('ul.file-list#log-files', files.map((l) => h('li',
          h('a.file-link', { href: logHref(q.id, l.path), dataset: { key: `log:${l.path}`, path: l.path }, title: l.path },
            icon('file'), h('span.file-name', h('span.file-base.mono', l.path.split('/').pop()),
              l.path.includes('/') ? h('span.file-dir.mono', l.path.split('/').slice(0, -1).join('/')) : null)),
          h('span.file-size.muted', bytes(l.size)))))
        : h('p.muted', q.status === 'waiting' ? 'Logs appear once a worker picks the queue up.' : 'No logs.'),
      h('p.file-extra', h('a.file-link', { href: junitUrl(q.id), download: `${q.id}-junit.xml`, dataset: { key: 'junit2' } }, icon('download'), h('span', 'junit.xml'))));
  };

  // ---- data ----
  const loadLogs = async () => {
    if (!alive()) return;
    try {
      logs = await get(`queues/${enc(id)}/logs`);
    } catch {
      /* keep the old list */
    }
  };

  const refreshLogsSoon = () => {
    if (logsTimer) return;
    logsTimer = setTimeout(async () => {
      logsTimer = null;
      if (!alive()) return;
      await loadLogs();
      if (!disposed) keepFocus(() => {
        drawLogs();
        drawTasks();
      });
    }, 600);
  };

  // ---- activity (queue.log) ----
  let activityPending = '';
  const addActivity = (text) => {
    const scroller = activityList.parentElement;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 24;
    const parts = (activityPending + text).split('\n');
    activityPending = parts.pop();
    for (const line of parts) {
      const clean = line.replace(/\r$/, '');
      if (!clean) continue;
      const m = /^(\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)(?:\.\d+)?Z)\s(.*)$/.exec(clean);
      // Task ids repeat the queue id: "task 2024...-ab12.1" reads as "task #1".
      const text = (m ? m[3] : clean).split(`${id}.`).join('#');
      const li = m
        ? h('li', h('time.act-time', { datetime: m[1], title: absTime(m[1]) },
          new Date(m[1]).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false })),
        h('span.act-text', text))
        : h('li', h('span.act-text', text));
      if (/\b(failed|error|aborted|lost)\b|timed out|timeout after|no output for/i.test(clean)) li.classList.add('act-bad');
      else if (/\bpassed\b/.test(clean)) li.classList.add('act-good');
      activityList.append(li);
    }
    while (activityList.childElementCount > ACTIVITY_MAX) activityList.firstElementChild.remove();
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  };

  const setLive = (state) => {
    const labels = { live: 'Live', reconnecting: 'Reconnecting…', done: '' };
    replace(activityState, state === 'live' ? h('span.live-dot') : null, labels[state] || '');
    activityState.className = `live-state state-${state}`;
  };

  const loadActivityOnce = async () => {
    const file = logs.find((l) => l.path === 'queue.log');
    if (!file) {
      if (!activityList.childElementCount) activityList.append(h('li.muted', 'No activity recorded.'));
      return;
    }
    const offset = Math.max(0, file.size - ACTIVITY_TAIL);
    try {
      const res = await request('GET', logUrl(id, 'queue.log'), { raw: true, query: { offset, limit: ACTIVITY_TAIL } });
      let text = new TextDecoder().decode(await res.arrayBuffer());
      if (offset > 0) text = text.slice(text.indexOf('\n') + 1);
      replace(activityList);
      addActivity(text.endsWith('\n') ? text : `${text}\n`);
    } catch {
      /* leave it empty */
    }
  };

  // Someone deleted the queue while we watched.
  const showDeleted = () => replace(root,
    pageHeader('Queue deleted', { crumbs: [h('a', { href: '#/queues' }, 'Queues'), h('span', id)] }),
    h('div.panel.glass#queue-deleted', { attrs: { role: 'status' } }, h('p', `Queue ${id} was deleted.`),
      h('p', h('a.btn', { href: '#/queues' }, 'Back to the queues'))));

  // The timeline over SSE. `offset` is the byte offset after the last event
  // (its `next_offset`), where a new connection resumes: nothing is read
  // twice or missed, even when the text was decoded lossily.
  const follow = () => {
    let offset = 0;
    setLive('live');
    events = queueEvents(id, { path: 'queue.log', offset: 0 }, {
      open: () => setLive('live'),
      status: (q) => {
        if (disposed) return;
        const changed = JSON.stringify(q) !== JSON.stringify(queue);
        queue = q;
        if (changed) {
          draw();
          refreshLogsSoon();
        }
      },
      log: (chunk) => {
        if (chunk.path !== 'queue.log' || chunk.next_offset <= offset) return;
        addActivity(chunk.text);
        offset = chunk.next_offset;
        // A new line in the timeline often means a new log file (a test started).
        if (/ started/.test(chunk.text)) refreshLogsSoon();
      },
      end: async (q) => {
        if (!alive()) return;
        if (q && q.status === 'deleted') {
          showDeleted();
          return;
        }
        if (activityPending) addActivity('\n');
        if (q && q.id) queue = q;
        setLive('done');
        await loadLogs();
        try {
          if (alive()) queue = await get(`queues/${enc(id)}`);
        } catch {
          /* keep the last one */
        }
        if (alive()) draw();
      },
      error: () => setLive('reconnecting'),
      reconnect: async () => {
        // Reload the queue, then resume the timeline where it stopped (an
        // ended queue's stream sends the rest of the file, then `end`).
        if (!alive()) return false;
        try {
          queue = await get(`queues/${enc(id)}`);
        } catch (e) {
          if (e.status !== 404) throw e;
          showDeleted();
          return false;
        }
        await loadLogs();
        draw();
        return { path: 'queue.log', offset };
      },
    });
  };

  // ---- actions ----
  async function abort(ev) {
    const btn = ev.currentTarget;
    const ok = await confirmDialog({
      title: `Abort ${queue.id}?`,
      message: queue.status === 'running'
        ? 'The worker stops the build or test that is running now. The queue ends as aborted.'
        : 'The queue leaves the line and ends as aborted.',
      confirm: 'Abort queue',
      danger: true,
    });
    if (!ok) return;
    setBusy(btn, true);
    try {
      queue = await post(`queues/${enc(queue.id)}/abort`);
      toast(queue.status === 'aborted' ? 'Queue aborted' : 'Abort requested: the worker is stopping it');
      draw();
    } catch (e) {
      toast(e.message, 'error');
      setBusy(btn, false);
    }
  }

  async function remove(ev) {
    const btn = ev.currentTarget;
    const ok = await confirmDialog({
      title: `Delete ${queue.id}?`,
      message: 'Its results and every log file are removed for good.',
      confirm: 'Delete queue',
      danger: true,
    });
    if (!ok) return;
    setBusy(btn, true);
    deleting = true;
    clearTimeout(logsTimer);
    if (events) events.close();
    try {
      await del(`queues/${enc(queue.id)}`);
      toast(`Queue ${queue.id} deleted`);
      ctx.navigate('#/queues');
    } catch (e) {
      deleting = false;
      toast(e.message, 'error');
      setBusy(btn, false);
      if (!isFinal(queue.status)) {
        replace(activityList);
        activityPending = '';
        follow();
      }
    }
  }

  async function rerun(ev) {
    const btn = ev.currentTarget;
    setBusy(btn, true);
    try {
      const q = await post(`queues/${enc(queue.id)}/rerun`);
      toast(`Queue ${q.id} submitted`);
      ctx.navigate(`#/queues/${enc(q.id)}`);
    } catch (e) {
      toast(e.message, 'error');
      setBusy(btn, false);
    }
  }

  await loadLogs();
  if (disposed) return {};
  draw();
  if (isFinal(queue.status)) {
    setLive('done');
    loadActivityOnce();
  } else {
    follow();
  }

  return {
    title: queue.id,
    dispose() {
      disposed = true;
      clearTimeout(logsTimer);
      if (events) events.close();
    },
  };
}

/** Groups `unit`, `unit/test_a`, `unit/test_b` into one test with its cases. */
export function groupTests(tests) {
  const groups = new Map();
  for (const t of tests) {
    const slash = t.name.indexOf('/');
    const parent = slash < 0 ? t.name : t.name.slice(0, slash);
    if (!groups.has(parent)) groups.set(parent, { name: parent, test: null, cases: [] });
    const g = groups.get(parent);
    if (slash < 0) g.test = t;
    else g.cases.push({ ...t, caseName: t.name.slice(slash + 1) });
  }
  return [...groups.values()];
}

const BAD = new Set(['failed', 'error']);

function groupStatus(g) {
  if (g.test) return g.test.status;
  if (g.cases.some((c) => BAD.has(c.status))) return 'failed';
  return g.cases.every((c) => c.status === 'skipped') ? 'skipped' : 'passed';
}

function taskCard(q, t, logFor, open, closed, paths) {
  const groups = groupTests(t.tests || []);
  // Tests with output but no result yet: running now (or cut short).
  const known = new Set(groups.map((g) => g.name));
  const pending = isFinal(t.status) ? [] : paths
    .map((p) => ({ path: p, name: p.split('/').pop().replace(/\.log$/, '') }))
    .filter((x) => !known.has(x.name));
  const pendingRows = pending.map((x) => h('li', h('div.test-row.test-pending', { dataset: { test: x.name } },
    h('span.chev-space'),
    statusBadge('running', { small: true }),
    h('span.test-name.mono', x.name),
    h('span.test-dur'),
    h('a.file-link.row-log', { href: logHref(q.id, x.path), dataset: { key: `tlog:${x.path}` }, title: x.path, attrs: { 'aria-label': `Follow the log of ${x.name}` } }, icon('file'), h('span', 'Follow')))));
  const key = `task:${t.id}`;
  const testsBlock = groups.length || pendingRows.length
    ? h('ul.test-groups', groups.map((g) => {
      const status = groupStatus(g);
      const gkey = `grp:${t.id}:${g.name}`;
      const failedCases = g.cases.filter((c) => BAD.has(c.status));
      const isOpen = open.has(gkey) || (!closed.has(gkey) && (failedCases.length > 0 || BAD.has(status) || g.cases.length <= 8));
      const path = logFor(t, g.name);
      const caseCount = g.cases.length
        ? h('span.muted.case-count', `${g.cases.filter((c) => c.status === 'passed').length}/${g.cases.length} cases`)
        : null;
      const summary = h('summary.test-summary', { dataset: { key: gkey } },
        icon('chevron', 'chev'),
        statusBadge(status, { small: true }),
        h('span.test-name.mono', g.name),
        caseCount,
        g.test && g.test.duration_ms !== null && g.test.duration_ms !== undefined
          ? h('span.muted.test-dur', `${(g.test.duration_ms / 1000).toFixed(1)} s`) : null);
      const body = h('div.test-body',
        g.test && g.test.message ? h('p.test-message', { dataset: { status } }, g.test.message) : null,
        g.cases.length ? h('ul.cases', g.cases.map((c) => h(`li.case.case-${c.status}`, { dataset: { name: c.name } },
          statusBadge(c.status, { small: true }),
          h('div.case-main',
            h('span.case-name.mono', { title: c.name }, c.caseName),
            c.message ? h('p.case-message', c.message) : null),
          c.duration_ms !== null && c.duration_ms !== undefined ? h('span.muted.case-dur', `${c.duration_ms} ms`) : null))) : null,
        path ? h('p.test-links', h('a.file-link', { href: logHref(q.id, path), dataset: { key: `tlog:${path}` } }, icon('file'), h('span', 'Open log'), h('span.muted.mono', path))) : null);
      if (!g.cases.length && !(g.test && g.test.message)) {
        // Nothing to unfold: one line with its log at the end.
        return h('li', h('div.test-row', { dataset: { test: g.name } },
          h('span.chev-space'),
          statusBadge(status, { small: true }),
          h('span.test-name.mono', g.name),
          g.test && g.test.duration_ms !== null && g.test.duration_ms !== undefined
            ? h('span.muted.test-dur', `${(g.test.duration_ms / 1000).toFixed(1)} s`) : h('span.test-dur'),
          path ? h('a.file-link.row-log', { href: logHref(q.id, path), dataset: { key: `tlog:${path}` }, title: path, attrs: { 'aria-label': `Log of ${g.name}` } }, icon('file'), h('span', 'Log')) : null));
      }
      const details = h('details.test-group', { dataset: { key: gkey, test: g.name }, open: isOpen }, summary, body);
      return h('li', details);
    }))
    : h('p.muted.no-tests', t.status === 'waiting' ? 'Not started yet.' : t.status === 'running' ? 'Running…' : 'No test results.');

  if (pendingRows.length) testsBlock.append(...pendingRows);

  return h('article.panel.glass.task', { dataset: { key, task: t.id, status: t.status } },
    h('header.task-head',
      statusBadge(t.status),
      h('div.task-titles',
        h('h3.task-scenario.mono', t.scenario),
        h('p.task-sub.muted', h('span.mono', t.id), ' · ', elapsed(t.started_at, t.finished_at))),
      h('div.task-counts',
        h('span.count-pass', { title: 'passed' }, icon('check'), String(t.passed)),
        h('span.count-fail', { title: 'failed' }, icon('x'), String(t.failed)),
        h('span.count-skip', { title: 'skipped' }, icon('skip'), String(t.skipped)))),
    t.status_reason && !(t.tests || []).some((x) => x.message === t.status_reason)
      ? h('p.task-reason', { dataset: { status: t.status } }, t.status_reason) : null,
    testsBlock);
}
