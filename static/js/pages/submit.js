// Submit a queue: repository and target (from GET /api/v1/config), branch,
// an optional commit, scenario paths, priority, timeout. API errors are
// shown next to the field named by `error.field`.

import { h, icon, nextId, replace } from '../dom.js';
import { get, post, enc } from '../api.js';
import { pageHeader, clearErrors, showError, setBusy, toast } from '../ui.js';

// What the API takes as `commit`: a full sha or an abbreviation of it.
export const COMMIT_RE = /^[0-9a-fA-F]{7,40}$/;

export function render(root, ctx) {
  const errs = {};
  const field = (name, label, input, hint) => {
    const errId = `err-${name}`;
    const hintId = hint ? `hint-${name}` : null;
    input.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
    errs[name] = { error: h('p.field-error', { id: errId, hidden: true }), input };
    return h('div.field', { dataset: { field: name } },
      h('label', { for: input.id }, label),
      input,
      hint ? h('p.hint', { id: hintId }, hint) : null,
      errs[name].error);
  };

  const branchList = h('datalist#dl-branches');
  const scenarioList = h('datalist#dl-scenarios');

  const branch = h('input.input#q-branch', { name: 'branch', required: true, placeholder: 'main', autocomplete: 'off', spellcheck: 'false', attrs: { list: 'dl-branches' } });
  const commit = h('input.input.mono#q-commit', {
    name: 'commit', placeholder: 'the branch’s tip', autocomplete: 'off', spellcheck: 'false',
    attrs: { maxlength: 40, autocapitalize: 'off', pattern: '[0-9a-fA-F]{7,40}' },
  });
  const priority = h('input.input#q-priority', { name: 'priority', type: 'number', value: '0', attrs: { min: -1000, max: 1000, step: 1, inputmode: 'numeric' } });
  const timeout = h('input.input#q-timeout', { name: 'timeout_s', type: 'number', placeholder: 'worker default', attrs: { min: 1, step: 1, inputmode: 'numeric' } });

  // Repository and target: selects once GET /api/v1/config answers. Until
  // then (or if it fails) the server's defaults are taken: the values are
  // left out of the submission.
  const repoSlot = h('div.field-slot#repo-slot');
  const targetSlot = h('div.field-slot#target-slot');
  const choice = { repo: null, target: null }; // a <select>, or a fixed value
  const pre = ctx.params;

  const options = (items, wanted, fallback, defaultName) => {
    const names = items.map((i) => i.name);
    // A prefilled name the server no longer lists stays visible (the API says why it is refused).
    if (wanted && !names.includes(wanted)) names.push(wanted);
    const pick = wanted || fallback;
    return names.map((n) => h('option', { value: n, selected: n === pick }, n === defaultName ? `${n} (default)` : n));
  };

  const showRepos = (repos) => {
    const wanted = pre.repo || null;
    if (repos.length === 1 && (!wanted || wanted === repos[0].name)) {
      // One repository: nothing to choose; say which one it is.
      const fixed = h('input.input.input-fixed.mono#q-repo', { name: 'repo', value: repos[0].name, readOnly: true });
      choice.repo = repos[0].name;
      replace(repoSlot, field('repo', 'Repository', fixed, 'The only repository this farm builds.'));
      return;
    }
    const select = h('select.input#q-repo', { name: 'repo' }, options(repos, wanted, repos[0] && repos[0].name, repos[0] && repos[0].name));
    choice.repo = select;
    replace(repoSlot, field('repo', 'Repository', select, 'The repositories this farm may build.'));
  };

  const showTargets = (targets, defaultTarget) => {
    const select = h('select.input#q-target', { name: 'target' }, options(targets, pre.target || null, defaultTarget, defaultTarget));
    choice.target = select;
    replace(targetSlot, field('target', 'Target', select, 'The board or emulator the firmware is built for.'));
  };

  const loadingField = (label) => h('div.field', h('span.field-label', label), h('p.fixed-value.muted', 'Loading…'));
  replace(repoSlot, loadingField('Repository'));
  replace(targetSlot, loadingField('Target'));

  // ---- scenario rows ----
  const scenarioRows = h('ol.scenario-rows#scenario-rows');
  const scenarioGroupError = h('p.field-error#err-scenarios', { hidden: true });
  const scenarioInputs = () => [...scenarioRows.querySelectorAll('input')];
  const scenarioErrors = () => [...scenarioRows.querySelectorAll('.field-error')];
  const renumber = () => {
    scenarioInputs().forEach((input, i) => {
      input.setAttribute('aria-label', `Scenario ${i + 1}`);
      input.dataset.index = String(i);
    });
    const removes = [...scenarioRows.querySelectorAll('.remove-scenario')];
    removes.forEach((b, i) => {
      b.setAttribute('aria-label', `Remove scenario ${i + 1}`);
      b.hidden = removes.length === 1;
    });
  };
  const addScenario = (value = '', focus = false) => {
    const id = nextId('scn');
    const input = h('input.input.mono.scenario-input', {
      id, name: 'scenario', value, placeholder: 'scenarios/unit.xml', autocomplete: 'off', spellcheck: 'false',
      attrs: { list: 'dl-scenarios', 'aria-describedby': `${id}-err` },
    });
    const remove = h('button.icon-btn.remove-scenario', { type: 'button', title: 'Remove' }, icon('trash'));
    const li = h('li.scenario-row', h('div.scenario-line', input, remove), h('p.field-error', { id: `${id}-err`, hidden: true }));
    remove.addEventListener('click', () => {
      const inputs = scenarioInputs();
      const i = inputs.indexOf(input);
      li.remove();
      renumber();
      const left = scenarioInputs();
      (left[Math.min(i, left.length - 1)] || addBtn).focus();
    });
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && input.value.trim() && input === scenarioInputs().at(-1)) {
        ev.preventDefault();
        addScenario('', true);
      }
    });
    scenarioRows.append(li);
    renumber();
    if (focus) input.focus();
    return input;
  };
  const addBtn = h('button.btn.btn-ghost.btn-sm#add-scenario', { type: 'button', on: { click: () => addScenario('', true) } }, icon('plus'), 'Add scenario');

  const general = h('div.form-error#submit-error', { role: 'alert', hidden: true });
  const submitBtn = h('button.btn.btn-primary#submit-queue', { type: 'submit' }, icon('send'), 'Submit queue');

  const form = h('form.panel.glass.submit-form#submit-form', { attrs: { novalidate: true, 'aria-labelledby': 'submit-heading' } },
    h('h2.sr-only#submit-heading', 'New queue'),
    h('div.form-grid',
      repoSlot,
      targetSlot,
      field('branch', 'Branch', branch, 'Checked against the repository before the queue is stored.'),
      field('commit', 'Commit (optional)', commit, 'A commit of the branch’s history, 7 to 40 hex digits. Empty: the branch’s tip now.'),
      h('div.form-pair',
        field('priority', 'Priority', priority, 'Higher runs first (−1000 to 1000).'),
        field('timeout_s', 'Timeout (s)', timeout, 'From start; empty: the worker’s default.'))),
    h('fieldset.field.scenarios', { dataset: { field: 'scenarios' } },
      h('legend', 'Scenarios'),
      h('p.hint#hint-scenarios', 'Paths of scenario XML files in the repository. Each becomes one task.'),
      scenarioRows,
      scenarioGroupError,
      addBtn),
    general,
    h('div.form-actions', h('a.btn.btn-ghost', { href: '#/queues' }, 'Cancel'), submitBtn),
    branchList, scenarioList);

  const lookup = (name) => {
    if (errs[name]) return errs[name];
    const m = /^(?:scenarios|tasks)\[(\d+)\]/.exec(name);
    if (m) {
      const input = scenarioInputs()[Number(m[1])];
      if (input) return { input, error: document.getElementById(`${input.id}-err`) };
    }
    if (name === 'scenarios' || name === 'tasks') return { input: scenarioInputs()[0], error: scenarioGroupError };
    return null;
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors([...Object.values(errs).map((e) => e.error), ...scenarioErrors(), scenarioGroupError], general,
      [...Object.values(errs).map((e) => e.input), ...scenarioInputs()]);
    const scenarios = scenarioInputs().map((i) => i.value.trim());
    const body = { branch: branch.value.trim() };
    if (!body.branch) {
      showError({ field: 'branch', message: 'Name a branch.' }, lookup, general);
      return;
    }
    const listed = scenarios.filter(Boolean);
    if (!listed.length) {
      showError({ field: 'scenarios', message: 'Give at least one scenario path.' }, lookup, general);
      return;
    }
    // Empty rows are dropped, so the indices the API names must follow the list sent.
    scenarioInputs().forEach((input) => {
      if (!input.value.trim() && scenarioInputs().length > 1) input.closest('li').remove();
    });
    renumber();
    const sha = commit.value.trim();
    if (sha) {
      if (!COMMIT_RE.test(sha)) {
        showError({ field: 'commit', message: 'A commit is 7 to 40 hex digits (0-9, a-f).' }, lookup, general);
        return;
      }
      body.commit = sha;
    }
    body.scenarios = listed;
    const chosen = (c) => (c && typeof c === 'object' ? c.value : c);
    if (chosen(choice.repo)) body.repo = chosen(choice.repo);
    if (chosen(choice.target)) body.target = chosen(choice.target);
    if (priority.value.trim() !== '') {
      const p = Number(priority.value);
      if (!Number.isInteger(p)) {
        showError({ field: 'priority', message: 'A whole number, please.' }, lookup, general);
        return;
      }
      body.priority = p;
    }
    if (timeout.value.trim() !== '') {
      const t = Number(timeout.value);
      if (!Number.isInteger(t)) {
        showError({ field: 'timeout_s', message: 'A whole number of seconds, please.' }, lookup, general);
        return;
      }
      body.timeout_s = t;
    }
    setBusy(submitBtn, true);
    try {
      const q = await post('queues', body);
      toast(`Queue ${q.id} submitted`);
      ctx.navigate(`#/queues/${enc(q.id)}`);
    } catch (e) {
      showError(e, lookup, general);
    } finally {
      setBusy(submitBtn, false);
    }
  });

  root.append(
    pageHeader('New queue', {
      subtitle: 'Build a branch and run its scenarios on the farm.',
      crumbs: [h('a', { href: '#/queues' }, 'Queues'), h('span', { attrs: { 'aria-current': 'page' } }, 'New queue')],
    }),
    form);

  // Prefill from ?branch=&commit=&scenarios=... (e.g. from a queue page) or leave one empty row.
  if (pre.branch) branch.value = pre.branch;
  if (pre.commit) commit.value = pre.commit;
  const preScenarios = (pre.scenarios || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (preScenarios.length) preScenarios.forEach((s) => addScenario(s));
  else addScenario();
  branch.focus();

  // What may be chosen: the farm's repositories and targets.
  get('config').then((cfg) => {
    if (!root.isConnected) return;
    showRepos(cfg.repos || []);
    showTargets(cfg.targets || [], cfg.default_target);
  }).catch((e) => {
    // Without the list the server's defaults apply; say so rather than guess.
    const note = (label) => h('div.field', h('span.field-label', label), h('p.fixed-value.muted', 'the server’s default'));
    replace(repoSlot, note('Repository'));
    replace(targetSlot, note('Target'));
    choice.repo = pre.repo || null;
    choice.target = pre.target || null;
    if (e.status !== 401) toast(`Could not load the farm’s repositories and targets: ${e.message}`, 'error');
  });

  // Suggestions for branches and scenarios from recent queues.
  get('queues', { query: { limit: 100 } }).then((page) => {
    const uniq = (xs) => [...new Set(xs.filter(Boolean))].slice(0, 50);
    const fill = (dl, values) => dl.append(...values.map((v) => h('option', { value: v })));
    const items = page.items || [];
    fill(branchList, uniq(items.map((q) => q.branch)));
    fill(scenarioList, uniq(items.flatMap((q) => (q.tasks || []).map((t) => t.scenario))));
  }).catch(() => {});

  return { title: 'New queue' };
}
