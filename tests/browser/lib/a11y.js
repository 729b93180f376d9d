// WCAG 2.1 A and AA checks with axe-core, run in the page.
//
// Glass defeats axe's colour-contrast rule (it cannot see through
// backdrop-filter and gradients, so it reports "incomplete"), so the check
// runs twice per call: once as the page is (every other rule), and once with
// the backdrop replaced by its most saturated colour and the blur turned off
// (the solid fallback), where every contrast can be computed: text must
// pass over the worst spot of the gradient too.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// The violet blob of the light backdrop at full strength over its base, and
// the same for the dark scheme.
const WORST = { light: 'rgb(164, 134, 253)', dark: 'rgb(49, 31, 106)' };

async function run(page) {
  return page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return r.violations.map((v) => ({
      rule: v.id,
      impact: v.impact,
      nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${(n.failureSummary || '').split('\n').slice(1, 2).join(' ').trim()}`),
    }));
  });
}

/** Asserts no WCAG 2.1 A/AA violation on the page, as it is and over the worst backdrop. */
export async function assertAccessible(page, label) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const scheme = await page.evaluate(() => {
    const t = document.documentElement.getAttribute('data-theme');
    return t || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
  });
  const asIs = await run(page);
  // A constructed style sheet: allowed under the page's CSP, unlike <style>.
  await page.evaluate((bg) => {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(`.backdrop { display: none !important; }
      html, body { background: ${bg} !important; }
      * { -webkit-backdrop-filter: none !important; backdrop-filter: none !important; }`);
    window.__a11ySheet = sheet;
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  }, WORST[scheme]);
  let worst;
  try {
    worst = await run(page);
  } finally {
    await page.evaluate(() => {
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== window.__a11ySheet);
    });
  }
  assert.deepEqual(asIs, [], `accessibility violations on ${label} (${scheme})`);
  assert.deepEqual(worst, [], `accessibility violations on ${label} (${scheme}, over the most saturated backdrop)`);
}

/** assertAccessible in the light scheme, then in the dark one. */
export async function assertAccessibleBoth(page, label) {
  const before = await page.evaluate(() => document.documentElement.getAttribute('data-theme'));
  for (const theme of ['light', 'dark']) {
    await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
    await assertAccessible(page, label);
  }
  await page.evaluate((t) => {
    if (t) document.documentElement.setAttribute('data-theme', t);
    else document.documentElement.removeAttribute('data-theme');
  }, before);
}
