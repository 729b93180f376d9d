// Personal API tokens: create (the secret is shown once) and revoke.

import { h, icon, replace, timeAgo } from '../dom.js';
import { get, post, del, enc } from '../api.js';
import { pageHeader, emptyState, errorPanel, loading, confirmDialog, toast, setBusy, clearErrors, showError, copyText } from '../ui.js';

export function render(root, ctx) {
  const isAdmin = ctx.session.isAdmin();
  let showAll = false;
  let users = new Map();

  const name = h('input.input#token-name', { name: 'name', required: true, placeholder: 'ci-runner', autocomplete: 'off', attrs: { maxlength: 100, 'aria-describedby': 'token-name-err' } });
  const nameErr = h('p.field-error#token-name-err', { hidden: true });
  const general = h('p.form-error', { role: 'alert', hidden: true });
  const createBtn = h('button.btn.btn-primary#token-create', { type: 'submit' }, icon('plus'), 'Create token');
  const secretBox = h('div.secret-box#token-secret', { hidden: true, attrs: { role: 'status' } });
  const form = h('form.panel.glass.token-form', { attrs: { novalidate: true, 'aria-labelledby': 'new-token-heading' } },
    h('h2#new-token-heading', 'New token'),
    h('p.muted', 'Tokens let scripts and CI call the API as you: send it as ', h('code', 'Authorization: Bearer <token>'), '.'),
    h('div.inline-form',
      h('div.field', h('label', { for: 'token-name' }, 'Name'), name, nameErr),
      createBtn),
    general,
    secretBox);

  const list = h('div.list-body', loading('Loading tokens…'));
  const allToggle = isAdmin
    ? h('label.switch', h('input#tokens-all', { type: 'checkbox', on: { change: (e) => { showAll = e.target.checked; load(); } } }), h('span', 'Everyone’s tokens'))
    : null;

  root.append(
    pageHeader('API tokens', { subtitle: 'For the CLI, scripts and CI. A token acts with your rights until it is revoked.' }),
    h('div.two-col', form,
      h('section.panel.glass', { attrs: { 'aria-labelledby': 'tokens-heading' } },
        h('div.panel-head', h('h2#tokens-heading', 'Your tokens'), allToggle),
        list)));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors([nameErr], general, [name]);
    if (!name.value.trim()) {
      showError({ field: 'name', message: 'Give the token a name, e.g. where it is used.' }, () => ({ error: nameErr, input: name }), general);
      return;
    }
    setBusy(createBtn, true);
    try {
      const t = await post('tokens', { name: name.value.trim() });
      name.value = '';
      showSecret(t);
      load();
    } catch (e) {
      showError(e, (f) => (f === 'name' ? { error: nameErr, input: name } : null), general);
    } finally {
      setBusy(createBtn, false);
    }
  });

  const showSecret = (t) => {
    const input = h('textarea.input.mono.secret-input#token-secret-value', { readOnly: true, attrs: { rows: 2, spellcheck: 'false', 'aria-label': `Secret of ${t.name}` } });
    input.value = t.secret;
    const copy = h('button.btn.btn-sm#token-copy', { type: 'button' }, icon('copy'), 'Copy');
    copy.addEventListener('click', async () => {
      const ok = await copyText(t.secret, input);
      toast(ok ? 'Copied' : 'Select the text and copy it', ok ? 'info' : 'error');
    });
    const dismiss = h('button.btn.btn-ghost.btn-sm', { type: 'button', on: { click: () => { secretBox.hidden = true; replace(secretBox); name.focus(); } } }, 'Done');
    replace(secretBox,
      h('p.strong', icon('key'), ` Token “${t.name}” created`),
      h('p', 'Copy it now: it is shown only this once.'),
      h('div.secret-line', input, copy),
      dismiss);
    secretBox.hidden = false;
    input.focus();
    input.select();
  };

  const load = async () => {
    try {
      if (showAll && !users.size) {
        users = new Map((await get('users')).map((u) => [u.id, u.username]));
      }
      const tokens = await get('tokens', { query: showAll ? { all: 'true' } : {} });
      draw(tokens);
    } catch (e) {
      replace(list, errorPanel(e, load));
    }
  };

  const draw = (tokens) => {
    if (!tokens.length) {
      replace(list, emptyState('No tokens', showAll ? 'Nobody has a token.' : 'Create one for the CLI or CI.'));
      return;
    }
    replace(list, h('div.table-wrap', h('table.table.token-table#token-table',
      h('thead', h('tr',
        h('th', { scope: 'col' }, 'Name'),
        showAll ? h('th', { scope: 'col' }, 'Owner') : null,
        h('th', { scope: 'col' }, 'Starts with'),
        h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, 'Last used'),
        h('th', { scope: 'col' }, h('span.sr-only', 'Actions')))),
      h('tbody', tokens.map((t) => h('tr', { dataset: { token: t.id } },
        h('td', { dataset: { label: 'Name' } }, h('strong', t.name)),
        showAll ? h('td', { dataset: { label: 'Owner' } }, users.get(t.user_id) || `#${t.user_id}`) : null,
        h('td', { dataset: { label: 'Starts with' } }, h('code', `${t.prefix}…`)),
        h('td', { dataset: { label: 'Created' } }, timeAgo(t.created_at)),
        h('td', { dataset: { label: 'Last used' } }, t.last_used_at ? timeAgo(t.last_used_at) : h('span.muted', 'never')),
        h('td.cell-actions', h('button.btn.btn-sm.btn-danger-soft', {
          type: 'button',
          attrs: { 'aria-label': `Revoke ${t.name}` },
          on: { click: (ev) => revoke(t, ev.currentTarget) },
        }, icon('trash'), 'Revoke'))))))));
  };

  const revoke = async (t, btn) => {
    const ok = await confirmDialog({
      title: `Revoke “${t.name}”?`,
      message: 'Anything that uses it stops working at once. This cannot be undone.',
      confirm: 'Revoke token',
      danger: true,
    });
    if (!ok) return;
    setBusy(btn, true);
    try {
      await del(`tokens/${enc(t.id)}`);
      toast(`Token “${t.name}” revoked`);
      load();
    } catch (e) {
      toast(e.message, 'error');
      setBusy(btn, false);
    }
  };

  load();
  name.focus();
  return { title: 'API tokens' };
}
