// One test's page (DESIGN section 11): its runs from GET
// /api/v1/tests/history, newest last, as a strip of coloured marks and a
// chart of their durations drawn here as inline SVG (nothing from a CDN);
// every mark and point links to its queue (the chart is a group of
// links, not an image: a point is a way to its queue).

import { h, replace, timeAgo, shortSha, tick } from '../dom.js';
import { get, enc } from '../api.js';
import { pageHeader, emptyState, errorPanel, loading, statusBadge } from '../ui.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const RUNS = 100;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c);
  return el;
}

function title(text) {
  const t = document.createElementNS(SVG_NS, 'title');
  t.textContent = text;
  return t;
}

function label(run) {
  const d = run.duration_ms === null ? 'no duration' : `${run.duration_ms} ms`;
  return `${run.status}: ${d}, ${run.queue_id} on ${run.branch} at ${run.commit ? shortSha(run.commit) : 'no commit'}`;
}

// The durations over the runs (oldest left), one point per run, coloured by
// verdict, each a link to its queue.
function chart(runs) {
  const W = 720;
  const H = 180;
  const pad = { l: 48, r: 12, t: 12, b: 24 };
  const timed = runs.filter((r) => r.duration_ms !== null && r.duration_ms !== undefined);
  if (!timed.length) return h('p.muted', 'No run has a duration.');
  const max = Math.max(1, ...timed.map((r) => r.duration_ms));
  const x = (i) => pad.l + (runs.length === 1 ? (W - pad.l - pad.r) / 2 : (i * (W - pad.l - pad.r)) / (runs.length - 1));
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const points = runs.map((r, i) => (r.duration_ms === null || r.duration_ms === undefined ? null : [x(i), y(r.duration_ms), r]))
    .filter(Boolean);
  const grid = [0, 0.5, 1].map((f) => svg('g', { class: 'chart-grid' },
    svg('line', { x1: pad.l, x2: W - pad.r, y1: y(max * f), y2: y(max * f) }),
    svg('text', { x: pad.l - 6, y: y(max * f) + 4, 'text-anchor': 'end' }, document.createTextNode(max * f >= 1000 ? `${(max * f / 1000).toFixed(1)} s` : `${Math.round(max * f)} ms`))));
  return svg('svg', { class: 'duration-chart', id: 'duration-chart', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': `Durations of the last ${runs.length} runs, up to ${max} ms` },
    grid,
    svg('polyline', { class: 'chart-line', points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' '), fill: 'none' }),
    points.map(([px, py, r]) => svg('a', { href: `#/queues/${enc(r.queue_id)}`, 'aria-label': label(r) },
      svg('circle', { class: `chart-dot dot-${r.status}`, cx: px.toFixed(1), cy: py.toFixed(1), r: 4 }, title(label(r))))));
}

export async function render(root, ctx) {
  const { repo = '', scenario = '', name = '', branch = '' } = ctx.params;
  const crumbs = [h('a', { href: '#/tests' }, 'Tests'), h('span', { attrs: { 'aria-current': 'page' } }, name)];
  root.append(pageHeader(h('span.mono#test-name', name), { crumbs, subtitle: `${repo} · ${scenario}${branch ? ` · ${branch}` : ''}` }));
  const body = h('div.test-page', loading('Loading runs…'));
  root.append(body);
  let page;
  try {
    page = await get('tests/history', { query: { repo, scenario, name, branch, limit: RUNS } });
  } catch (e) {
    replace(body, errorPanel(e, () => ctx.navigate(window.location.hash)));
    return { title: name };
  }
  const runs = page.items.slice().reverse(); // oldest first, left to right
  if (!runs.length) {
    replace(body, h('div.panel.glass', emptyState('No runs', 'This test has no recorded runs here.')));
    return { title: name };
  }
  const passed = runs.filter((r) => r.status === 'passed').length;
  replace(body,
    h('section.panel.glass.strip-panel', { attrs: { 'aria-labelledby': 'strip-heading' } },
      h('h2#strip-heading', `Verdicts of the last ${runs.length} runs`, h('span.muted', ` · ${passed} passed`)),
      h('ol.verdict-strip#verdict-strip', runs.map((r) => h('li',
        h(`a.mark.mark-${r.status}`, { href: `#/queues/${enc(r.queue_id)}`, title: label(r), attrs: { 'aria-label': label(r) } }))))),
    h('section.panel.glass.chart-panel', { attrs: { 'aria-labelledby': 'chart-heading' } },
      h('h2#chart-heading', 'Duration'), chart(runs)),
    h('section.panel.glass', { attrs: { 'aria-labelledby': 'runs-heading' } },
      h('h2#runs-heading', 'Runs'),
      h('div.tests-table-wrap', h('table.tests-table#runs-table',
        h('thead', h('tr', ['Queue', 'Verdict', 'Duration', 'Branch', 'Commit', 'Ran on', 'When', 'Message'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', page.items.map((r) => h('tr', { dataset: { queue: r.queue_id } },
          h('td', h('a.mono', { href: `#/queues/${enc(r.queue_id)}` }, r.queue_id)),
          h('td', statusBadge(r.status, { small: true })),
          h('td.num', r.duration_ms === null ? '—' : `${r.duration_ms} ms`),
          h('td.mono', r.branch),
          h('td.mono', r.commit ? shortSha(r.commit) : '—'),
          h('td', r.ran_on),
          h('td', timeAgo(r.finished_at)),
          h('td.muted', r.message || ''))))))));
  tick(body);
  return { title: name };
}
