// A queue against its history on its page (DESIGN section 11): badges on
// its tests (new failure, known flaky, slower than the baseline), the
// comparison with the previous queue of its branch and target ("2 new
// failures since 20261130-…, 1 fixed, 1 slower") and the buttons "Rerun
// failed" and "Rerun ×5". The facts come with the queue's JSON once it has
// ended (the live status events leave them out); the comparison is read
// from GET /api/v1/queues/{id}/compare when the queue reaches an end.

import { h, icon, replace } from '../dom.js';
import { get, post, enc, isFinal } from '../api.js';
import { toast, setBusy } from '../ui.js';

// The slower rule: above twice the baseline and the baseline plus a second.
export function isSlower(test) {
  const b = test.baseline_ms;
  const d = test.duration_ms;
  return test.status === 'passed' && b !== null && b !== undefined && d !== null && d !== undefined
    && d > 2 * b && d > b + 1000;
}

// Where a test's own page is.
export function testHref(repo, scenario, name, branch) {
  const qs = new URLSearchParams({ repo, scenario, name });
  if (branch) qs.set('branch', branch);
  return `#/test?${qs}`;
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// "2 new failures since <base>, 1 fixed, 1 slower", or null when there is
// nothing to say.
function summary(cmp) {
  if (!cmp.base) return h('p.cmp-line.muted#compare-line', 'The first run of this branch and target: nothing to compare with.');
  const parts = [];
  if (cmp.new_failures.length) parts.push(h('strong.cmp-new', plural(cmp.new_failures.length, 'new failure', 'new failures')));
  if (cmp.fixed.length) parts.push(h('span.cmp-fixed', `${cmp.fixed.length} fixed`));
  if (cmp.still_failing.length) parts.push(h('span', `${cmp.still_failing.length} still failing`));
  if (cmp.flaky.length) parts.push(h('span', `${cmp.flaky.length} flaky`));
  if (cmp.slower.length) parts.push(h('span', `${cmp.slower.length} slower`));
  if (cmp.added.length) parts.push(h('span', `${cmp.added.length} added`));
  if (cmp.removed.length) parts.push(h('span', `${cmp.removed.length} removed`));
  const base = h('a.mono', { href: `#/queues/${enc(cmp.base)}` }, cmp.base);
  if (!parts.length) return h('p.cmp-line#compare-line', 'Same verdicts as ', base, '.');
  const out = [];
  parts.forEach((p, i) => {
    if (i === 1) out.push(' since ', base, ', ');
    else if (i > 1) out.push(', ');
    out.push(p);
  });
  if (parts.length === 1) out.push(' since ', base);
  return h('p.cmp-line#compare-line', out);
}

function list(title, items, queue) {
  if (!items.length) return null;
  return h('div.cmp-group',
    h('h3.cmp-title', title),
    h('ul.cmp-list', items.map((t) => h('li',
      h('a.mono', { href: testHref(queue.repo, t.scenario, t.name, queue.branch) }, t.name),
      t.base_ms !== undefined ? h('span.muted', ` ${t.base_ms} → ${t.now_ms} ms`) : null,
      h('span.muted.cmp-scenario', ` · ${t.scenario}`)))));
}

// The badges of one test case.
function badges(test) {
  const out = [];
  if (test.new_failure) out.push(h('span.hbadge.hbadge-new', { title: 'Failed now; its previous run on this branch and target passed' }, 'new failure'));
  if (test.known_flaky) out.push(h('span.hbadge.hbadge-flaky', { title: 'Passed and failed at one commit in the last 30 days, or flipped 3 times in its last 20 runs' }, 'known flaky'));
  if (isSlower(test)) out.push(h('span.hbadge.hbadge-slow', { title: `Baseline ${test.baseline_ms} ms` }, 'slower'));
  return out;
}

// The panel; `update(queue, root)` after every draw of the queue's page.
export function historyPanel(ctx) {
  const line = h('div.cmp-summary');
  const detail = h('div.cmp-detail');
  const actions = h('div.cmp-actions');
  const el = h('section.panel.glass.history#history', { hidden: true, attrs: { 'aria-labelledby': 'history-heading' } },
    h('h2#history-heading', 'Since the last run'), line, actions, detail);
  let compared = null; // `${id}:${status}` of the last comparison read
  let queue = null;

  const rerun = async (ev, body, what) => {
    const btn = ev.currentTarget;
    setBusy(btn, true);
    try {
      const made = await post(`queues/${enc(queue.id)}/rerun`, body);
      const list = Array.isArray(made) ? made : [made];
      toast(`${what}: ${list.map((q) => q.id).join(', ')}`);
      ctx.navigate(`#/queues/${enc(list[0].id)}`);
    } catch (e) {
      toast(e.message, 'error');
      setBusy(btn, false);
    }
  };

  const drawActions = () => {
    const q = queue;
    const may = ctx.session.mayChange(q.owner) && isFinal(q.status);
    const failed = q.tasks.some((t) => t.status !== 'passed');
    replace(actions, may ? [
      failed ? h('button.btn#btn-rerun-failed', { type: 'button', dataset: { key: 'rerun-failed' }, on: { click: (ev) => rerun(ev, { failed_only: true }, 'Rerunning what failed') } }, icon('redo'), 'Rerun failed') : null,
      h('button.btn#btn-rerun-5', { type: 'button', dataset: { key: 'rerun-5' }, title: 'Five queues at the same commit: is a failure flaky?', on: { click: (ev) => rerun(ev, { count: 5 }, 'Five reruns') } }, icon('redo'), 'Rerun ×5'),
    ] : []);
  };

  const compare = async () => {
    const key = `${queue.id}:${queue.status}`;
    if (compared === key) return;
    compared = key;
    try {
      const cmp = await get(`queues/${enc(queue.id)}/compare`);
      if (compared !== key) return;
      replace(line, summary(cmp));
      replace(detail,
        list('New failures', cmp.new_failures, queue),
        list('Fixed', cmp.fixed, queue),
        list('Flaky', cmp.flaky, queue),
        list('Slower', cmp.slower, queue),
        list('Removed', cmp.removed, queue));
    } catch (e) {
      compared = null;
      replace(line, h('p.muted', `No comparison: ${e.message}`));
    }
  };

  // Badges and history links on the test rows the queue page drew.
  const decorate = (root) => {
    for (const task of queue.tasks) {
      const card = root.querySelector(`[data-task="${CSS.escape(task.id)}"]`);
      if (!card) continue;
      for (const test of task.tests || []) {
        const group = test.name.split('/')[0];
        const caseEl = card.querySelector(`li.case[data-name="${CSS.escape(test.name)}"] .case-main`);
        const rowEl = test.name === group
          ? card.querySelector(`[data-test="${CSS.escape(group)}"] .test-name, [data-test="${CSS.escape(group)}"] > summary .test-name`)
          : null;
        const target = caseEl || rowEl;
        if (!target || target.dataset.history) continue;
        target.dataset.history = '1';
        const href = testHref(queue.repo, task.scenario, test.name, queue.branch);
        // A summary may hold no link (nested-interactive): its group's link
        // goes into the group's body instead.
        const body = !caseEl && target.closest('summary') ? target.closest('details').querySelector('.test-body') : null;
        const link = h('a.hist-link', { href, title: `History of ${test.name}`, attrs: { 'aria-label': `History of ${test.name}` } }, icon('clock'));
        target.after(h('span.hist-marks', badges(test), body ? null : link));
        if (body) body.prepend(h('p.test-links', h('a.file-link.hist-body-link', { href }, icon('clock'), h('span', 'History of this test'))));
      }
    }
  };

  return {
    el,
    update(q, root) {
      queue = q;
      el.hidden = !isFinal(q.status);
      if (el.hidden) return;
      drawActions();
      decorate(root);
      compare();
    },
  };
}
