// The dashboard: a single page with hash routes.
//   #/signin  #/queues  #/submit  #/queues/<id>  #/queues/<id>/log/<path>
//   #/tests  #/test?repo=&scenario=&name=  #/workers  #/tokens  #/admin

import { h, icon, replace, tick } from './dom.js';
import { get, del, setUnauthorizedHandler } from './api.js';
import { toast } from './ui.js';
import * as signin from './pages/signin.js';
import * as queues from './pages/queues.js';
import * as submit from './pages/submit.js';
import * as queue from './pages/queue.js';
import * as log from './pages/log.js';
import * as workers from './pages/workers.js';
import * as boards from './pages/boards.js';
import * as tokens from './pages/tokens.js';
import * as admin from './pages/admin.js';
import * as tests from './pages/tests.js';
import * as test from './pages/test.js';

const HINT_KEY = 'testarena-signed-in';

/** Shared state of the app, handed to every page. */
export const session = {
  user: null,
  isAdmin: () => !!(session.user && session.user.is_admin),
  mayChange: (owner) => !!session.user && (session.user.is_admin || session.user.username === owner),
};

const ROUTES = [
  { re: /^\/signin$/, page: signin, name: 'signin', public: true },
  { re: /^\/queues$/, page: queues, name: 'queues' },
  { re: /^\/submit$/, page: submit, name: 'submit' },
  { re: /^\/queues\/([^/]+)$/, page: queue, name: 'queue', nav: 'queues' },
  { re: /^\/queues\/([^/]+)\/log\/(.+)$/, page: log, name: 'log', nav: 'queues' },
  { re: /^\/tests$/, page: tests, name: 'tests' },
  { re: /^\/test$/, page: test, name: 'test', nav: 'tests' },
  { re: /^\/workers$/, page: workers, name: 'workers' },
  { re: /^\/boards$/, page: boards, name: 'boards' },
  { re: /^\/tokens$/, page: tokens, name: 'tokens' },
  { re: /^\/admin$/, page: admin, name: 'admin', admin: true },
];

const NAV = [
  { name: 'queues', href: '#/queues', label: 'Queues', icon: 'list' },
  { name: 'submit', href: '#/submit', label: 'Submit', icon: 'send' },
  { name: 'tests', href: '#/tests', label: 'Tests', icon: 'flag' },
  { name: 'workers', href: '#/workers', label: 'Workers', icon: 'server' },
  { name: 'boards', href: '#/boards', label: 'Boards', icon: 'flag' },
  { name: 'tokens', href: '#/tokens', label: 'Tokens', icon: 'key' },
  { name: 'admin', href: '#/admin', label: 'Admin', icon: 'shield', admin: true },
];

let current = null; // {route, instance, path}
let ticker = null;
let navigated = false; // false until the first page is shown

export function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/queues';
  const [path, qs] = raw.split('?', 2);
  const params = Object.fromEntries(new URLSearchParams(qs || ''));
  return { path, params };
}

export function navigate(hash, { replace: rep = false } = {}) {
  if (rep) {
    window.history.replaceState(null, '', hash);
    route();
  } else if (window.location.hash === hash) {
    route();
  } else {
    window.location.hash = hash;
  }
}

/** Changes the query of the current page without a new page render. */
export function setQuery(params) {
  const { path } = parseHash();
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) qs.set(k, v);
  const s = qs.toString();
  window.history.replaceState(null, '', `#${path}${s ? `?${s}` : ''}`);
}

function renderNav(active) {
  const nav = document.getElementById('mainnav');
  const who = document.getElementById('whoami');
  if (!session.user) {
    nav.hidden = true;
    who.hidden = true;
    replace(nav);
    replace(who);
    return;
  }
  nav.hidden = false;
  who.hidden = false;
  replace(nav, h('ul', NAV.filter((n) => !n.admin || session.isAdmin()).map((n) =>
    h('li', h('a.navlink', {
      href: n.href,
      dataset: { nav: n.name },
      attrs: { 'aria-current': n.name === active ? 'page' : null },
    }, icon(n.icon), h('span', n.label))))));
  const signOut = h('button.btn.btn-ghost.btn-sm', { type: 'button', id: 'signout', on: { click: signOutNow } },
    icon('logout'), h('span.hide-sm', 'Sign out'));
  signOut.setAttribute('aria-label', 'Sign out');
  replace(who,
    h('span.who', { title: session.isAdmin() ? 'Signed in as an administrator' : 'Signed in' },
      h('span.avatar', { attrs: { 'aria-hidden': 'true' } }, session.user.username.slice(0, 1).toUpperCase()),
      h('span.who-name', { id: 'who-name' }, session.user.username),
      session.isAdmin() ? h('span.role-pill', 'admin') : null),
    signOut);
}

async function signOutNow() {
  try {
    await del('session');
  } catch {
    /* the cookie goes anyway */
  }
  session.user = null;
  try {
    window.localStorage.removeItem(HINT_KEY);
  } catch {
    /* ignore */
  }
  toast('Signed out');
  navigate('#/signin');
}

export function signedIn(user) {
  session.user = user;
  try {
    window.localStorage.setItem(HINT_KEY, '1');
  } catch {
    /* ignore */
  }
}

function dispose() {
  if (current && current.instance && current.instance.dispose) {
    try {
      current.instance.dispose();
    } catch (e) {
      console.warn('dispose failed', e);
    }
  }
  current = null;
}

async function route() {
  const { path, params } = parseHash();
  let match = null;
  let found = null;
  for (const r of ROUTES) {
    match = r.re.exec(path);
    if (match) {
      found = r;
      break;
    }
  }
  if (!found) {
    navigate('#/queues', { replace: true });
    return;
  }
  if (!found.public && !session.user) {
    navigate(`#/signin?next=${encodeURIComponent(`#${path}${window.location.hash.includes('?') ? `?${window.location.hash.split('?')[1]}` : ''}`)}`, { replace: true });
    return;
  }
  if (found.name === 'signin' && session.user) {
    navigate(params.next && params.next.startsWith('#/') ? params.next : '#/queues', { replace: true });
    return;
  }
  const args = match.slice(1).map((s) => decodeURIComponent(s));
  // Same page, new query: let the page update itself (keeps focus and state).
  if (current && current.route === found && current.args.join('\0') === args.join('\0') && current.instance.update) {
    current.instance.update(params);
    return;
  }
  dispose();
  const main = document.getElementById('main');
  document.body.dataset.page = found.name;
  renderNav(found.nav || found.name);
  const ctx = { params, args, session, navigate, setQuery, signedIn };
  const container = h('div.page', { dataset: { page: found.name } });
  replace(main, container);
  const instance = (await found.page.render(container, ctx)) || {};
  current = { route: found, args, instance };
  if (instance.title) document.title = `${instance.title} · TestArena`;
  else document.title = 'TestArena';
  tick(main);
  // After a navigation, start keyboard and screen-reader users at the new
  // content, unless the page put the focus somewhere itself.
  if (navigated && (!document.activeElement || document.activeElement === document.body)) {
    main.focus({ preventScroll: true });
  }
  navigated = true;
}

function setupTheme() {
  const btn = document.getElementById('theme-toggle');
  const dark = () => {
    const t = document.documentElement.getAttribute('data-theme');
    if (t) return t === 'dark';
    return window.matchMedia('(prefers-color-scheme: dark)').matches;
  };
  const paint = () => {
    const isDark = dark();
    replace(btn, icon(isDark ? 'sun' : 'moon'));
    btn.setAttribute('aria-label', isDark ? 'Switch to light theme' : 'Switch to dark theme');
    btn.title = isDark ? 'Switch to light theme' : 'Switch to dark theme';
  };
  btn.addEventListener('click', () => {
    const next = dark() ? 'light' : 'dark';
    document.documentElement.setAttribute('data-theme', next);
    try {
      window.localStorage.setItem('testarena-theme', next);
    } catch {
      /* ignore */
    }
    paint();
  });
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', paint);
  paint();
}

async function boot() {
  setupTheme();
  document.getElementById('skip-link').addEventListener('click', (ev) => {
    ev.preventDefault();
    document.getElementById('main').focus();
  });
  setUnauthorizedHandler(() => {
    if (!session.user) return;
    session.user = null;
    try {
      window.localStorage.removeItem(HINT_KEY);
    } catch {
      /* ignore */
    }
    toast('Your session ended: please sign in again', 'error');
    const { path } = parseHash();
    if (path !== '/signin') navigate(`#/signin?next=${encodeURIComponent(window.location.hash)}`);
  });
  // Ask who we are only when a session is likely: a fresh visitor goes
  // straight to the sign-in page without a 401 in the console.
  let hint = null;
  try {
    hint = window.localStorage.getItem(HINT_KEY);
  } catch {
    hint = '1';
  }
  if (hint) {
    try {
      session.user = await get('me', { quiet401: true });
    } catch {
      session.user = null;
      try {
        window.localStorage.removeItem(HINT_KEY);
      } catch {
        /* ignore */
      }
    }
  }
  window.addEventListener('hashchange', route);
  ticker = setInterval(() => {
    if (!document.hidden) tick(document.getElementById('main'));
  }, 1000);
  await route();
  document.documentElement.classList.add('ready');
}

boot();

export function refreshNav() {
  const { path } = parseHash();
  const r = ROUTES.find((x) => x.re.test(path));
  renderNav(r ? r.nav || r.name : '');
}

export { ticker };
