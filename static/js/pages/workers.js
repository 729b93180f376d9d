// Workers, from GET /api/v1/health: id, slots, last heartbeat, running queues.

import { h, icon, replace, timeAgo, parseTime, tick } from '../dom.js';
import { enc } from '../api.js';
import { pageHeader, emptyState, errorPanel, loading } from '../ui.js';

const POLL_MS = 3000;
// A worker silent this long is shown as stale (the default `lost_after_s`).
const STALE_S = 60;

export function render(root) {
  let timer = null;
  let disposed = false;
  const summary = h('div.health-summary');
  const grid = h('div.worker-grid#workers', loading('Loading workers…'));
  root.append(
    pageHeader('Workers', { subtitle: 'The daemons that build firmware and run it in QEMU.' }),
    summary,
    grid);

  const schedule = () => {
    clearTimeout(timer);
    if (!disposed) timer = setTimeout(() => (document.hidden ? schedule() : load()), POLL_MS);
  };

  const load = async () => {
    try {
      // 503 still carries the health body, so read it either way.
      const res = await fetch('/api/v1/health', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      const health = await res.json();
      if (disposed) return;
      draw(health);
    } catch (e) {
      if (!disposed) replace(grid, errorPanel(e, load));
    } finally {
      schedule();
    }
  };

  const draw = (health) => {
    const ok = health.status === 'ok';
    const workers = health.workers || [];
    const slots = workers.reduce((n, w) => n + w.slots, 0);
    const busy = workers.reduce((n, w) => n + w.running.length, 0);
    replace(summary,
      h('div.panel.glass.health-card', { dataset: { health: health.status } },
        h(`span.badge.${ok ? 'status-passed' : 'status-error'}`, icon(ok ? 'check' : 'alert'), h('span', ok ? 'Healthy' : 'Degraded')),
        h('dl.health-facts',
          h('div', h('dt', 'Database'), h('dd', health.database)),
          h('div', h('dt', 'Workers'), h('dd#n-workers', String(workers.length))),
          h('div', h('dt', 'Slots in use'), h('dd', `${busy} / ${slots}`)),
          h('div', h('dt', 'Version'), h('dd', health.version)))));
    if (!workers.length) {
      replace(grid, h('div.panel.glass.grid-wide', emptyState('No worker has registered', 'Start testarena-worker with the same config and database.')));
      return;
    }
    const now = Date.now();
    replace(grid, workers.map((w) => {
      const age = (now - (parseTime(w.last_seen) || 0)) / 1000;
      const stale = age > STALE_S;
      const state = stale ? 'stale' : w.running.length ? 'busy' : 'idle';
      return h('article.panel.glass.worker', { dataset: { worker: w.id, state } },
        h('header.worker-head',
          h('span.worker-icon', icon('server')),
          h('h2.worker-id.mono', w.id),
          h(`span.badge.badge-sm.${stale ? 'status-error' : w.running.length ? 'status-running' : 'status-passed'}`,
            icon(stale ? 'alert' : w.running.length ? 'spin' : 'check'), h('span', stale ? 'Silent' : w.running.length ? 'Busy' : 'Idle'))),
        h('dl.worker-facts',
          h('div', h('dt', 'Slots'), h('dd', h('span.slots', { attrs: { role: 'img', 'aria-label': `${w.running.length} of ${w.slots} slots busy` } },
            Array.from({ length: w.slots }, (_, i) => h(`span.slot${i < w.running.length ? '.slot-busy' : ''}`))), ` ${w.running.length} / ${w.slots}`)),
          h('div', h('dt', 'Last heartbeat'), h('dd', timeAgo(w.last_seen)))),
        h('div.worker-running',
          h('h3', 'Running'),
          w.running.length
            ? h('ul.running-list', w.running.map((id) => h('li', h('a.mono', { href: `#/queues/${enc(id)}` }, id))))
            : h('p.muted', 'Nothing right now.')));
    }));
    tick(grid);
  };

  load();
  return {
    title: 'Workers',
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
  };
}

