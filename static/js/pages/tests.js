// The Tests page (DESIGN section 11): one row per test run in the last 30
// days, from GET /api/v1/tests: runs, pass rate, flaky and flips, median
// duration, the last failure; sorted by flaky, failures, slowest or name;
// filtered by repository and branch; paged with "Show more".

import { h, icon, replace, tick } from '../dom.js';
import { get, enc } from '../api.js';
import { pageHeader, emptyState, errorPanel, loading, statusBadge } from '../ui.js';
import { testHref } from './queue-history.js';

const SORTS = [
  ['flaky', 'Flaky'],
  ['failures', 'Failures'],
  ['slowest', 'Slowest'],
  ['name', 'Name'],
];

function ms(v) {
  if (v === null || v === undefined) return '—';
  return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v} ms`;
}

export async function render(root, ctx) {
  const params = { sort: 'flaky', repo: '', branch: '', ...ctx.params };
  let repos = [];
  try {
    repos = (await get('config')).repos.map((r) => r.name);
  } catch {
    /* the filter stays a free choice */
  }
  const repoSel = h('select#tests-repo', { on: { change: () => set({ repo: repoSel.value }) } },
    h('option', { value: '' }, 'All repositories'),
    repos.map((r) => h('option', { value: r, selected: r === params.repo }, r)));
  const branchIn = h('input#tests-branch', { type: 'search', value: params.branch, placeholder: 'any branch', attrs: { autocomplete: 'off' } });
  branchIn.addEventListener('change', () => set({ branch: branchIn.value.trim() }));
  const sortBar = h('div.seg-control#tests-sort', { attrs: { role: 'group', 'aria-label': 'Sort by' } });
  const table = h('div.tests-table-wrap#tests-table', loading('Loading tests…'));
  const more = h('div.tests-more');
  root.append(
    pageHeader('Tests', { subtitle: 'Every test run in the last 30 days: flaky ones, failing ones, slow ones.' }),
    h('div.panel.glass.tests-filters',
      h('label.field', h('span.field-label', 'Repository'), repoSel),
      h('label.field', h('span.field-label', 'Branch'), branchIn),
      h('div.field', h('span.field-label#sort-label', 'Sort by'), sortBar)),
    h('section.panel.glass.tests-panel', { attrs: { 'aria-label': 'Tests' } }, table, more));

  let rows = [];
  let loadSeq = 0;

  const set = (change) => {
    Object.assign(params, change);
    ctx.setQuery(params);
    load();
  };

  const drawSort = () => replace(sortBar, SORTS.map(([key, label]) =>
    h(`button.seg-btn${params.sort === key ? '.active' : ''}`, {
      type: 'button', dataset: { sort: key }, attrs: { 'aria-pressed': params.sort === key ? 'true' : 'false' },
      on: { click: () => set({ sort: key }) },
    }, label)));

  const row = (t) => h('tr', { dataset: { test: t.name, flaky: String(t.flaky) } },
    h('th.mono', { scope: 'row' }, h('a', { href: testHref(t.repo, t.scenario, t.name, params.branch) }, t.name),
      h('div.muted.small', `${t.repo} · ${t.scenario}`)),
    h('td', statusBadge(t.last_status, { small: true })),
    h('td.num', String(t.runs)),
    h('td.num', `${Math.round(t.pass_rate * 100)}%`),
    h('td.num', String(t.failed)),
    h('td', t.flaky ? h('span.hbadge.hbadge-flaky', 'flaky') : h('span.muted', 'no'), h('span.muted', ` ${t.flips} flips`)),
    h('td.num', ms(t.median_ms)),
    h('td', t.last_failure
      ? h('a.mono', { href: `#/queues/${enc(t.last_failure.queue_id)}`, title: t.last_failure.message || '' }, t.last_failure.queue_id)
      : h('span.muted', '—')));

  const draw = () => {
    if (!rows.length) {
      replace(table, emptyState('No tests in this window', 'Tests appear here once a queue has recorded their results.'));
      return;
    }
    replace(table, h('table.tests-table',
      h('caption.sr-only', 'Tests run in the last 30 days'),
      h('thead', h('tr',
        h('th', { scope: 'col' }, 'Test'), h('th', { scope: 'col' }, 'Last'), h('th.num', { scope: 'col' }, 'Runs'),
        h('th.num', { scope: 'col' }, 'Pass rate'), h('th.num', { scope: 'col' }, 'Failed'), h('th', { scope: 'col' }, 'Flaky'),
        h('th.num', { scope: 'col' }, 'Median'), h('th', { scope: 'col' }, 'Last failure'))),
      h('tbody', rows.map(row))));
    tick(table);
  };

  const load = async (before) => {
    const seq = ++loadSeq;
    drawSort();
    try {
      const page = await get('tests', { query: { repo: params.repo, branch: params.branch, sort: params.sort, limit: 50, before } });
      if (seq !== loadSeq) return;
      rows = before ? rows.concat(page.items) : page.items;
      draw();
      replace(more, page.next
        ? h('button.btn.btn-ghost#tests-more', { type: 'button', on: { click: () => load(page.next) } }, icon('down'), 'Show more')
        : null);
    } catch (e) {
      if (seq === loadSeq) replace(table, errorPanel(e, () => load()));
    }
  };

  await load();
  return { title: 'Tests' };
}
