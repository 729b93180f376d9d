// The board of a queue on its page (DESIGN section 10): where it runs or
// ran (QEMU or a board, linked to the Boards page), what it asked for,
// and while it waits what it waits for.

import { h } from '../dom.js';

// The "Runs on" row of the details list; `row(label, value)` makes one.
export function boardRow(q, row) {
  const asked = q.board
    ? `${q.board === 'any' ? 'any board' : `board ${q.board}`}${q.board_tags && q.board_tags.length ? ` with tags ${q.board_tags.join(', ')}` : ''}`
    : 'QEMU';
  const on = q.ran_on
    ? (q.ran_on === 'qemu' ? h('span', 'QEMU') : h('a.mono#queue-board', { href: '#/boards' }, q.ran_on))
    : h('span.muted', asked);
  return row('Runs on', h('span', on,
    q.ran_on && q.board ? h('span.muted', ` (asked: ${asked})`) : null,
    q.waiting_for ? h('span.muted#waiting-for', ` · waiting for ${q.waiting_for}`) : null));
}
