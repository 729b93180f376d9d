// User administration (admins only): create, reset password, disable,
// make admin, delete.

import { h, icon, replace, timeAgo } from '../dom.js';
import { get, post, patch, del, enc } from '../api.js';
import { pageHeader, errorPanel, loading, confirmDialog, formDialog, toast, setBusy, clearErrors, showError } from '../ui.js';

export function render(root, ctx) {
  if (!ctx.session.isAdmin()) {
    root.append(
      pageHeader('Admins only'),
      h('div.panel.glass.notice#admin-denied', { attrs: { role: 'alert' } }, icon('shield'),
        h('div', h('p.strong', 'This page is for administrators.'),
          h('p', 'Ask an administrator to create or change accounts.'),
          h('p', h('a.btn', { href: '#/queues' }, 'Back to the queues')))));
    return { title: 'Admins only' };
  }

  const me = ctx.session.user;
  const fields = {};
  const mk = (name, label, input, hint) => {
    const err = h('p.field-error', { id: `nu-${name}-err`, hidden: true });
    input.setAttribute('aria-describedby', `nu-${name}-err`);
    fields[name] = { input, error: err };
    return h('div.field', h('label', { for: input.id }, label), input, hint ? h('p.hint', hint) : null, err);
  };
  const username = h('input.input#nu-username', { name: 'username', required: true, autocomplete: 'off', spellcheck: 'false' });
  const password = h('input.input#nu-password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', attrs: { minlength: 8 } });
  const isAdmin = h('input#nu-admin', { type: 'checkbox', name: 'is_admin' });
  const general = h('p.form-error', { role: 'alert', hidden: true });
  const createBtn = h('button.btn.btn-primary#nu-create', { type: 'submit' }, icon('plus'), 'Create user');
  const form = h('form.panel.glass.user-form#new-user', { attrs: { novalidate: true, 'aria-labelledby': 'nu-heading' } },
    h('h2#nu-heading', 'New user'),
    mk('username', 'Username', username, 'Letters, digits, dot, dash and underscore.'),
    mk('password', 'Password', password, 'At least 8 characters. Share it privately; they can’t change it themselves yet.'),
    h('label.checkbox', isAdmin, h('span', 'Administrator')),
    general,
    h('div.form-actions', createBtn));

  const list = h('div.list-body', loading('Loading users…'));
  root.append(
    pageHeader('Users', { subtitle: 'Accounts of the dashboard, the API and the CLI.' }),
    h('div.two-col.two-col-wide', h('section.panel.glass', { attrs: { 'aria-labelledby': 'users-heading' } },
      h('div.panel-head', h('h2#users-heading', 'Accounts')), list), form));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(Object.values(fields).map((f) => f.error), general, Object.values(fields).map((f) => f.input));
    if (!username.value.trim()) {
      showError({ field: 'username', message: 'Choose a username.' }, (f) => fields[f], general);
      return;
    }
    setBusy(createBtn, true);
    try {
      const u = await post('users', { username: username.value.trim(), password: password.value, is_admin: isAdmin.checked });
      toast(`User ${u.username} created`);
      username.value = '';
      password.value = '';
      isAdmin.checked = false;
      load();
    } catch (e) {
      showError(e, (f) => fields[f], general);
    } finally {
      setBusy(createBtn, false);
    }
  });

  const load = async () => {
    try {
      draw(await get('users'));
    } catch (e) {
      replace(list, errorPanel(e, load));
    }
  };

  const change = async (u, body, done, btn) => {
    setBusy(btn, true);
    try {
      await patch(`users/${enc(u.id)}`, body);
      toast(done);
      await load();
    } catch (e) {
      toast(e.message, 'error');
      setBusy(btn, false);
    }
  };

  const draw = (users) => {
    replace(list, h('div.table-wrap', h('table.table.user-table#user-table',
      h('thead', h('tr',
        h('th', { scope: 'col' }, 'User'),
        h('th', { scope: 'col' }, 'Role'),
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, h('span.sr-only', 'Actions')))),
      h('tbody', users.map((u) => {
        const self = u.id === me.id;
        const actions = h('div.row-actions',
          h('button.btn.btn-sm.btn-ghost', {
            type: 'button', dataset: { action: 'password' }, attrs: { 'aria-label': `Reset the password of ${u.username}` },
            on: { click: () => resetPassword(u) },
          }, icon('key'), 'Password'),
          h('button.btn.btn-sm.btn-ghost', {
            type: 'button', dataset: { action: 'admin' },
            attrs: { 'aria-label': u.is_admin ? `Remove admin rights of ${u.username}` : `Make ${u.username} an admin` },
            on: { click: (ev) => change(u, { is_admin: !u.is_admin }, u.is_admin ? `${u.username} is no longer an admin` : `${u.username} is now an admin`, ev.currentTarget) },
          }, icon('shield'), u.is_admin ? 'Remove admin' : 'Make admin'),
          h(`button.btn.btn-sm${u.disabled ? '.btn-ghost' : '.btn-danger-soft'}`, {
            type: 'button', dataset: { action: 'disable' }, disabled: self && !u.disabled,
            title: self ? 'You cannot disable yourself' : null,
            attrs: { 'aria-label': u.disabled ? `Enable ${u.username}` : `Disable ${u.username}` },
            on: { click: (ev) => toggleDisabled(u, ev.currentTarget) },
          }, icon(u.disabled ? 'check' : 'stop'), u.disabled ? 'Enable' : 'Disable'),
          h('button.btn.btn-sm.btn-danger-soft', {
            type: 'button', dataset: { action: 'delete' }, disabled: self,
            title: self ? 'You cannot delete yourself' : null,
            attrs: { 'aria-label': `Delete ${u.username}` },
            on: { click: (ev) => remove(u, ev.currentTarget) },
          }, icon('trash'), 'Delete'));
        return h('tr', { dataset: { user: u.username } },
          h('td', { dataset: { label: 'User' } }, h('span.user-cell', h('span.avatar', { attrs: { 'aria-hidden': 'true' } }, u.username.slice(0, 1).toUpperCase()),
            h('strong', u.username), self ? h('span.muted', ' (you)') : null)),
          h('td', { dataset: { label: 'Role' } }, u.is_admin ? h('span.role-pill', 'admin') : h('span.muted', 'user')),
          h('td', { dataset: { label: 'State' } }, u.disabled ? h('span.badge.badge-sm.status-aborted', icon('stop'), h('span', 'Disabled')) : h('span.badge.badge-sm.status-passed', icon('check'), h('span', 'Active'))),
          h('td', { dataset: { label: 'Created' } }, timeAgo(u.created_at)),
          h('td.cell-actions', actions));
      })))));
  };

  const resetPassword = async (u) => {
    const done = await formDialog({
      title: `New password for ${u.username}`,
      intro: 'Their sessions end at once; tokens keep working.',
      fields: [{ name: 'password', label: 'New password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }],
      confirm: 'Set password',
      submit: async (v) => {
        await patch(`users/${enc(u.id)}`, { password: v.password });
        return true;
      },
    });
    if (done) toast(`Password of ${u.username} changed`);
  };

  const toggleDisabled = async (u, btn) => {
    if (!u.disabled) {
      const ok = await confirmDialog({
        title: `Disable ${u.username}?`,
        message: 'Their sessions, tokens and Basic credentials stop working at once. Their queues stay.',
        confirm: 'Disable',
        danger: true,
      });
      if (!ok) return;
    }
    change(u, { disabled: !u.disabled }, u.disabled ? `${u.username} enabled` : `${u.username} disabled`, btn);
  };

  const remove = async (u, btn) => {
    const ok = await confirmDialog({
      title: `Delete ${u.username}?`,
      message: 'The account and its tokens are removed. Their queues stay.',
      confirm: 'Delete user',
      danger: true,
    });
    if (!ok) return;
    setBusy(btn, true);
    try {
      await del(`users/${enc(u.id)}`);
      toast(`User ${u.username} deleted`);
      load();
    } catch (e) {
      toast(e.message, 'error');
      setBusy(btn, false);
    }
  };

  load();
  return { title: 'Users' };
}
