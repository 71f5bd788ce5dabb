// kmr web UI: overview page (per-distro verdict counts, queue, workers, chart).
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};
  const { h, getJson, section, errorBox } = KMR.dom;
  const core = KMR.core;

  const FILES_LABEL = {
    'identical': 'identical', 'content-identical': 'content-identical',
    'identical-modulo-signatures': 'identical modulo signatures', 'different': 'different',
    'build-failed': 'build failed', 'environment-unavailable': 'environment unavailable',
    'error': 'error', 'pending': 'not verified yet',
  };
  const ROOT_LABEL = { 'none': 'no verdict (rebuild failed)', 'pending': 'not verified yet' };

  function countsOf(obj, keys) {
    const out = [];
    const seen = new Set();
    for (const k of keys) { seen.add(k); out.push([k, Number((obj || {})[k]) || 0]); }
    for (const k of Object.keys(obj || {})) if (!seen.has(k)) out.push([k, Number(obj[k]) || 0]);
    return out;
  }

  function verdictTable(kind, caption, counts, total, distro) {
    const rows = counts.filter(function (c) { return c[1] > 0 || kind === 'files' && core.GOOD_FILES.has(c[0]); });
    return h('table', { class: 'counts', 'data-kind': kind },
      h('caption', null, caption),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Verdict'), h('th', { scope: 'col', class: 'num' }, 'Count'),
        h('th', { scope: 'col', class: 'num' }, 'Share'))),
      h('tbody', null, rows.map(function (c) {
        const params = { distro: distro };
        params.verdict = c[0] === 'none' ? '' : c[0];
        return h('tr', { 'data-verdict': c[0] },
          h('th', { scope: 'row' },
            h('a', { href: core.buildRoute('packages', null, params), title: core.explain(kind, c[0] === 'pending' ? null : c[0]) },
              h('span', { class: 'dot dot-' + core.verdictClass(kind, c[0]) }), ' ', kind === 'files' ? (FILES_LABEL[c[0]] || c[0]) : (ROOT_LABEL[c[0]] || c[0]))),
          h('td', { class: 'num' }, String(c[1])),
          h('td', { class: 'num' }, core.percent(c[1], total)));
      })));
  }

  function distroCard(d) {
    const total = Number(d.total) || 0;
    const files = countsOf(d.files, core.FILES_TIERS.concat(['pending']));
    const mr = countsOf(d.module_root, core.MODULE_ROOT.concat(['pending']));
    // kmrd counts by the one rule (rebuilder/verdict); the page does not recount.
    const good = Number(d.reproducible) || 0;
    const card = h('section', { class: 'card distro', 'data-distro': d.distro, 'aria-labelledby': 'd-' + d.distro },
      h('h2', { id: 'd-' + d.distro },
        h('a', { href: core.buildRoute('packages', null, { distro: d.distro }) }, d.distro)),
      h('p', { class: 'big' },
        h('span', { class: 'big-num', 'data-field': 'reproducible-percent' }, core.percent(good, total)),
        ' reproducible: ', h('span', { 'data-field': 'reproducible' }, String(good)), ' of ',
        h('span', { 'data-field': 'total' }, String(total)), ' tracked kernel artifacts'),
      h('p', { class: 'muted small-text' }, 'Reproducible = files identical, content-identical or identical modulo signatures (every shipped signature verified), the module root matches or is absent, and the module content root matches. ',
        d.pending ? String(d.pending) + ' not verified yet.' : ''),
      KMR.chart.stackedBar(files.map(function (c) {
        return { label: FILES_LABEL[c[0]] || c[0], value: c[1], cls: c[0] === 'pending' ? 'pending' : core.verdictClass('files', c[0]) + ' seg-' + c[0] };
      }), total, d.distro + ' files tiers'),
      h('div', { class: 'two' },
        verdictTable('files', 'Files tier', files, total, d.distro),
        verdictTable('module_root', 'Module Merkle root', mr, total, d.distro)));
    return card;
  }

  function historySeries(stats) {
    const hist = stats.history || [];
    // Accept either [{time, verified, reproducible}] or per-distro rows
    // [{ts, distro, total, reproducible}] (summed per timestamp).
    const byT = new Map();
    for (const p of hist) {
      const t = p.time != null ? p.time : p.ts;
      const verified = p.verified != null ? p.verified
        : (Number(p.reproducible) || 0) + (Number(p.not_reproducible) || 0) + (Number(p.failed) || 0);
      const cur = byT.get(t) || { time: t, verified: 0, reproducible: 0 };
      cur.verified += Number(verified) || 0;
      cur.reproducible += Number(p.reproducible) || 0;
      byT.set(t, cur);
    }
    return Array.from(byT.values());
  }

  async function render(main, ctx) {
    const stats = await getJson('stats');
    const distros = stats.distros || [];
    const q = stats.queue || {};
    const w = stats.workers || {};
    main.appendChild(h('h1', null, 'Overview'));
    const summary = h('section', { class: 'card summary', 'aria-label': 'Queue and workers' },
      h('dl', { class: 'kv-inline' },
        h('div', null, h('dt', null, 'Queue length'), h('dd', { 'data-field': 'queue' }, String(q.queued != null ? q.queued : (q.pending || 0)))),
        h('div', null, h('dt', null, 'Running jobs'), h('dd', { 'data-field': 'running' }, String(q.running || 0))),
        h('div', null, h('dt', null, 'Workers'), h('dd', { 'data-field': 'workers' },
          String(w.online != null ? w.online : (w.active != null ? w.active : w.total || 0)) +
          (w.total != null && (w.online != null || w.active != null) ? ' online of ' + w.total : ''))),
        h('div', null, h('dt', null, 'Artifacts'), h('dd', { 'data-field': 'artifacts' },
          String(distros.reduce(function (a, d) { return a + (Number(d.total) || 0); }, 0))))));
    main.appendChild(summary);
    const grid = h('div', { class: 'grid' });
    if (!distros.length) grid.appendChild(h('p', null, 'No repositories are tracked yet.'));
    for (const d of distros) grid.appendChild(distroCard(d));
    main.appendChild(grid);
    const chartSec = section('Reproducible over time', 'history');
    chartSec.appendChild(KMR.chart.timeChart(historySeries(stats), 'Share of verified artifacts that reproduce, over time'));
    main.appendChild(chartSec);
    // refresh while jobs run, while artifacts wait for a verdict, and while
    // nothing is tracked yet (a fresh kmrd --demo is still syncing)
    ctx.busy = (Number(q.running) || 0) + (Number(q.queued != null ? q.queued : q.pending) || 0) > 0 ||
      distros.some(function (d) { return Number(d.pending) > 0; }) || distros.length === 0;
  }

  KMR.views = KMR.views || {};
  KMR.views.overview = { title: 'Overview', render: render, errorBox: errorBox };
})(window);
