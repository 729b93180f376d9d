// Shared pieces of the interface: status badges, toasts, dialogs, forms.

import { h, icon, replace, nextId } from './dom.js';

const STATUS_ICON = {
  passed: 'check',
  failed: 'x',
  error: 'alert',
  aborted: 'stop',
  running: 'spin',
  waiting: 'clock',
  skipped: 'skip',
};

const STATUS_LABEL = {
  passed: 'Passed',
  failed: 'Failed',
  error: 'Error',
  aborted: 'Aborted',
  running: 'Running',
  waiting: 'Waiting',
  skipped: 'Skipped',
};

export function statusLabel(status) {
  return STATUS_LABEL[status] || status;
}

/** A coloured pill with an icon, so status never rests on colour alone. */
export function statusBadge(status, { small = false, text } = {}) {
  const s = STATUS_ICON[status] ? status : 'unknown';
  return h(`span.badge.status-${s}${small ? '.badge-sm' : ''}`, { dataset: { status } },
    icon(STATUS_ICON[status] || 'alert'), h('span', text || statusLabel(status)));
}

export function setBadge(el, status) {
  const fresh = statusBadge(status, { small: el.classList.contains('badge-sm') });
  el.replaceWith(fresh);
  return fresh;
}

// ---- toasts ---------------------------------------------------------------

export function toast(message, kind = 'info', ms = 4500) {
  const host = document.getElementById('toasts');
  if (!host) return;
  const el = h(`div.toast.toast-${kind}`, icon(kind === 'error' ? 'alert' : 'check'), h('span', message));
  host.append(el);
  setTimeout(() => {
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 300);
  }, ms);
}

// ---- dialogs --------------------------------------------------------------

/** A modal <dialog>; resolves with the value of the button used, or null. */
function modal({ title, body, actions, initialFocus, onSubmit }) {
  return new Promise((resolve) => {
    const titleId = nextId('dlg');
    const form = h('form.dialog-form', { method: 'dialog' },
      h('h2.dialog-title', { id: titleId }, title),
      h('div.dialog-body', body),
      h('div.dialog-actions', actions));
    const dlg = h('dialog.dialog.glass-strong', { attrs: { 'aria-labelledby': titleId } }, form);
    let result = null;
    form.addEventListener('submit', async (ev) => {
      const button = ev.submitter;
      const value = button ? button.value : 'ok';
      if (value !== 'cancel' && onSubmit) {
        ev.preventDefault();
        const out = await onSubmit(value);
        if (out === undefined || out === false) return; // keep the dialog open
        result = out;
        dlg.close();
        return;
      }
      result = value === 'cancel' ? null : value;
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    if (initialFocus) initialFocus.focus();
  });
}

export async function confirmDialog({ title, message, confirm = 'Confirm', danger = false }) {
  const ok = h(`button.btn${danger ? '.btn-danger' : '.btn-primary'}`, { type: 'submit', value: 'ok' }, confirm);
  const cancel = h('button.btn.btn-ghost', { type: 'submit', value: 'cancel', formnovalidate: true }, 'Cancel');
  const res = await modal({
    title,
    body: h('p', message),
    actions: [cancel, ok],
    initialFocus: danger ? cancel : ok,
  });
  return res === 'ok';
}

/** A dialog with form fields; `submit(values)` returns true to close or throws. */
export async function formDialog({ title, intro, fields, confirm = 'Save', submit }) {
  const inputs = {};
  const errors = {};
  const rows = fields.map((f) => {
    const id = nextId('fd');
    const errId = `${id}-err`;
    const input = h('input.input', {
      id, name: f.name, type: f.type || 'text', autocomplete: f.autocomplete || 'off',
      required: !!f.required, attrs: { minlength: f.minlength, 'aria-describedby': errId },
    });
    inputs[f.name] = input;
    errors[f.name] = h('p.field-error', { id: errId, hidden: true });
    return h('div.field', h('label', { for: id }, f.label), input, f.hint ? h('p.hint', f.hint) : null, errors[f.name]);
  });
  const general = h('p.form-error', { role: 'alert', hidden: true });
  const ok = h('button.btn.btn-primary', { type: 'submit', value: 'ok' }, confirm);
  const cancel = h('button.btn.btn-ghost', { type: 'submit', value: 'cancel', formnovalidate: true }, 'Cancel');
  return modal({
    title,
    body: [intro ? h('p', intro) : null, ...rows, general],
    actions: [cancel, ok],
    initialFocus: rows.length ? inputs[fields[0].name] : ok,
    onSubmit: async () => {
      clearErrors(Object.values(errors), general, Object.values(inputs));
      const values = {};
      for (const [k, el] of Object.entries(inputs)) values[k] = el.value;
      ok.disabled = true;
      try {
        return (await submit(values)) || true;
      } catch (e) {
        showError(e, (field) => (errors[field] ? { error: errors[field], input: inputs[field] } : null), general);
        return false;
      } finally {
        ok.disabled = false;
      }
    },
  });
}

// ---- form errors ----------------------------------------------------------

export function clearErrors(errorEls, general, inputs = []) {
  for (const el of errorEls) {
    el.hidden = true;
    el.textContent = '';
  }
  if (general) {
    general.hidden = true;
    general.textContent = '';
  }
  for (const input of inputs) input.removeAttribute('aria-invalid');
}

/**
 * Shows an API error next to the field it names (`lookup(field)` gives
 * {error, input}), or in `general`. Focuses the field.
 */
export function showError(e, lookup, general) {
  const target = e && e.field ? lookup(e.field) : null;
  if (target) {
    target.error.textContent = e.message;
    target.error.hidden = false;
    if (target.input) {
      target.input.setAttribute('aria-invalid', 'true');
      target.input.focus();
    }
    return;
  }
  if (general) {
    const text = e && e.status === 429 ? `${e.message}` : (e && e.message) || String(e);
    general.textContent = text;
    general.hidden = false;
  } else {
    toast((e && e.message) || String(e), 'error');
  }
}

// ---- page furniture -------------------------------------------------------

export function pageHeader(title, { subtitle, actions, crumbs } = {}) {
  return h('header.page-header',
    crumbs ? h('nav.crumbs', { attrs: { 'aria-label': 'Breadcrumb' } }, crumbs) : null,
    h('div.page-title-row',
      h('div.page-titles', h('h1', title), subtitle ? h('p.subtitle', subtitle) : null),
      actions ? h('div.page-actions', actions) : null));
}

export function emptyState(title, text, action) {
  return h('div.empty', icon('list', 'empty-icon'), h('p.empty-title', title), text ? h('p.muted', text) : null, action || null);
}

export function errorPanel(e, retry) {
  return h('div.panel.glass.error-panel', { attrs: { role: 'alert' } },
    icon('alert'), h('div', h('p.strong', 'Something went wrong'), h('p', (e && e.message) || String(e))),
    retry ? h('button.btn', { type: 'button', on: { click: retry } }, icon('refresh'), 'Try again') : null);
}

export function loading(label = 'Loading…') {
  return h('div.loading', { attrs: { role: 'status' } }, h('span.spinner', { attrs: { 'aria-hidden': 'true' } }), h('span', label));
}

export function setBusy(button, busy) {
  button.disabled = busy;
  button.classList.toggle('busy', busy);
  if (busy) button.setAttribute('aria-busy', 'true');
  else button.removeAttribute('aria-busy');
}

/** Copies text; falls back to selecting it when the Clipboard API is missing (plain http). */
export async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  if (input) {
    input.focus();
    input.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
  return false;
}

export { replace };
