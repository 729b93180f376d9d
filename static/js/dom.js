// DOM building without innerHTML: every piece of API data becomes a text
// node or an attribute value, never markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h('a.link#id', {href, on: {click}, dataset: {}, attrs: {}}, children...)
 * Props: class, text, html is deliberately not supported.
 */
export function h(tag, props, ...children) {
  let name = tag;
  const classes = [];
  let id = null;
  const m = /^([a-z0-9-]+)((?:[.#][\w-]+)*)$/i.exec(tag);
  if (m) {
    name = m[1];
    for (const part of m[2].match(/[.#][\w-]+/g) || []) {
      if (part[0] === '.') classes.push(part.slice(1));
      else id = part.slice(1);
    }
  }
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  if (id) el.id = id;
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  if (props) applyProps(el, props);
  append(el, children);
  return el;
}

function applyProps(el, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    switch (key) {
      case 'class':
        el.className = [el.className, value].filter(Boolean).join(' ');
        break;
      case 'text':
        el.textContent = String(value);
        break;
      case 'on':
        for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
        break;
      case 'dataset':
        for (const [k, v] of Object.entries(value)) {
          if (v !== undefined && v !== null) el.dataset[k] = String(v);
        }
        break;
      case 'attrs':
        for (const [k, v] of Object.entries(value)) {
          if (v === undefined || v === null || v === false) continue;
          setAttr(el, k, v === true ? '' : String(v));
        }
        break;
      case 'value':
      case 'checked':
      case 'disabled':
      case 'hidden':
      case 'selected':
      case 'required':
      case 'multiple':
      case 'readOnly':
      case 'tabIndex':
        el[key] = value;
        break;
      default:
        setAttr(el, key, value === true ? '' : String(value));
    }
  }
}

function setAttr(el, k, v) {
  const lower = k.toLowerCase();
  if (lower.startsWith('on') || lower === 'style' || lower === 'srcdoc') {
    throw new Error(`refusing attribute ${k}`);
  }
  if ((lower === 'href' || lower === 'src' || lower === 'action') && !isSafeUrl(v)) {
    throw new Error(`refusing URL ${v}`);
  }
  el.setAttribute(k, v);
}

function isSafeUrl(v) {
  return /^(#|\/|\.\/|[a-z0-9._-]+(\/|$)|https?:)/i.test(v) && !/^\s*javascript:/i.test(v);
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false || c === true) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// ---- icons: static path data, drawn with createElementNS -------------------

const ICONS = {
  check: ['M5 12.5l4.5 4.5L19 7.5'],
  x: ['M6 6l12 12', 'M18 6L6 18'],
  alert: ['M12 3.5l9.5 16.5h-19z', 'M12 10v4.5', 'M12 17.6v.1'],
  stop: ['M7 7h10v10H7z'],
  clock: ['M12 3.5a8.5 8.5 0 1 0 0 17a8.5 8.5 0 1 0 0-17z', 'M12 7.5V12l3 2'],
  skip: ['M5 12h10', 'M11 7l5 5-5 5', 'M19 6v12'],
  spin: ['M12 3.5a8.5 8.5 0 1 0 8.5 8.5'],
  sun: ['M12 8a4 4 0 1 0 0 8a4 4 0 1 0 0-8z', 'M12 2.5v2', 'M12 19.5v2', 'M4.6 4.6l1.4 1.4', 'M18 18l1.4 1.4', 'M2.5 12h2', 'M19.5 12h2', 'M4.6 19.4L6 18', 'M18 6l1.4-1.4'],
  moon: ['M20 14.5A8.5 8.5 0 0 1 9.5 4a8.5 8.5 0 1 0 10.5 10.5z'],
  plus: ['M12 5v14', 'M5 12h14'],
  trash: ['M4.5 7h15', 'M9.5 7V4.5h5V7', 'M6.5 7l1 13h9l1-13', 'M10 11v5.5', 'M14 11v5.5'],
  redo: ['M19 8.5A8 8 0 1 0 20 13', 'M19.5 3.5v5h-5'],
  file: ['M6 3.5h8l4 4v13H6z', 'M14 3.5v4h4', 'M9 12.5h6', 'M9 16h6'],
  download: ['M12 4v11', 'M7.5 10.5L12 15l4.5-4.5', 'M5 19.5h14'],
  search: ['M10.5 4a6.5 6.5 0 1 0 0 13a6.5 6.5 0 1 0 0-13z', 'M15.5 15.5L20 20'],
  up: ['M6 14l6-6 6 6'],
  down: ['M6 10l6 6 6-6'],
  flag: ['M6 21V4', 'M6 4.5h11l-2.5 4 2.5 4H6'],
  follow: ['M12 4v14', 'M6.5 12.5L12 18l5.5-5.5', 'M5 21h14'],
  key: ['M8 11a4 4 0 1 0 0 8a4 4 0 1 0 0-8z', 'M11 13.5L20 5', 'M17 8l2.5 2.5', 'M14.5 10.5l2 2'],
  user: ['M12 4a4 4 0 1 0 0 8a4 4 0 1 0 0-8z', 'M4.5 20.5a7.5 7.5 0 0 1 15 0'],
  server: ['M4.5 4.5h15v6h-15z', 'M4.5 13.5h15v6h-15z', 'M8 7.5v.1', 'M8 16.5v.1'],
  list: ['M9 6.5h11', 'M9 12h11', 'M9 17.5h11', 'M4.5 6.5v.1', 'M4.5 12v.1', 'M4.5 17.5v.1'],
  send: ['M4 12l16-8-6 16-3-7z'],
  shield: ['M12 3l8 3v6c0 4.5-3.5 8-8 9c-4.5-1-8-4.5-8-9V6z', 'M8.5 12l2.5 2.5 4.5-5'],
  logout: ['M14 4.5H5.5v15H14', 'M10 12h10', 'M16.5 8.5L20 12l-3.5 3.5'],
  copy: ['M8.5 8.5h11v11h-11z', 'M15.5 8.5V4.5h-11v11h4'],
  chevron: ['M9 6l6 6-6 6'],
  ext: ['M13.5 4.5h6v6', 'M19.5 4.5l-9 9', 'M17 13.5v6h-12.5v-12.5h6'],
  refresh: ['M19.5 12a7.5 7.5 0 1 1-2.2-5.3', 'M19.5 4v4h-4'],
};

export function icon(name, cls = '') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon icon-${name} ${cls}`.trim());
  for (const d of ICONS[name] || []) {
    const p = document.createElementNS(SVG_NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

// ---- formatting -----------------------------------------------------------

export function parseTime(s) {
  if (!s) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

/** "just now", "12 s ago", "5 min ago", "in 3 min", "Mar 4". */
export function relTime(iso, now = Date.now()) {
  const t = parseTime(iso);
  if (t === null) return '—';
  const diff = Math.round((now - t) / 1000);
  const abs = Math.abs(diff);
  const suffix = (s) => (diff >= 0 ? `${s} ago` : `in ${s}`);
  if (abs < 5) return 'just now';
  if (abs < 60) return suffix(`${abs} s`);
  if (abs < 3600) return suffix(`${Math.floor(abs / 60)} min`);
  if (abs < 86400) return suffix(`${Math.floor(abs / 3600)} h`);
  if (abs < 86400 * 14) return suffix(`${Math.floor(abs / 86400)} d`);
  return new Date(t).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

export function absTime(iso) {
  const t = parseTime(iso);
  if (t === null) return '';
  return new Date(t).toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** 420 -> "0.4 s", 12000 -> "12 s", 185000 -> "3 m 05 s", 3725000 -> "1 h 02 m". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, '0')} s`;
  const hh = Math.floor(m / 60);
  if (hh < 48) return `${hh} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(hh / 24)} d ${hh % 24} h`;
}

export function between(a, b) {
  const ta = parseTime(a);
  const tb = b ? parseTime(b) : Date.now();
  if (ta === null || tb === null) return null;
  return tb - ta;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

/** A <time> that the page ticker keeps saying "5 min ago". */
export function timeAgo(iso) {
  if (!iso) return h('span.muted', '—');
  return h('time.rel', { datetime: iso, title: absTime(iso), dataset: { rel: iso } }, relTime(iso));
}

/** A duration that keeps counting while `end` is null. */
export function elapsed(start, end) {
  if (!start) return h('span.muted', '—');
  const el = h('span.elapsed', { title: end ? `${absTime(start)} → ${absTime(end)}` : `since ${absTime(start)}` },
    duration(between(start, end)));
  if (!end) el.dataset.since = start;
  return el;
}

/** Refreshes every live time under `root`. */
export function tick(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('[data-rel]')) {
    const text = relTime(el.dataset.rel, now);
    if (el.textContent !== text) el.textContent = text;
  }
  for (const el of root.querySelectorAll('[data-since]')) {
    const text = duration(now - parseTime(el.dataset.since));
    if (el.textContent !== text) el.textContent = text;
  }
}

export function shortSha(sha) {
  return sha ? sha.slice(0, 10) : '';
}

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(t);
  return wrapped;
}

let uid = 0;
export function nextId(prefix = 'ta') {
  uid += 1;
  return `${prefix}-${uid}`;
}
