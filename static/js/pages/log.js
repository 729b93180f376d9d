// The log viewer: ranged reads for what is on disk, then SSE from that byte
// offset while the queue runs (each event's `next_offset` is where the next
// read or stream resumes); search, jump to the first failure, follow.

import { h, icon, replace, bytes, debounce } from '../dom.js';
import { get, request, enc, logUrl, queueEvents, isFinal } from '../api.js';
import { statusBadge, pageHeader, errorPanel, toast } from '../ui.js';
import { LogView } from '../logview.js';
import { logHref } from './queue.js';

const CHUNK = 1024 * 1024;

export async function render(root, ctx) {
  const [id, path] = ctx.args;
  let disposed = false;
  let events = null;
  let queue = null;
  let files = [];
  let live = false;
  let size = 0;
  let state = 'loading';

  const statusSlot = h('span.status-slot');
  const stateText = h('span.lv-state#lv-state');
  const countText = h('span.lv-count#lv-count', '');
  const sizeText = h('span.muted#lv-size');
  const progress = h('progress.lv-progress', { max: 100, value: 0, hidden: true });

  const view = new LogView({ label: `Log ${path}`, onChange: () => scheduleInfo() });

  // ---- toolbar ----
  const search = h('input.input.lv-search#lv-search', {
    type: 'search', placeholder: 'Search this log', autocomplete: 'off', spellcheck: 'false',
    attrs: { 'aria-label': 'Search this log', 'aria-describedby': 'lv-matches' },
  });
  const matches = h('span.lv-matches#lv-matches', { attrs: { 'aria-live': 'polite' } });
  const prev = h('button.icon-btn#lv-prev', { type: 'button', title: 'Previous match (Shift+Enter)', attrs: { 'aria-label': 'Previous match' } }, icon('up'));
  const next = h('button.icon-btn#lv-next', { type: 'button', title: 'Next match (Enter)', attrs: { 'aria-label': 'Next match' } }, icon('down'));
  const failBtn = h('button.btn.btn-sm.btn-danger-soft#lv-first-failure', { type: 'button', title: 'Jump to the first failure (f)' }, icon('flag'), 'First failure');
  const followBtn = h('button.btn.btn-sm.btn-toggle#lv-follow', { type: 'button', attrs: { 'aria-pressed': 'false' }, title: 'Keep the newest line in view' }, icon('follow'), 'Follow');
  const endBtn = h('button.btn.btn-sm.btn-ghost#lv-end', { type: 'button', title: 'Go to the last line' }, icon('down'), 'End');
  const raw = h('a.btn.btn-sm.btn-ghost#lv-raw', { href: logUrl(id, path), target: '_blank', rel: 'noopener', title: 'The raw file (first 4 MiB)' }, icon('ext'), 'Raw');
  const fileSelect = h('select.input.lv-files#lv-file', { attrs: { 'aria-label': 'Log file' } });

  const toolbar = h('div.lv-toolbar.glass',
    h('div.lv-searchbox', icon('search', 'search-icon'), search, matches, prev, next),
    h('div.lv-tools', failBtn, followBtn, endBtn, raw));

  const info = h('div.lv-info', statusSlot, stateText, countText, sizeText, progress);
  const help = h('p.sr-only#lv-help', 'Arrow keys and Page Up or Down scroll. Press slash to search, Enter for the next match, f for the first failure.');

  replace(root,
    pageHeader(h('span.mono.break', path.split('/').pop()), {
      crumbs: [
        h('a', { href: '#/queues' }, 'Queues'),
        h('a', { href: `#/queues/${enc(id)}` }, id),
        h('span.mono', { attrs: { 'aria-current': 'page' } }, path),
      ],
      subtitle: info,
      actions: [fileSelect],
    }),
    toolbar,
    help,
    h('section.panel.glass.lv-panel', { attrs: { 'aria-label': 'Log' } }, view.el));
  view.mount();

  // ---- info line ----
  let infoRaf = 0;
  const scheduleInfo = () => {
    if (infoRaf) return;
    infoRaf = requestAnimationFrame(() => {
      infoRaf = 0;
      const n = view.count();
      countText.textContent = `${n.toLocaleString()} ${n === 1 ? 'line' : 'lines'}`;
      followBtn.setAttribute('aria-pressed', String(view.follow));
      failBtn.disabled = view.failures.length === 0;
      failBtn.title = view.failures.length
        ? `Jump to the first failure (f) · ${view.failures.length.toLocaleString()} failure lines`
        : 'No failure lines';
    });
  };
  const setState = (s) => {
    state = s;
    followBtn.hidden = s === 'complete';
    stateText.className = `lv-state state-${s}`;
    replace(stateText, s === 'live' ? h('span.live-dot') : null,
      { live: 'Live', complete: 'Complete', loading: 'Loading…', waiting: 'Waiting for output…', reconnecting: 'Reconnecting…' }[s] || s);
  };

  // ---- search ----
  const showMatches = (k) => {
    const n = view.matches.length;
    if (!view.query) matches.textContent = '';
    else if (!n) matches.textContent = 'No matches';
    else matches.textContent = k ? `${k} / ${n.toLocaleString()}` : `${n.toLocaleString()} matches`;
    prev.disabled = next.disabled = !n;
    search.setAttribute('aria-invalid', view.query && !n ? 'true' : 'false');
  };
  const runSearch = () => {
    view.setQuery(search.value);
    showMatches(view.matches.length ? view.step(1) : 0);
  };
  const searchLater = debounce(runSearch, 150);
  search.addEventListener('input', searchLater);
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      searchLater.cancel();
      if (view.query !== search.value) runSearch();
      else showMatches(view.step(ev.shiftKey ? -1 : 1));
    } else if (ev.key === 'Escape') {
      search.value = '';
      runSearch();
    }
  });
  prev.addEventListener('click', () => showMatches(view.step(-1)));
  next.addEventListener('click', () => showMatches(view.step(1)));
  showMatches(0);

  const firstFailure = () => {
    const i = view.firstFailure();
    if (i < 0) {
      toast('No failure lines in this log');
      return;
    }
    view.setFollow(false);
    view.current = -1;
    view.scrollToLine(i, 'center');
    showMatches(0);
    view.scroller.focus({ preventScroll: true });
  };
  failBtn.addEventListener('click', firstFailure);
  followBtn.addEventListener('click', () => view.setFollow(!view.follow));
  endBtn.addEventListener('click', () => {
    view.scrollToBottom();
    view.scroller.focus({ preventScroll: true });
  });
  fileSelect.addEventListener('change', () => ctx.navigate(logHref(id, fileSelect.value)));

  const onKey = (ev) => {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.closest('input, textarea, select, [contenteditable]') || t.closest('dialog'))) return;
    if (ev.key === '/') {
      ev.preventDefault();
      search.focus();
      search.select();
    } else if (ev.key === 'f') {
      ev.preventDefault();
      firstFailure();
    }
  };
  document.addEventListener('keydown', onKey);

  // ---- loading ----
  /** Reads the file from `start` to its current end; returns the offset to follow from. */
  const readAll = async (start) => {
    let offset = start;
    let complete = false;
    for (;;) {
      const res = await request('GET', logUrl(id, path), { raw: true, query: { offset, limit: CHUNK } });
      size = Number(res.headers.get('X-Log-Size')) || 0;
      complete = res.headers.get('X-Log-Complete') === 'true';
      const buf = new Uint8Array(await res.arrayBuffer());
      if (disposed) return { offset, complete };
      const atEnd = offset + buf.length >= size;
      if (atEnd && !complete) {
        // Live: keep whole lines only; SSE resends from the cut.
        const cut = buf.lastIndexOf(10) + 1;
        view.appendBytes(buf.subarray(0, cut));
        offset += cut;
      } else {
        view.appendBytes(buf, atEnd && complete);
        offset += buf.length;
      }
      progress.hidden = size < CHUNK * 2;
      progress.value = size ? Math.round((offset / size) * 100) : 100;
      sizeText.textContent = bytes(size);
      if (atEnd || !buf.length) break;
    }
    progress.hidden = true;
    if (complete) view.finish();
    return { offset, complete };
  };

  const followFrom = (offset, initial = 'live') => {
    live = true;
    setState(initial);
    view.setFollow(true);
    let seen = offset;
    events = queueEvents(id, { path, offset }, {
      open: () => {
        if (state === 'reconnecting') setState(view.count() ? 'live' : 'waiting');
      },
      status: (q) => {
        queue = q;
        replace(statusSlot, statusBadge(q.status, { small: true }));
      },
      log: (chunk) => {
        // Byte offsets, from the server: the text is decoded lossily, so
        // its length says nothing about how many bytes it came from.
        if (chunk.path !== path || chunk.next_offset <= seen) return;
        seen = chunk.next_offset;
        if (state === 'waiting') setState('live');
        view.appendText(chunk.text);
        size = Math.max(size, chunk.next_offset);
        sizeText.textContent = bytes(size);
      },
      end: (q) => {
        live = false;
        view.finish();
        setState('complete');
        if (q && q.status) replace(statusSlot, statusBadge(q.status, { small: true }));
      },
      error: () => setState('reconnecting'),
      reconnect: async () => {
        // Resume where the last event ended: what was written meanwhile is
        // read from the file, then the stream goes on from there.
        const r = await readAll(seen);
        seen = r.offset;
        if (r.complete) {
          setState('complete');
          return false;
        }
        return { path, offset: r.offset };
      },
    });
  };

  setState('loading');
  try {
    [queue, files] = await Promise.all([get(`queues/${enc(id)}`), get(`queues/${enc(id)}/logs`)]);
  } catch (e) {
    replace(root, errorPanel(e, () => ctx.navigate(window.location.hash)));
    return { title: path };
  }
  if (disposed) return {};
  replace(statusSlot, statusBadge(queue.status, { small: true }));
  const logFiles = files.filter((f) => f.path.endsWith('.log'));
  if (!logFiles.some((f) => f.path === path)) logFiles.push({ path, size: 0 });
  replace(fileSelect, logFiles.map((f) => h('option', { value: f.path, selected: f.path === path }, f.path)));

  const exists = files.some((f) => f.path === path);
  try {
    if (exists) {
      const r = await readAll(0);
      if (disposed) return {};
      if (r.complete || isFinal(queue.status)) {
        if (!r.complete) view.finish();
        setState('complete');
      } else {
        followFrom(r.offset);
      }
    } else if (!isFinal(queue.status)) {
      followFrom(0, 'waiting');
    } else {
      setState('complete');
      view.el.prepend(h('p.lv-empty', 'This log does not exist.'));
    }
  } catch (e) {
    if (!disposed) toast(`Could not read the log: ${e.message}`, 'error');
  }

  // Deep links: ?line=N jumps there, ?q=text searches.
  if (ctx.params.q) {
    search.value = ctx.params.q;
    runSearch();
  } else if (ctx.params.line) {
    view.scrollToLine(Number(ctx.params.line) - 1, 'center');
  }
  scheduleInfo();

  return {
    title: path.split('/').pop(),
    dispose() {
      disposed = true;
      live = false;
      if (events) events.close();
      view.destroy();
      searchLater.cancel();
      document.removeEventListener('keydown', onKey);
    },
  };
}
