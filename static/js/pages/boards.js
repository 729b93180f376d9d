// Boards (DESIGN section 10), from GET /api/v1/boards: each board's status,
// health, current queue, worker, tags and last health check; admins put a
// board in or out of maintenance and ask for a health check.

import { h, icon, replace, timeAgo, tick } from '../dom.js';
import { get, patch, post, enc } from '../api.js';
import { pageHeader, emptyState, errorPanel, loading, toast, setBusy, formDialog } from '../ui.js';

const POLL_MS = 3000;

// The badge class and icon of each board status and health.
const STATUS = {
  idle: ['status-passed', 'check', 'Idle'],
  busy: ['status-running', 'spin', 'Busy'],
  offline: ['status-aborted', 'stop', 'Offline'],
  maintenance: ['status-waiting', 'clock', 'Maintenance'],
  bad: ['status-error', 'alert', 'Bad'],
};
const HEALTH = {
  unknown: ['status-waiting', 'clock', 'Health unknown'],
  good: ['status-passed', 'check', 'Healthy'],
  bad: ['status-error', 'alert', 'Unhealthy'],
};

function badge([cls, ic, label], extra = '') {
  return h(`span.badge.badge-sm.${cls}${extra}`, icon(ic), h('span', label));
}

export function render(root, ctx) {
  let timer = null;
  let disposed = false;
  const grid = h('div.worker-grid#boards', loading('Loading boards…'));
  root.append(
    pageHeader('Boards', { subtitle: 'Real boards on the workers’ serial ports: flashed, reset and tested like QEMU.' }),
    grid);

  const schedule = () => {
    clearTimeout(timer);
    if (!disposed) timer = setTimeout(() => (document.hidden ? schedule() : load()), POLL_MS);
  };

  const load = async () => {
    try {
      const boards = await get('boards');
      if (!disposed) draw(boards);
    } catch (e) {
      if (!disposed) replace(grid, errorPanel(e, load));
    } finally {
      schedule();
    }
  };

  const maintenance = async (b, button) => {
    let note = b.note;
    if (!b.maintenance) {
      const v = await formDialog({
        title: `Maintenance for ${b.id}`,
        intro: 'New queues keep off the board; a running one finishes.',
        fields: [{ name: 'note', label: 'Note (why, until when)', hint: 'Shown on the board; up to 1000 characters.' }],
        confirm: 'Start maintenance',
        submit: async (values) => values,
      });
      if (!v) return;
      note = v.note;
    }
    setBusy(button, true);
    try {
      await patch(`boards/${enc(b.id)}`, { maintenance: !b.maintenance, note });
      toast(b.maintenance ? `${b.id} is back in scheduling` : `${b.id} is in maintenance`);
      load();
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      setBusy(button, false);
    }
  };

  const check = async (b, button) => {
    setBusy(button, true);
    try {
      const q = await post(`boards/${enc(b.id)}/health`);
      toast(h('span', 'Health check queued: ', h('a.mono', { href: `#/queues/${enc(q.id)}` }, q.id)));
      load();
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      setBusy(button, false);
    }
  };

  const draw = (boards) => {
    if (!boards.length) {
      replace(grid, h('div.panel.glass.grid-wide', emptyState('No board is registered',
        'Add [[boards]] to a worker’s config (docs/OPERATIONS.md, section 8) and restart it.')));
      return;
    }
    const admin = ctx.session.isAdmin();
    replace(grid, boards.map((b) => h('article.panel.glass.worker.board', { dataset: { board: b.id, state: b.status } },
      h('header.worker-head',
        h('span.worker-icon', icon('server')),
        h('h2.worker-id.mono', b.id),
        badge(STATUS[b.status] || STATUS.offline, '.board-status')),
      h('dl.worker-facts',
        h('div', h('dt', 'Health'), h('dd', badge(HEALTH[b.health] || HEALTH.unknown, '.board-health'))),
        h('div', h('dt', 'Queue'), h('dd', b.queue ? h('a.mono.board-queue', { href: `#/queues/${enc(b.queue)}` }, b.queue) : h('span.muted', 'none'))),
        h('div', h('dt', 'Worker'), h('dd.mono', b.worker)),
        h('div', h('dt', 'Target'), h('dd', b.target)),
        h('div', h('dt', 'Tags'), h('dd.board-tags', b.tags.length ? b.tags.join(', ') : h('span.muted', 'none'))),
        h('div', h('dt', 'Serial'), h('dd.mono.break', `${b.serial} @ ${b.baud}`)),
        h('div', h('dt', 'Last health check'), h('dd',
          b.last_health_queue
            ? h('span', timeAgo(b.last_health_at), ' · ', h('a.mono', { href: `#/queues/${enc(b.last_health_queue)}` }, 'its queue'))
            : h('span.muted', b.has_health_check ? 'never' : 'none configured'))),
        h('div', h('dt', 'Flashes · faults'), h('dd', `${b.flashes} · ${b.faults}`)),
        b.note ? h('div', h('dt', 'Note'), h('dd.board-note', b.note)) : null),
      admin ? h('div.board-actions',
        h('button.btn.btn-sm.btn-ghost.board-maintenance', { attrs: { type: 'button' }, on: { click: (e) => maintenance(b, e.currentTarget) } },
          b.maintenance ? 'End maintenance' : 'Maintenance'),
        b.has_health_check
          ? h('button.btn.btn-sm.btn-ghost.board-check', { attrs: { type: 'button' }, on: { click: (e) => check(b, e.currentTarget) } }, 'Health check')
          : null) : null)));
    tick(grid);
  };

  load();
  return {
    title: 'Boards',
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
  };
}
