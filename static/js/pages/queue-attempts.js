// A queue's earlier attempts on its page (DESIGN section 11, "Attempts"):
// a farm failure (a lost worker, QEMU or a board at fault, git, a full
// disk) sent the queue back to waiting; each attempt it left behind is a
// line with its worker, where it ran, how it ended, and a link to its
// build log under attempts/<n>/. The page follows the queue through its
// attempts itself: the timeline (queue.log) carries on across them.

import { h, timeAgo, elapsed } from '../dom.js';
import { statusBadge } from '../ui.js';

// The "Attempts" block of the details panel, or null for a first attempt
// with nothing behind it. `href(path)` links a log of the queue.
export function attemptsBlock(q, href) {
  const earlier = q.attempts || [];
  if (!earlier.length && (q.attempt || 1) <= 1) return null;
  return h('div.attempts#attempts',
    h('h3.attempts-title', `Attempt ${q.attempt}`, earlier.length ? ` · ${earlier.length} earlier` : ''),
    h('ol.attempts-list', earlier.map((a) => h('li.attempt', { dataset: { attempt: String(a.attempt) } },
      h('span.attempt-n', `#${a.attempt}`), ' ', statusBadge(a.status), ' ',
      h('span.attempt-reason', a.reason || a.status),
      h('span.muted', ` · ${a.worker || 'no worker'} on ${a.ran_on} · ended `, timeAgo(a.finished_at),
        a.started_at ? [' after ', elapsed(a.started_at, a.finished_at)] : null),
      ' ', h('a.attempt-log', { href: href(`attempts/${a.attempt}/build.log`) }, 'build log')))));
}
