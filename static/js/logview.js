// A virtualised log: only the rows in view (plus a margin) exist in the
// DOM, so a 60,000-line log costs the same to show as a 60-line one.
// Lines are kept as strings; bytes are decoded with TextDecoder (lossy:
// invalid UTF-8 becomes U+FFFD).

import { h, icon } from './dom.js';

const OVERSCAN = 30;
const MAX_COLS = 2000; // longer lines are cut in the view; the full line opens in a dialog
// ESC [ ... final byte: colours and cursor moves from ESP-IDF's console.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;
// Lines that mean trouble: Unity's FAIL, ESP-IDF panics and asserts,
// compiler and tool errors. Case matters: "App version: fail" is no failure.
export const FAILURE = /\bFAIL(?:ED)?\b|Guru Meditation|assert failed|abort\(\) was called|\b(?:error|Error|ERROR)\b|Task watchdog got triggered|CORRUPT HEAP|stack overflow/;

export class LogView {
  constructor({ label = 'Log', onChange } = {}) {
    this.lines = [];
    this.tail = null; // the last line while it has no newline yet
    this.failures = [];
    this.matches = [];
    this.query = '';
    this.queryLower = '';
    this.current = -1; // index into matches
    this.flash = -1; // line index highlighted after a jump
    this.follow = false;
    this.maxCols = 0;
    this.onChange = onChange || (() => {});
    this.decoder = new TextDecoder('utf-8', { fatal: false });
    this.lineHeight = 20;
    this.rendered = { first: -1, count: 0, version: -1 };
    this.version = 0;
    this.raf = 0;

    this.sizer = h('div.lv-sizer');
    this.win = h('div.lv-window');
    this.scroller = h('div.lv-scroll', {
      tabindex: 0,
      attrs: { role: 'region', 'aria-label': label, 'aria-describedby': 'lv-help' },
    }, this.sizer, this.win);
    this.rail = h('canvas.lv-rail', { attrs: { 'aria-hidden': 'true' } });
    this.railWrap = h('div.lv-railwrap', { title: 'Failures (red) and search matches (amber); click to jump' }, this.rail);
    this.el = h('div.lv', this.scroller, this.railWrap);
    this.pool = [];

    this.expectTop = null;
    this.scroller.addEventListener('scroll', () => {
      const st = this.scroller.scrollTop;
      const atBottom = st + this.scroller.clientHeight >= this.scroller.scrollHeight - this.lineHeight;
      if (this.expectTop !== null && Math.abs(st - this.expectTop) < 2) {
        this.expectTop = null; // our own scroll
      } else if (this.follow && !atBottom) {
        this.setFollow(false); // the reader scrolled up: stop following
      }
      this.schedule();
    }, { passive: true });
    this.rail.addEventListener('click', (ev) => {
      const r = this.rail.getBoundingClientRect();
      const frac = (ev.clientY - r.top) / r.height;
      this.scrollToLine(Math.floor(frac * this.count()), 'center');
    });
    this.win.addEventListener('click', (ev) => {
      const more = ev.target.closest('.lv-more');
      if (more) this.openLine(Number(more.dataset.line));
    });
    this.resizeObserver = new ResizeObserver(() => {
      this.rendered.version = -1;
      this.schedule();
      this.drawRailSoon();
    });
    this.resizeObserver.observe(this.scroller);
  }

  /** Call once the element is in the document. */
  mount() {
    const probe = h('div.lv-row', h('span.lv-num', '0'), h('span.lv-text', 'M'));
    this.win.append(probe);
    const measured = probe.getBoundingClientRect().height;
    probe.remove();
    if (measured > 0) this.lineHeight = measured;
    this.schedule();
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.raf);
    cancelAnimationFrame(this.railRaf);
  }

  count() {
    return this.lines.length + (this.tail !== null ? 1 : 0);
  }

  line(i) {
    return i < this.lines.length ? this.lines[i] : this.tail || '';
  }

  // ---- input ----

  appendBytes(u8, last = false) {
    this.appendText(this.decoder.decode(u8, { stream: !last }));
  }

  appendText(text) {
    if (!text) return;
    const parts = text.split('\n');
    if (this.tail !== null) parts[0] = this.tail + parts[0];
    this.tail = null;
    const last = parts.pop();
    const start = this.lines.length;
    for (const raw of parts) this.lines.push(clean(raw));
    if (last !== '') this.tail = last;
    this.indexFrom(start);
    this.changed();
  }

  /** The end of the file: a partial last line becomes a line. */
  finish() {
    const rest = this.decoder.decode();
    if (rest) this.appendText(rest);
    if (this.tail !== null) {
      const start = this.lines.length;
      this.lines.push(clean(this.tail));
      this.tail = null;
      this.indexFrom(start);
    }
    this.changed();
  }

  reset() {
    this.lines = [];
    this.tail = null;
    this.failures = [];
    this.matches = [];
    this.current = -1;
    this.maxCols = 0;
    this.decoder = new TextDecoder('utf-8', { fatal: false });
    this.changed();
  }

  indexFrom(start) {
    const q = this.queryLower;
    for (let i = start; i < this.lines.length; i++) {
      const line = this.lines[i];
      if (line.length > this.maxCols) this.maxCols = Math.min(line.length, MAX_COLS + 12);
      if (FAILURE.test(line)) this.failures.push(i);
      if (q && line.toLowerCase().includes(q)) this.matches.push(i);
    }
  }

  changed() {
    this.version += 1;
    this.sizer.style.height = `${this.count() * this.lineHeight}px`;
    this.sizer.style.width = `calc(${this.maxCols + 2}ch + 6.5rem)`;
    if (this.follow) this.scrollToBottom();
    this.schedule();
    this.drawRailSoon();
    this.onChange();
  }

  // ---- search and jumps ----

  setQuery(q) {
    this.query = q;
    this.queryLower = q.toLowerCase();
    this.matches = [];
    this.current = -1;
    if (this.queryLower) {
      const ql = this.queryLower;
      for (let i = 0; i < this.lines.length; i++) {
        if (this.lines[i].toLowerCase().includes(ql)) this.matches.push(i);
      }
    }
    this.version += 1;
    this.schedule();
    this.drawRailSoon();
    return this.matches.length;
  }

  /** Moves to the next (dir 1) or previous (dir -1) match; returns its number (1-based) or 0. */
  step(dir) {
    if (!this.matches.length) return 0;
    if (this.current < 0) {
      const top = this.topLine();
      let i = this.matches.findIndex((m) => m >= top);
      if (i < 0) i = 0;
      if (dir < 0) i = (i - 1 + this.matches.length) % this.matches.length;
      this.current = i;
    } else {
      this.current = (this.current + dir + this.matches.length) % this.matches.length;
    }
    this.setFollow(false);
    this.scrollToLine(this.matches[this.current], 'center');
    return this.current + 1;
  }

  firstFailure() {
    return this.failures.length ? this.failures[0] : -1;
  }

  topLine() {
    return Math.floor(this.scroller.scrollTop / this.lineHeight);
  }

  scrollToLine(i, where = 'center') {
    const n = this.count();
    if (!n) return;
    i = Math.max(0, Math.min(n - 1, i));
    const view = this.scroller.clientHeight;
    let top = i * this.lineHeight;
    if (where === 'center') top -= view / 2 - this.lineHeight;
    this.scroller.scrollTop = Math.max(0, top);
    this.scroller.scrollLeft = 0;
    this.expectTop = this.scroller.scrollTop;
    this.flash = i;
    this.version += 1;
    this.renderNow();
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.expectTop = this.scroller.scrollTop;
  }

  setFollow(on) {
    this.follow = on;
    if (on) this.scrollToBottom();
    this.onChange();
  }

  // ---- rendering ----

  schedule() {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      this.renderNow();
    });
  }

  renderNow() {
    const lh = this.lineHeight;
    const n = this.count();
    const view = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / lh) - OVERSCAN);
    const last = Math.min(n, Math.ceil((this.scroller.scrollTop + view) / lh) + OVERSCAN);
    const count = Math.max(0, last - first);
    const r = this.rendered;
    if (r.first === first && r.count === count && r.version === this.version) return;
    this.rendered = { first, count, version: this.version };
    while (this.pool.length < count) {
      const row = h('div.lv-row', h('span.lv-num'), h('span.lv-text'));
      this.pool.push(row);
      this.win.append(row);
    }
    for (let k = 0; k < this.pool.length; k++) {
      const row = this.pool[k];
      if (k >= count) {
        if (!row.hidden) row.hidden = true;
        continue;
      }
      row.hidden = false;
      this.paintRow(row, first + k);
    }
    this.win.style.transform = `translateY(${first * lh}px)`;
    this.drawRailSoon();
  }

  paintRow(row, i) {
    const text = this.line(i);
    const num = row.firstChild;
    const body = row.lastChild;
    num.textContent = String(i + 1);
    const isMatch = this.queryLower && text.toLowerCase().includes(this.queryLower);
    const isCurrent = this.current >= 0 && this.matches[this.current] === i;
    let cls = 'lv-row';
    if (FAILURE.test(text)) cls += ' lv-fail';
    else if (/^W \(\d+\)/.test(text)) cls += ' lv-warn';
    else if (/^E \(\d+\)/.test(text)) cls += ' lv-fail';
    if (isMatch) cls += ' lv-match';
    if (isCurrent) cls += ' lv-current';
    if (i === this.flash) cls += ' lv-flash';
    if (this.tail !== null && i === this.lines.length) cls += ' lv-partial';
    row.className = cls;
    row.dataset.line = String(i + 1);
    while (body.firstChild) body.removeChild(body.firstChild);
    const shown = text.length > MAX_COLS ? text.slice(0, MAX_COLS) : text;
    if (isMatch) {
      appendHighlighted(body, shown, this.queryLower);
    } else {
      body.textContent = shown || '\u200b';
    }
    if (text.length > MAX_COLS) {
      body.append(h('button.lv-more', { type: 'button', dataset: { line: i } },
        `… ${(text.length - MAX_COLS).toLocaleString()} more characters`));
    }
  }

  drawRailSoon() {
    if (this.railRaf) return;
    this.railRaf = requestAnimationFrame(() => {
      this.railRaf = 0;
      this.drawRail();
    });
  }

  drawRail() {
    const c = this.rail;
    const rect = this.railWrap.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr));
    const hgt = Math.max(1, Math.round(rect.height * dpr));
    if (c.width !== w) c.width = w;
    if (c.height !== hgt) c.height = hgt;
    const g = c.getContext('2d');
    g.clearRect(0, 0, w, hgt);
    const n = this.count();
    if (!n) return;
    const styles = getComputedStyle(this.el);
    const y = (i) => Math.floor((i / n) * hgt);
    // viewport
    const top = this.scroller.scrollTop / (n * this.lineHeight);
    const frac = this.scroller.clientHeight / (n * this.lineHeight);
    g.fillStyle = styles.getPropertyValue('--lv-rail-view').trim() || 'rgba(120,120,255,.25)';
    g.fillRect(0, Math.floor(top * hgt), w, Math.max(3 * dpr, Math.ceil(frac * hgt)));
    const mark = (list, color, x0, x1) => {
      g.fillStyle = color;
      let lastY = -10;
      for (const i of list) {
        const yy = y(i);
        if (yy - lastY < dpr) continue;
        lastY = yy;
        g.fillRect(x0, yy, x1 - x0, Math.max(2 * dpr, 2));
      }
    };
    mark(this.matches, styles.getPropertyValue('--lv-rail-match').trim() || '#f59e0b', 0, w / 2);
    mark(this.failures, styles.getPropertyValue('--lv-rail-fail').trim() || '#ef4444', w / 2, w);
  }

  openLine(i) {
    const text = this.line(i);
    const pre = h('pre.lv-fullline', text);
    const close = h('button.btn.btn-primary', { type: 'submit', value: 'close' }, 'Close');
    const dlg = h('dialog.dialog.dialog-wide.glass-strong', { attrs: { 'aria-label': `Line ${i + 1}` } },
      h('form.dialog-form', { method: 'dialog' },
        h('h2.dialog-title', `Line ${i + 1} · ${text.length.toLocaleString()} characters`),
        h('div.dialog-body', pre),
        h('div.dialog-actions', close)));
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
    close.focus();
  }
}

function clean(line) {
  if (line.endsWith('\r')) line = line.slice(0, -1);
  if (line.indexOf('\x1b') >= 0) line = line.replace(ANSI, '');
  return line;
}

function appendHighlighted(el, text, ql) {
  const lower = text.toLowerCase();
  let pos = 0;
  for (;;) {
    const at = lower.indexOf(ql, pos);
    if (at < 0) break;
    if (at > pos) el.append(text.slice(pos, at));
    el.append(h('mark', text.slice(at, at + ql.length)));
    pos = at + ql.length;
  }
  if (pos < text.length) el.append(text.slice(pos));
}

export { icon };
