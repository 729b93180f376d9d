// The queue list: filters, cursor pagination and live status (light polling
// while the page is visible).

import { h, icon, replace, timeAgo, elapsed, debounce, tick } from '../dom.js';
import { get, request, QUEUE_STATUSES, enc } from '../api.js';
import { statusBadge, statusLabel, pageHeader, emptyState, errorPanel, loading } from '../ui.js';

const POLL_MS = 2500;
const PAGE_SIZE = 25;
const STATS_EVERY = 4; // polls: totals change slowly, and /metrics costs more
// Once /metrics is refused (a proxy may keep it internal), stop asking.
let statsRefused = false;

export function render(root, ctx) {
  let params = { ...ctx.params };
  let cursors = []; // `before` values of the newer pages, for "Newer"
  let timer = null;
  let inflight = null;
  let disposed = false;
  const rows = new Map(); // id -> {tr, sig}

  // ---- filters ----
  const status = h('select.input#f-status', { name: 'status' },
    h('option', { value: '' }, 'Any status'),
    QUEUE_STATUSES.map((s) => h('option', { value: s }, statusLabel(s))));
  const owner = h('input.input#f-owner', { name: 'owner', placeholder: 'anyone', autocomplete: 'off', spellcheck: 'false' });
  const branch = h('input.input#f-branch', { name: 'branch', placeholder: 'any branch', autocomplete: 'off', spellcheck: 'false' });
  const mine = h('button.btn.btn-ghost.btn-sm#f-mine', { type: 'button', attrs: { 'aria-pressed': 'false' } }, icon('user'), 'Mine');
  const clearBtn = h('button.btn.btn-ghost.btn-sm#f-clear', { type: 'button' }, 'Clear');

  const syncInputs = () => {
    status.value = params.status || '';
    owner.value = params.owner || '';
    branch.value = params.branch || '';
    const isMine = !!params.owner && params.owner === ctx.session.user.username;
    mine.setAttribute('aria-pressed', String(isMine));
    clearBtn.hidden = !(params.status || params.owner || params.branch);
  };

  const applyFilters = () => {
    params = { status: status.value, owner: owner.value.trim(), branch: branch.value.trim() };
    cursors = [];
    ctx.setQuery(params);
    syncInputs();
    reload(true);
  };
  const applyLater = debounce(applyFilters, 350);
  status.addEventListener('change', applyFilters);
  owner.addEventListener('input', applyLater);
  branch.addEventListener('input', applyLater);
  for (const input of [owner, branch]) {
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        applyLater.cancel();
        applyFilters();
      }
    });
  }
  mine.addEventListener('click', () => {
    owner.value = mine.getAttribute('aria-pressed') === 'true' ? '' : ctx.session.user.username;
    applyFilters();
  });
  clearBtn.addEventListener('click', () => {
    status.value = '';
    owner.value = '';
    branch.value = '';
    applyFilters();
    status.focus();
  });

  const filters = h('form.filters.glass', { attrs: { role: 'search', 'aria-label': 'Filter queues' }, on: { submit: (e) => e.preventDefault() } },
    h('div.field.field-inline', h('label', { for: 'f-status' }, 'Status'), status),
    h('div.field.field-inline', h('label', { for: 'f-owner' }, 'Owner'), owner),
    h('div.field.field-inline', h('label', { for: 'f-branch' }, 'Branch'), branch),
    h('div.filter-buttons', mine, clearBtn));

  // ---- stats, list, pager ----
  const stats = h('div.stats', { attrs: { role: 'group', 'aria-label': 'Queues by status' } });
  const live = h('span.live-dot', { title: 'Updating live' }, h('span.sr-only', 'Updating live'));
  const body = h('div.list-body', loading('Loading queues…'));
  const newer = h('button.btn.btn-sm#page-newer', { type: 'button' }, icon('up'), 'Newer');
  const older = h('button.btn.btn-sm#page-older', { type: 'button' }, 'Older', icon('down'));
  const pageInfo = h('span.muted.page-info');
  const pager = h('nav.pager', { attrs: { 'aria-label': 'Pages' } }, newer, pageInfo, older);
  let next = null;

  newer.addEventListener('click', () => {
    cursors.pop();
    params.before = cursors.length ? cursors[cursors.length - 1] : '';
    ctx.setQuery(params);
    reload(true);
  });
  older.addEventListener('click', () => {
    if (!next) return;
    cursors.push(next);
    params.before = next;
    ctx.setQuery(params);
    reload(true);
  });

  root.append(
    pageHeader('Queues', {
      subtitle: 'Every firmware run on the farm, newest first.',
      actions: [h('a.btn.btn-primary', { href: '#/submit' }, icon('plus'), 'New queue')],
    }),
    stats,
    filters,
    h('section.panel.glass.list-panel', { attrs: { 'aria-labelledby': 'list-heading' } },
      h('div.panel-head', h('h2#list-heading', 'Runs'), live),
      body,
      pager));

  // ---- table ----
  let table = null;
  let tbody = null;
  const ensureTable = () => {
    if (table && table.isConnected) return;
    tbody = h('tbody');
    table = h('table.table.queue-table#queue-table',
      h('caption.sr-only', 'Queues'),
      h('thead', h('tr',
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Queue'),
        h('th', { scope: 'col' }, 'Branch'),
        h('th', { scope: 'col' }, 'Owner'),
        h('th', { scope: 'col' }, 'Tests'),
        h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, 'Time'))),
      tbody);
    rows.clear();
    replace(body, h('div.table-wrap', table));
  };

  const load = async (initial) => {
    if (inflight) inflight.abort();
    const ac = new AbortController();
    inflight = ac;
    try {
      const page = await get('queues', {
        query: { status: params.status, owner: params.owner, branch: params.branch, before: params.before, limit: PAGE_SIZE },
        signal: ac.signal,
      });
      if (disposed || ac.signal.aborted) return;
      next = page.next;
      draw(page.items);
      newer.disabled = !params.before;
      older.disabled = !next;
      pageInfo.textContent = params.before ? `Page ${cursors.length + 1}` : 'Latest';
      pager.hidden = !params.before && !next;
      live.hidden = false;
    } catch (e) {
      if (e.name === 'AbortError' || disposed) return;
      if (initial) replace(body, errorPanel(e, () => reload(true)));
      live.hidden = true;
    } finally {
      if (inflight === ac) inflight = null;
    }
  };

  const draw = (items) => {
    if (!items.length) {
      table = null;
      rows.clear();
      const filtered = params.status || params.owner || params.branch;
      replace(body, emptyState(filtered ? 'No queue matches these filters' : 'No queues yet',
        filtered ? 'Try another status, owner or branch.' : 'Submit one to get the farm going.',
        filtered ? null : h('a.btn.btn-primary', { href: '#/submit' }, icon('plus'), 'New queue')));
      return;
    }
    ensureTable();
    const seen = new Set();
    let prev = null;
    for (const q of items) {
      seen.add(q.id);
      const sig = JSON.stringify(q);
      let entry = rows.get(q.id);
      if (!entry) {
        entry = { tr: queueRow(q), sig };
        rows.set(q.id, entry);
      } else if (entry.sig !== sig) {
        const hadFocus = entry.tr.contains(document.activeElement);
        const fresh = queueRow(q);
        entry.tr.replaceWith(fresh);
        entry.tr = fresh;
        entry.sig = sig;
        if (hadFocus) fresh.querySelector('a').focus();
      }
      // Keep order without moving rows that are already in place.
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== entry.tr) tbody.insertBefore(entry.tr, want);
      prev = entry.tr;
    }
    for (const [id, entry] of rows) {
      if (!seen.has(id)) {
        entry.tr.remove();
        rows.delete(id);
      }
    }
    tick(tbody);
  };

  let polls = 0;
  const loadStats = async (force) => {
    // Totals by status come from the Prometheus endpoint (the API has no
    // count route); hidden when it cannot be read.
    polls += 1;
    if (statsRefused) {
      stats.hidden = true;
      return;
    }
    if (!force && polls % STATS_EVERY !== 1) return;
    try {
      const res = await request('GET', '/metrics', { raw: true });
      const text = await res.text();
      const counts = {};
      for (const m of text.matchAll(/^testarena_queues\{status="(\w+)"\} (\d+)/gm)) counts[m[1]] = Number(m[2]);
      if (disposed) return;
      drawStats(counts);
    } catch (e) {
      if (e && (e.status === 403 || e.status === 404)) statsRefused = true;
      stats.hidden = true;
    }
  };

  const drawStats = (counts) => {
    stats.hidden = false;
    const chips = QUEUE_STATUSES.map((s) => {
      const active = params.status === s;
      return h(`button.stat.status-${s}`, {
        type: 'button',
        dataset: { stat: s },
        attrs: { 'aria-pressed': String(active), title: active ? 'Show every status' : `Show ${s} queues` },
        on: {
          click: () => {
            status.value = active ? '' : s;
            applyFilters();
          },
        },
      }, h('span.stat-count', String(counts[s] || 0)), h('span.stat-label', statusLabel(s)));
    });
    const focused = document.activeElement && stats.contains(document.activeElement) ? document.activeElement.dataset.stat : null;
    replace(stats, chips);
    if (focused) {
      const again = stats.querySelector(`[data-stat="${focused}"]`);
      if (again) again.focus();
    }
  };

  const reload = (initial) => {
    clearTimeout(timer);
    if (initial && !table) replace(body, loading('Loading queues…'));
    Promise.all([load(initial), loadStats(initial)]).finally(schedule);
  };

  const schedule = () => {
    clearTimeout(timer);
    if (disposed) return;
    timer = setTimeout(() => {
      if (document.hidden) {
        schedule();
        return;
      }
      reload(false);
    }, POLL_MS);
  };

  const onVisible = () => {
    if (!document.hidden && !disposed) reload(false);
  };
  document.addEventListener('visibilitychange', onVisible);

  if (params.before) cursors = [params.before];
  syncInputs();
  reload(true);

  return {
    title: 'Queues',
    update(p) {
      params = { ...p };
      syncInputs();
      reload(true);
    },
    dispose() {
      disposed = true;
      clearTimeout(timer);
      applyLater.cancel();
      if (inflight) inflight.abort();
      document.removeEventListener('visibilitychange', onVisible);
    },
  };
}

function testCounts(q) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const t of q.tasks || []) {
    passed += t.passed;
    failed += t.failed;
    skipped += t.skipped;
  }
  return { passed, failed, skipped };
}

export function queueRow(q) {
  const href = `#/queues/${enc(q.id)}`;
  const c = testCounts(q);
  const tasks = q.tasks || [];
  const bar = h('span.taskbar', { attrs: { 'aria-hidden': 'true' } },
    tasks.map((t) => h(`span.seg.status-${t.status}`, { title: `${t.scenario}: ${t.status}` })));
  let timing;
  if (q.status === 'waiting') {
    timing = h('span.position', { title: 'Place in line' }, q.position ? `#${q.position} in line` : 'in line');
  } else if (q.started_at) {
    timing = elapsed(q.started_at, q.finished_at);
  } else {
    timing = h('span.muted', '—');
  }
  const tr = h('tr.queue-row', { dataset: { id: q.id, status: q.status } },
    h('td.cell-status', { dataset: { label: 'Status' } }, statusBadge(q.status, { small: true })),
    h('td.cell-id', { dataset: { label: 'Queue' } },
      h('a.qlink.mono', { href }, q.id),
      h('span.sub', `${tasks.length} ${tasks.length === 1 ? 'scenario' : 'scenarios'} · ${q.target}`)),
    h('td.cell-branch', { dataset: { label: 'Branch' } },
      h('span.branch.mono', { title: q.branch }, q.branch),
      h('span.sub', q.repo)),
    h('td.cell-owner', { dataset: { label: 'Owner' } }, q.owner),
    h('td.cell-tests', { dataset: { label: 'Tests' } },
      bar,
      h('span.counts',
        h('span.count-pass', { title: 'passed' }, icon('check'), String(c.passed)),
        h('span.count-fail', { title: 'failed' }, icon('x'), String(c.failed)),
        c.skipped ? h('span.count-skip', { title: 'skipped' }, icon('skip'), String(c.skipped)) : null)),
    h('td.cell-created', { dataset: { label: 'Created' } }, timeAgo(q.created_at)),
    h('td.cell-time', { dataset: { label: 'Time' } }, timing));
  tr.addEventListener('click', (ev) => {
    if (ev.target.closest('a, button')) return;
    if (window.getSelection && String(window.getSelection())) return;
    window.location.hash = href;
  });
  return tr;
}
