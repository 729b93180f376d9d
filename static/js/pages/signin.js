import { h, icon } from '../dom.js';
import { post } from '../api.js';
import { setBusy } from '../ui.js';

export function render(root, ctx) {
  const user = h('input.input#signin-username', {
    name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false',
  });
  const pass = h('input.input#signin-password', {
    name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const error = h('p.form-error#signin-error', { role: 'alert', hidden: true });
  const button = h('button.btn.btn-primary.btn-block#signin-submit', { type: 'submit' }, 'Sign in');
  const form = h('form.signin-form', { attrs: { novalidate: true } },
    h('div.field', h('label', { for: 'signin-username' }, 'Username'), user),
    h('div.field', h('label', { for: 'signin-password' }, 'Password'), pass),
    error,
    button);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!user.value.trim() || !pass.value) {
      error.textContent = 'Enter your username and password.';
      error.hidden = false;
      (user.value.trim() ? pass : user).focus();
      return;
    }
    setBusy(button, true);
    try {
      const me = await post('session', { username: user.value.trim(), password: pass.value }, { quiet401: true });
      ctx.signedIn(me);
      const next = ctx.params.next && ctx.params.next.startsWith('#/') && !ctx.params.next.startsWith('#/signin')
        ? ctx.params.next : '#/queues';
      ctx.navigate(next);
    } catch (e) {
      if (e.status === 401) error.textContent = 'Wrong username or password.';
      else if (e.status === 429) error.textContent = 'Too many failed sign-ins from this address. Wait a minute and try again.';
      else error.textContent = e.message;
      error.hidden = false;
      pass.select();
      pass.focus();
    } finally {
      setBusy(button, false);
    }
  });

  root.append(h('section.signin-wrap',
    h('div.signin-card.glass-strong',
      h('div.signin-brand', h('img', { src: 'favicon.svg', alt: '', width: 56, height: 56 }),
        h('div', h('h1', 'TestArena'), h('p.muted', 'ESP-IDF firmware test farm'))),
      form,
      h('p.signin-foot.muted', icon('shield'), 'Accounts are created by an administrator.'))));
  user.focus();
  return { title: 'Sign in' };
}
