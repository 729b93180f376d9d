// A queue's deliveries on its page (DESIGN section 12, "Forges"): the
// commit statuses sent to its repository's forge and the [[notify]]
// webhooks, each with its state, its tries and the last answer, read from
// GET /api/v1/queues/{id}/deliveries. The panel stays hidden while a queue
// has none (a farm without forges). It reads again when the queue's status
// changes, and every few seconds while a delivery waits for its next try.
// Also the queue's owner line: the farm's own user, "pushed by" the forge
// user whose push started it.

import { h, replace, timeAgo, tick } from '../dom.js';
import { get, enc } from '../api.js';
import { statusBadge } from '../ui.js';

const POLL_MS = 3000;

// "testarena, pushed by ann" for a queue a push started.
export function ownerLine(q) {
  if (!q.triggered_by) return q.owner;
  return h('span#queue-owner', q.owner, h('span.muted', ' · pushed by '), h('strong#triggered-by', q.triggered_by));
}

// A delivery's state as a badge: delivered, failed, superseded, waiting.
function stateBadge(d) {
  const [status, text] = {
    delivered: ['passed', 'delivered'],
    failed: ['failed', 'failed'],
    superseded: ['aborted', 'superseded'],
  }[d.state] || ['waiting', d.attempts ? 'retrying' : 'to send'];
  return statusBadge(status, { small: true, text });
}

function what(d) {
  if (d.kind === 'status') return ['Commit status ', h('strong', d.event), ' on ', h('code', d.context || 'testarena')];
  return ['Notification ', h('strong', d.event)];
}

function answer(d) {
  const parts = [`${d.attempts} ${d.attempts === 1 ? 'try' : 'tries'}`];
  if (d.last_code) parts.push(`last answer ${d.last_code}`);
  if (d.last_error) parts.push(d.last_error);
  if (d.state === 'pending' && d.next_try_at) parts.push(`next try ${timeAgo(d.next_try_at)}`);
  return parts.join(' · ');
}

function row(d) {
  return h('li.delivery', { dataset: { id: String(d.id), kind: d.kind, state: d.state } },
    h('div.delivery-head', stateBadge(d), h('span.delivery-what', what(d))),
    h('div.delivery-answer.muted', answer(d)),
    d.last_answer ? h('details.delivery-body',
      h('summary', 'Last answer'),
      h('pre.mono', d.last_answer)) : null,
    h('div.delivery-target.muted.mono', d.target_url));
}

// The panel; `update(queue)` reads the deliveries when needed.
export function deliveriesPanel(queueId) {
  const list = h('ol.deliveries-list#deliveries-list');
  const el = h('section.panel.glass.deliveries#deliveries', { hidden: true, attrs: { 'aria-labelledby': 'deliveries-heading' } },
    h('h2#deliveries-heading', 'Deliveries'), list);
  let seenStatus = null;
  let last = 0;
  let reading = false;
  let waiting = false;
  // Set once the panel is on the page: a read scheduled before the user
  // left (or deleted the queue) is dropped, not sent.
  let shown = false;
  const read = async () => {
    if (el.isConnected) shown = true;
    else if (shown) return;
    if (reading) return;
    reading = true;
    try {
      const items = await get(`queues/${enc(queueId)}/deliveries`);
      last = Date.now();
      waiting = items.some((d) => d.state === 'pending');
      el.hidden = items.length === 0;
      replace(list, items.map(row));
      tick(el);
    } catch {
      // The page shows the queue's own errors; this panel tries again later.
    } finally {
      reading = false;
    }
  };
  const timer = setInterval(() => {
    if (!el.isConnected) {
      clearInterval(timer);
      return;
    }
    if (waiting && Date.now() - last >= POLL_MS) read();
  }, 1000);
  return {
    el,
    update(queue) {
      if (queue.status !== seenStatus) {
        seenStatus = queue.status;
        read();
        // The app sends a change's deliveries within a moment of it.
        setTimeout(read, 1500);
      }
    },
  };
}
