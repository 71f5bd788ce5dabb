// Browser tests of the kmr web UI: real headless Debian Chromium, driven by
// playwright-core, against a real `kmrd --demo` started by run.sh.
//
// Environment: KMR_URL (http://127.0.0.1:PORT), KMR_MANIFEST (the fixtures'
// manifest.json), KMR_BIN (the kmr CLI), KMR_OUT (screenshots, downloads),
// KMR_WAIT_SECONDS (how long to wait for every artifact to get a verdict).
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BASE = process.env.KMR_URL;
const OUT = process.env.KMR_OUT || path.join(path.dirname(new URL(import.meta.url).pathname), 'out');
const KMR = process.env.KMR_BIN;
const WAIT_S = Number(process.env.KMR_WAIT_SECONDS || 1200);
if (!BASE) { console.error('KMR_URL is not set (run tests/browser/run.sh)'); process.exit(2); }
fs.mkdirSync(OUT, { recursive: true });

const results = [];
let current = null;
function log(...a) { console.log(...a); }

async function api(p, opts = {}) {
  const res = await fetch(BASE + p, opts);
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, body, headers: res.headers };
}

// ---------- manifest (fixtures) ----------
function loadManifest() {
  const file = process.env.KMR_MANIFEST;
  if (!file || !fs.existsSync(file)) throw new Error('fixtures manifest not found: ' + file);
  const m = JSON.parse(fs.readFileSync(file, 'utf8'));
  const list = Array.isArray(m) ? m : (m.artifacts || []);
  return list.map((a) => {
    const exp = a.expected || a.expected_verdicts || a.verdicts || {};
    return {
      distro: a.distro, name: a.name || (a.package && a.package.name), version: a.version || (a.package && a.package.version),
      sha256: String(a.sha256).toLowerCase(), files: exp.files || a.files || null, module_root: exp.module_root || a.module_root || null,
      differing: exp.differing || a.differing || null, path: a.path || null,
    };
  });
}

// ---------- wait until kmrd --demo has a verdict for every artifact ----------
async function waitForVerdicts(expectedTotal) {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    let s = null;
    try { s = (await api('/api/v1/stats')).body; } catch (e) { s = null; }
    if (s && Array.isArray(s.distros)) {
      const total = s.distros.reduce((a, d) => a + (d.total || 0), 0);
      const pending = s.distros.reduce((a, d) => a + (d.pending || 0), 0);
      const q = s.queue || {};
      const line = `artifacts ${total}/${expectedTotal}, pending ${pending}, queued ${q.queued}, running ${q.running}`;
      if (line !== last) { log('  kmrd: ' + line); last = line; }
      if (total >= expectedTotal && pending === 0 && !q.running && !q.queued) return s;
    }
    if (Date.now() - t0 > WAIT_S * 1000) throw new Error('timed out waiting for verdicts: ' + last);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---------- test harness ----------
async function test(name, fn) {
  current = { name, errors: [] };
  const t0 = Date.now();
  try {
    await fn();
    if (current.errors.length) throw new Error('page errors: ' + current.errors.join(' | '));
    results.push({ name, ok: true, ms: Date.now() - t0 });
    log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - t0, error: e.message });
    log(`FAIL ${name}: ${e.stack || e.message}`);
    try { await page.screenshot({ path: path.join(OUT, 'failure-' + name.replace(/\W+/g, '-') + '.png'), fullPage: true }); } catch { /* ignore */ }
  }
}
function expect(cond, msg) { if (!cond) throw new Error(msg); }
function eq(a, b, msg) { if (a !== b) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`); }

async function shot(name, opts = {}) {
  await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: opts.fullPage !== false });
}

// check_attestation.py (Python, independent of kmr) on a served envelope: the
// statement carries the content root the artifact document reports and its
// result follows the rule; for an Arch fixture the shipped content root is
// recomputed from the package file itself.
function checkAttestation(envFile, a, doc, what) {
  const docFile = envFile.replace(/\.intoto\.json$/, '') + '.artifact.json';
  fs.writeFileSync(docFile, JSON.stringify(doc));
  const args = [path.join(path.dirname(new URL(import.meta.url).pathname), 'check_attestation.py'), envFile, docFile];
  const pkg = a.path ? path.join(path.dirname(process.env.KMR_MANIFEST), a.path) : null;
  if (pkg && fs.existsSync(pkg) && a.distro === 'arch') args.push(pkg);
  const py = spawnSync('python3', args, { encoding: 'utf8' });
  log('  ' + (py.stdout + py.stderr).trim().split('\n').join('\n  '));
  eq(py.status, 0, 'check_attestation.py on ' + what);
}

async function gotoView(hash) {
  // main[data-ready] is set by the router once a view has rendered
  await page.evaluate(() => document.getElementById('main')?.removeAttribute('data-ready')).catch(() => {});
  const target = BASE + '/' + hash;
  if (page.url() === target) await page.reload(); else await page.goto(target);
  await page.waitForSelector('#main[data-ready]', { timeout: 20000 });
}

// ---------- main ----------
const manifest = loadManifest();
expect(manifest.length > 0, 'manifest lists no artifacts');
const distros = [...new Set(manifest.map((a) => a.distro))].sort();
log(`manifest: ${manifest.length} artifacts in ${distros.length} distros (${distros.join(', ')})`);
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmr-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.KMR_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1366, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
page.on('pageerror', (e) => current && current.errors.push('pageerror: ' + e.message));
page.on('console', (m) => {
  // HTTP error statuses the tests provoke on purpose (404, 401) are logged by
  // Chromium as "Failed to load resource"; anything else (script errors, CSP
  // violations "Refused to ...") fails the test.
  if (m.type() === 'error' && current && !/^Failed to load resource/.test(m.text())) current.errors.push('console: ' + m.text());
});
// Only our own origin may be contacted (no CDN, no external asset).
const foreign = [];
page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) foreign.push(r.url()); });

// While the demo still rebuilds, the open overview must refresh itself until
// the queue is empty (no navigation by the test).
await test('overview refreshes itself while jobs run', async () => {
  await page.goto(BASE + '/#/');
  await page.waitForSelector('#main[data-ready]', { timeout: 30000 });
  const first = Number(await page.getAttribute('#main', 'data-ready'));
  const busyAtStart = (await page.textContent('[data-field="queue"]')) !== '0' ||
    (await page.textContent('[data-field="running"]')) !== '0';
  await waitForVerdicts(manifest.length);
  if (!busyAtStart) { log('  (the demo had finished before the page opened; nothing to refresh)'); return; }
  await page.waitForFunction(() => document.querySelector('[data-field="queue"]')?.textContent === '0' &&
    document.querySelector('[data-field="running"]')?.textContent === '0', null, { timeout: 30000 });
  const last = Number(await page.getAttribute('#main', 'data-ready'));
  expect(last > first, 'the page re-rendered by itself');
  log(`  refreshed ${last - first} time(s) while jobs ran`);
});

await test('UI is served with a CSP that forbids inline code, and every asset loads', async () => {
  const res = await fetch(BASE + '/');
  eq(res.status, 200, 'GET /');
  const csp = res.headers.get('content-security-policy') || '';
  expect(/default-src 'self'/.test(csp), 'Content-Security-Policy with default-src \'self\' expected, got: ' + csp);
  await gotoView('#/');
  const title = await page.title();
  expect(/kmr/.test(title), 'page title: ' + title);
});

await test('overview shows every distro with the expected counts', async () => {
  await gotoView('#/');
  await page.waitForSelector('section.distro');
  const cards = await page.$$eval('section.distro', (els) => els.map((e) => e.getAttribute('data-distro')).sort());
  eq(JSON.stringify(cards), JSON.stringify(distros), 'distro cards');
  expect(distros.length === 4, 'the demo has four distros, manifest has ' + distros.length);
  for (const d of distros) {
    const arts = manifest.filter((a) => a.distro === d);
    const card = `section.distro[data-distro="${d}"]`;
    eq(await page.textContent(`${card} [data-field="total"]`), String(arts.length), `${d} total`);
    const shown = await page.$$eval(`${card} table[data-kind="files"] tbody tr`, (rows) =>
      Object.fromEntries(rows.map((r) => [r.getAttribute('data-verdict'), Number(r.querySelector('td.num').textContent)])));
    const shownRoot = await page.$$eval(`${card} table[data-kind="module_root"] tbody tr`, (rows) =>
      Object.fromEntries(rows.map((r) => [r.getAttribute('data-verdict'), Number(r.querySelector('td.num').textContent)])));
    const want = {};
    const wantRoot = {};
    for (const a of arts) {
      if (a.files) want[a.files] = (want[a.files] || 0) + 1;
      if (a.module_root) wantRoot[a.module_root] = (wantRoot[a.module_root] || 0) + 1;
    }
    for (const [tier, n] of Object.entries(want)) eq(shown[tier] || 0, n, `${d} files tier ${tier}`);
    for (const [v, n] of Object.entries(wantRoot)) eq(shownRoot[v] || 0, n, `${d} module_root ${v}`);
    const pctText = await page.textContent(`${card} [data-field="reproducible-percent"]`);
    expect(/%$/.test(pctText), `${d} percentage shown: ${pctText}`);
  }
  const queue = await page.textContent('[data-field="queue"]');
  eq(queue, '0', 'queue length after the demo finished');
  expect(await page.$('svg.timechart'), 'reproducibility chart drawn');
  await shot('overview');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, 'no horizontal scrolling of the page on a phone, overflow ' + overflow + ' px');
  await shot('overview-phone');
  await page.setViewportSize({ width: 1366, height: 900 });
});

await test('searching a sha256 opens its artifact', async () => {
  const a = manifest.find((x) => x.files && x.files !== 'different') || manifest[0];
  await gotoView('#/');
  await page.fill('#search-input', a.sha256);
  await page.press('#search-input', 'Enter');
  await page.waitForSelector('#artifact-sha256');
  eq((await page.textContent('#artifact-sha256')).trim(), a.sha256, 'artifact page sha256');
  expect(page.url().endsWith('#/artifact/' + a.sha256), 'URL is the artifact route: ' + page.url());
  const files = await page.textContent('.verdict[data-kind="files"] .badge');
  if (a.files) eq(files.trim(), a.files, 'files verdict badge');
  const root = await page.textContent('.verdict[data-kind="module_root"] .badge');
  if (a.module_root) eq(root.trim(), a.module_root, 'module_root verdict badge');
  const cmd = await page.textContent('#query-command');
  expect(cmd.includes('kmr query') && cmd.includes('sha256:' + a.sha256), 'kmr query command: ' + cmd);
  await shot('artifact-' + a.distro);
  // an upper-case hash with a "sha256:" prefix goes to the same page
  await page.fill('#search-input', 'sha256:' + a.sha256.toUpperCase());
  await page.press('#search-input', 'Enter');
  await page.waitForFunction((h) => location.hash === '#/artifact/' + h, a.sha256);
});

await test('unknown sha256 says so', async () => {
  await gotoView('#/artifact/' + '0'.repeat(64));
  await page.waitForSelector('#not-found');
});

await test('package list filters by distro and verdict, search by name', async () => {
  const d = distros[0];
  await gotoView('#/packages?distro=' + d);
  const rows = await page.$$eval('#artifact-list tbody tr', (r) => r.map((x) => x.getAttribute('data-sha256')));
  const want = manifest.filter((a) => a.distro === d).map((a) => a.sha256).sort();
  eq(JSON.stringify(rows.slice().sort()), JSON.stringify(want), `rows for distro ${d}`);
  const diffs = manifest.filter((a) => a.files === 'different');
  if (diffs.length) {
    await gotoView('#/packages?verdict=different');
    const r2 = await page.$$eval('#artifact-list tbody tr', (r) => r.map((x) => x.getAttribute('data-sha256')));
    eq(JSON.stringify(r2.sort()), JSON.stringify(diffs.map((a) => a.sha256).sort()), 'rows with verdict different');
  }
  const name = manifest[0].name;
  await gotoView('#/packages');
  await page.fill('#f-q', name);
  // the unfiltered list stays on screen until the router renders the search,
  // which it marks with a newer generation in main[data-ready]
  const before = Number(await page.getAttribute('#main', 'data-ready'));
  await page.press('#f-q', 'Enter');
  await page.waitForFunction((g) => location.hash.includes('q=') &&
    Number(document.getElementById('main').getAttribute('data-ready')) > g, before);
  await page.waitForSelector('#artifact-list');
  const names = await page.$$eval('#artifact-list tbody tr td:first-child', (t) => t.map((x) => x.textContent));
  expect(names.length > 0 && names.every((n) => n.startsWith(name)), 'search by name ' + name + ': ' + names.join(','));
  await shot('packages');
  // server-side cursor pagination: walk every page of 3 with "Next page", then back
  await gotoView('#/packages?limit=3');
  const seen = [];
  let pages = 0;
  for (;;) {
    pages++;
    seen.push(...await page.$$eval('#artifact-list tbody tr', (r) => r.map((x) => x.getAttribute('data-sha256'))));
    if (!(await page.$('#next-page'))) break;
    expect(pages < 100, 'pagination terminates');
    await page.evaluate(() => document.getElementById('main').removeAttribute('data-ready'));
    await page.click('#next-page');
    await page.waitForSelector('#main[data-ready]');
  }
  eq(seen.length, new Set(seen).size, 'no artifact on two pages');
  eq(JSON.stringify(seen.slice().sort()), JSON.stringify(manifest.map((a) => a.sha256).sort()), 'pages cover every artifact');
  eq(pages, Math.ceil(manifest.length / 3), 'number of pages');
  if (pages > 1) {
    await page.evaluate(() => document.getElementById('main').removeAttribute('data-ready'));
    await page.click('a[rel="prev"]');
    await page.waitForSelector('#main[data-ready]');
    const back = await page.$$eval('#artifact-list tbody tr', (r) => r.map((x) => x.getAttribute('data-sha256')));
    eq(JSON.stringify(back), JSON.stringify(seen.slice((pages - 2) * 3, (pages - 1) * 3)), 'previous page');
  }
});

await test('a non-reproducible fixture shows its differing members; expanding a node works', async () => {
  const a = manifest.find((x) => x.files === 'different');
  expect(a, 'the manifest has a fixture whose files verdict is "different"');
  await gotoView('#/artifact/' + a.sha256);
  await page.waitForSelector('#diff-summary', { timeout: 20000 });
  const members = await page.$$eval('#diff-summary ol.members li', (b) => b.map((x) => x.textContent));
  expect(members.length > 0, 'differing members listed');
  log('  differing members: ' + members.slice(0, 8).join(' | '));
  if (Array.isArray(a.differing)) {
    for (const m of a.differing.slice(0, 200)) {
      const name = typeof m === 'string' ? m : (m.path || m.name);
      expect(members.some((x) => x.includes(name)), `differing member ${name} listed`);
    }
  }
  await shot('diff-summary-' + a.distro);
  expect(await page.$('ul.dtree'), 'a diff report (tree) is served for this rebuild (GET /api/v1/builds/N/diff)');
  // expand a collapsed node with the keyboard and check aria-expanded + content
  const sel = 'ul.dtree .toggle[aria-expanded="false"]';
  await page.waitForSelector(sel);
  const id = await page.$eval(sel, (b) => b.getAttribute('aria-controls'));
  await page.focus(sel);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`[aria-controls="${id}"][aria-expanded="true"]`);
  expect(await page.isVisible('#' + id), 'expanded node body visible');
  const kids = await page.$$eval(`#${id} > *`, (x) => x.length);
  expect(kids > 0, 'expanded node has content');
  // collapse again
  await page.click(`[aria-controls="${id}"]`);
  await page.waitForSelector(`[aria-controls="${id}"][aria-expanded="false"]`);
  expect(!(await page.isVisible('#' + id)), 'collapsed node body hidden');
  // a summary entry reveals its node deep in the tree
  await page.click('#diff-summary ol.members li button');
  const target = await page.$eval('#diff-summary ol.members li button', (b) => b.getAttribute('data-target'));
  await page.waitForSelector(`li.dnode[data-node-id="${target}"]`, { state: 'visible' });
  const detail = await page.$$eval(`li.dnode[data-node-id="${target}"] :is(pre.udiff, ul.comments, dl.hashes)`,
    (els) => els.filter((e) => e.offsetParent !== null).length);
  expect(detail > 0, 'the revealed member shows its diff, comments or hashes');
  await shot('diff-' + a.distro);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, 'artifact page fits a phone, overflow ' + overflow + ' px');
  await shot('diff-phone');
  await page.setViewportSize({ width: 1366, height: 900 });
});

await test('the page uses the rule kmrd generates, which agrees with kmrd on every artifact', async () => {
  const js = await api('/ui/verdicts.js');
  eq(js.status, 200, 'GET /ui/verdicts.js');
  expect(/javascript/.test(js.headers.get('content-type') || ''), 'verdicts.js content type ' + js.headers.get('content-type'));
  expect(String(js.body).includes('export function isReproducible('), 'verdicts.js exports isReproducible');
  await gotoView('#/');
  const same = await page.evaluate(() => window.KMR.core.FILES_TIERS === window.KMR.verdicts.FILES_TIERS);
  expect(same, 'core.js takes FILES_TIERS from the generated module');
  let checked = 0;
  for (const a of manifest) {
    const doc = (await api('/api/v1/artifacts/sha256/' + a.sha256)).body;
    const v = doc.verdicts;
    if (!v || v.status !== 'verified') continue;
    const mine = await page.evaluate((x) => window.KMR.verdicts.isReproducible(x.files, x.module_root, x.module_content_root), v);
    eq(mine, v.reproducible, `rule in the page vs kmrd for ${a.distro} ${a.name} (${v.files}, ${v.module_root}, ${v.module_content_root})`);
    checked++;
  }
  expect(checked > 0, 'some artifacts were verified');
  log('  the page\'s rule agrees with kmrd on ' + checked + ' verified artifacts');
});

await test('the artifact page shows the content root beside the module root, and the signature check', async () => {
  const docs = [];
  for (const a of manifest) docs.push({ a, doc: (await api('/api/v1/artifacts/sha256/' + a.sha256)).body });
  const withRoot = docs.filter((x) => x.doc.content_root && x.doc.content_root.verdict);
  expect(withRoot.length > 0, 'kmrd reports a module content root for some fixture');
  const byVerdict = {};
  for (const x of withRoot) byVerdict[x.doc.content_root.verdict] = (byVerdict[x.doc.content_root.verdict] || 0) + 1;
  log('  content-root verdicts: ' + JSON.stringify(byVerdict));
  const good = withRoot.find((x) => x.doc.content_root.verdict === 'match' && x.doc.verdicts.reproducible);
  const bad = withRoot.find((x) => x.doc.content_root.verdict === 'mismatch');
  // a set whose modules are PKCS#7-signed: the rebuild checked the shipped signatures
  const signed = withRoot.find((x) => x.doc.signatures && x.doc.signatures.checked && x.doc.signatures.signed > 0);
  expect(good, 'a reproducible fixture with a matching content root');
  for (const x of [good, bad, signed].filter(Boolean)) {
    const cr = x.doc.content_root;
    await gotoView('#/artifact/' + x.a.sha256);
    await page.waitForSelector('#content-root-verdict');
    eq((await page.textContent('.verdict[data-kind="module_content_root"] .badge')).trim(), cr.verdict, 'content root verdict badge');
    eq((await page.textContent('#content-root-verdict .badge')).trim(), cr.verdict, 'content root section verdict');
    // shown beside the embedded module root (same verdict row)
    const kinds = await page.$$eval('#verdicts .verdict', (e) => e.map((x) => x.getAttribute('data-kind')));
    eq(JSON.stringify(kinds), JSON.stringify(['module_root', 'module_content_root', 'files']), 'verdict blocks');
    eq((await page.textContent('#content-roots .rootcol.shipped code')).trim(), cr.shipped || '(none)', 'shipped content root');
    eq((await page.textContent('#content-roots .rootcol.rebuilt code')).trim(), cr.rebuilt || '(none)', 'rebuilt content root');
    if (cr.levels != null) expect((await page.textContent('#content-roots .rootcol.shipped')).includes('levels: ' + cr.levels), 'levels shown');
    if (cr.note) eq((await page.textContent('#content-root-note')).trim(), cr.note, 'content root note');
    const equal = await page.$eval('#content-roots', (e) => e.classList.contains('equal'));
    eq(equal, cr.verdict === 'match', 'roots marked equal only on match');
    if (cr.verdict === 'mismatch') {
      expect(await page.$('#content-roots .differs'), 'differing hex digits marked');
      eq((await page.getAttribute('.verdict[data-kind="module_content_root"]', 'class')).includes('verdict-bad'), true, 'mismatch is shown as bad');
    }
    // the signature summary states the rebuild's own numbers
    const sig = x.doc.signatures;
    const text = (await page.textContent('#signature-summary')).trim();
    if (sig && sig.checked && sig.signed) {
      expect(text.startsWith(sig.verified + ' of ' + sig.signed + ' shipped module signature'), 'signature summary: ' + text);
      const failures = await page.$$eval('#signature-failures li code', (e) => e.map((y) => y.textContent));
      eq(JSON.stringify(failures), JSON.stringify((sig.failed || []).map((f) => f.module)), 'failed signatures listed');
    } else if (sig && sig.checked === false) {
      expect(text.startsWith('Not checked'), 'signature summary: ' + text);
    } else {
      expect(text.length > 0, 'a signature summary is shown');
    }
    await shot('content-root-' + cr.verdict + (x === signed ? '-signed' : ''));
  }
  if (bad) {
    // its attestation is FAILED, carries the mismatching roots (checked by Python, the shipped
    // root recomputed from the package for Arch) and kmr attest verify reports it as failed
    const att = (bad.doc.attestations || [])[0];
    expect(att, 'the content-root mismatch fixture has an attestation');
    const res = await fetch(BASE + (typeof att === 'string' ? att : att.url));
    eq(res.status, 200, 'GET the attestation envelope');
    const envFile = path.join(OUT, bad.a.sha256.slice(0, 16) + '.mismatch.intoto.json');
    fs.writeFileSync(envFile, Buffer.from(await res.arrayBuffer()));
    const stmt = JSON.parse(Buffer.from(JSON.parse(fs.readFileSync(envFile, 'utf8')).payload, 'base64').toString('utf8'));
    eq(stmt.predicate.verificationResult, 'FAILED', 'verificationResult of a content-root mismatch');
    eq(stmt.predicate.kernel.module_content_root, 'mismatch', 'predicate.kernel.module_content_root');
    checkAttestation(envFile, bad.a, bad.doc, 'the FAILED attestation');
  } else {
    log('  (no fixture with a content-root mismatch in this demo)');
  }
  if (!signed) log('  (no fixture whose shipped module signatures were checked in this demo)');
});

await test('the attestation link downloads a DSSE envelope that kmr attest verify accepts', async () => {
  // a PASSED attestation: files reproduce and the module root matches (or is absent)
  const a = manifest.find((x) => ['identical', 'content-identical', 'identical-modulo-signatures'].includes(x.files) &&
    ['match', 'absent'].includes(x.module_root));
  expect(a, 'the manifest has a reproducible fixture');
  await gotoView('#/artifact/' + a.sha256);
  await page.waitForSelector('#attestation-download', { timeout: 20000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#attestation-download')]);
  const file = path.join(OUT, a.sha256.slice(0, 16) + '.intoto.json');
  await download.saveAs(file);
  const env = JSON.parse(fs.readFileSync(file, 'utf8'));
  eq(env.payloadType, 'application/vnd.in-toto+json', 'DSSE payloadType');
  expect(Array.isArray(env.signatures) && env.signatures.length > 0, 'DSSE signatures');
  const stmt = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
  expect(stmt.subject.some((s) => s.digest && s.digest.sha256 === a.sha256), 'statement subject is the artifact');
  await page.waitForSelector('#inclusion-verdict.ok', { timeout: 20000 });
  // the rebuilder's public key, downloaded from the page as an end user would
  await page.waitForSelector('#key-download', { timeout: 20000 });
  const [keyDl] = await Promise.all([page.waitForEvent('download'), page.click('#key-download')]);
  const pagePem = path.join(OUT, 'rebuilder.pem');
  await keyDl.saveAs(pagePem);
  expect(fs.readFileSync(pagePem, 'utf8').includes('-----BEGIN PUBLIC KEY-----'), 'rebuilder.pem from the page is a PEM public key');
  const rp = spawnSync(KMR, ['attest', 'verify', '--key', pagePem, '--sha256', a.sha256, file], { encoding: 'utf8' });
  eq(rp.status, 0, 'kmr attest verify with the key downloaded from the page: ' + (rp.stdout + rp.stderr).trim());
  // and every published key from the API
  const keys = await api('/api/v1/keys');
  eq(keys.status, 200, 'GET /api/v1/keys');
  const pems = [];
  const collect = (x) => {
    if (typeof x === 'string' && x.includes('-----BEGIN PUBLIC KEY-----')) pems.push(x);
    else if (Array.isArray(x)) x.forEach(collect);
    else if (x && typeof x === 'object') Object.values(x).forEach(collect);
  };
  collect(keys.body);
  expect(pems.length > 0, 'a PEM public key in /api/v1/keys');
  const keyArgs = [];
  pems.forEach((p, i) => {
    const kf = path.join(OUT, `rebuilder-${i}.pem`);
    fs.writeFileSync(kf, p.endsWith('\n') ? p : p + '\n');
    keyArgs.push('--key', kf);
  });
  expect(KMR && fs.existsSync(KMR), 'kmr binary: ' + KMR);
  const r = spawnSync(KMR, ['attest', 'verify', ...keyArgs, '--sha256', a.sha256, file], { encoding: 'utf8' });
  log('  kmr attest verify: exit ' + r.status + ' ' + (r.stdout + r.stderr).trim().split('\n').slice(0, 3).join(' / '));
  eq(r.status, 0, 'kmr attest verify exit status');
  // and a tampered copy is refused (the check can fail)
  const bad = JSON.parse(JSON.stringify(env));
  bad.payload = Buffer.from(JSON.stringify({ ...stmt, predicateType: stmt.predicateType + 'x' })).toString('base64');
  const badFile = path.join(OUT, 'tampered.intoto.json');
  fs.writeFileSync(badFile, JSON.stringify(bad));
  const r2 = spawnSync(KMR, ['attest', 'verify', ...keyArgs, badFile], { encoding: 'utf8' });
  expect(r2.status !== 0, 'tampered envelope rejected');
  // the statement carries the content root the API reports, and PASSED follows
  // the rule: checked by Python, with the shipped root recomputed from the package
  checkAttestation(file, a, (await api('/api/v1/artifacts/sha256/' + a.sha256)).body, 'the PASSED attestation');
  await shot('attestation');
});

await test('queue and workers pages; admin token stays in sessionStorage', async () => {
  await gotoView('#/queue');
  await page.waitForSelector('#queue-counts');
  await gotoView('#/workers');
  await page.waitForSelector('#admin-form');
  const rows = await page.$$eval('tr[data-worker]', (r) => r.length);
  expect(rows > 0, 'at least the demo worker is listed');
  const hasAddr = await page.$$eval('th', (t) => t.some((x) => x.textContent === 'Address'));
  expect(!hasAddr, 'no worker addresses without the admin token');
  await page.fill('#admin-token', 'not-the-token');
  await page.press('#admin-token', 'Enter');
  await page.waitForFunction(() => /refused/i.test(document.getElementById('admin-message')?.textContent || ''));
  eq(await page.evaluate(() => sessionStorage.getItem('kmr.adminToken')), null, 'a refused token is not kept');
  const token = process.env.KMR_ADMIN_TOKEN;
  if (token) {
    await page.fill('#admin-token', token);
    await page.press('#admin-token', 'Enter');
    await page.waitForSelector('#admin-forget');
    await page.waitForFunction(() => [...document.querySelectorAll('th')].some((t) => t.textContent === 'Address'));
    eq(await page.evaluate(() => sessionStorage.getItem('kmr.adminToken')), token, 'token in sessionStorage');
    eq(await page.evaluate(() => localStorage.getItem('kmr.adminToken')), null, 'token never in localStorage');
    await gotoView('#/queue');
    await page.waitForSelector('#requeue-failed');
  }
  await shot('workers');
});

if (foreign.length) results.push({ name: 'no request leaves kmrd', ok: false, error: foreign.slice(0, 5).join(', ') });
else results.push({ name: 'no request leaves kmrd', ok: true });

await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
const failed = results.filter((r) => !r.ok);
fs.writeFileSync(path.join(OUT, 'results.json'), JSON.stringify(results, null, 2));
log(`browser tests: ${results.length - failed.length} passed, ${failed.length} failed (screenshots in ${OUT})`);
process.exit(failed.length ? 1 : 0);
