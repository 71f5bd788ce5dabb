// kmr web UI: package list with filters, search and server-side cursor pagination.
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};
  const { h, getJson } = KMR.dom;
  const core = KMR.core;
  const PAGE = 50;
  const KNOWN_DISTROS = ['arch', 'nixos', 'suse', 'proxmox'];
  // cursor history per filter, so "Previous page" works without server support
  const cursorTrail = new Map();

  function filterKey(p) { return [p.distro || '', p.name || '', p.verdict || '', p.q || '', p.limit || ''].join('\u0000'); }

  function select(id, label, value, options) {
    return h('div', { class: 'field' },
      h('label', { for: id }, label),
      h('select', { id: id, name: id.replace(/^f-/, '') },
        options.map(function (o) {
          const val = Array.isArray(o) ? o[0] : o;
          const text = Array.isArray(o) ? o[1] : o;
          return h('option', { value: val, selected: val === (value || '') }, text);
        })));
  }

  async function distroList() {
    try {
      const s = await getJson('stats');
      const ds = (s.distros || []).map(function (d) { return d.distro; });
      if (ds.length) return ds;
    } catch (e) { /* fall back to the four supported distros */ }
    return KNOWN_DISTROS;
  }

  function row(a) {
    const v = a.verdicts || {};
    const pkg = a.package || {};
    return h('tr', { 'data-sha256': a.sha256 },
      h('td', null, h('a', { href: '#/artifact/' + a.sha256 }, pkg.name || a.filename || a.sha256.slice(0, 12))),
      h('td', { class: 'ver' }, pkg.version || ''),
      h('td', null, a.distro || '', ' ', KMR.dom.unsignedBadge(a)),
      h('td', null, pkg.arch || a.arch || ''),
      h('td', null, KMR.dom.badge('files', core.filesVerdict(a.verdicts))),
      h('td', null, KMR.dom.badge('module_root', v.module_root)),
      h('td', { class: 'hash' }, h('a', { href: '#/artifact/' + a.sha256, 'aria-label': 'artifact ' + a.sha256 },
        h('code', null, a.sha256.slice(0, 16) + '\u2026'))));
  }

  async function render(main, ctx) {
    const p = ctx.route.params;
    main.appendChild(h('h1', null, 'Packages'));
    const distros = await distroList();
    const verdicts = [['', 'any verdict'], ['reproducible', 'reproducible'], ['not-reproducible', 'not reproducible'],
      ['pending', 'not verified yet']]
      .concat(core.FILES_TIERS.map(function (t) { return [t, 'files: ' + t]; }))
      .concat(core.MODULE_ROOT.map(function (t) { return [t, 'module root: ' + t]; }));
    const form = h('form', { class: 'filters card', id: 'filters', 'aria-label': 'Filter packages' },
      select('f-distro', 'Distro', p.distro, [['', 'all distros']].concat(distros)),
      select('f-verdict', 'Verdict', p.verdict, verdicts),
      h('div', { class: 'field grow' },
        h('label', { for: 'f-q' }, 'Name, version or sha256'),
        h('input', { id: 'f-q', name: 'q', type: 'search', value: p.q || p.name || '', autocomplete: 'off', spellcheck: 'false' })),
      h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Apply')));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      const q = form.querySelector('#f-q').value.trim();
      const hash = core.parseHashQuery(q);
      if (hash) { location.hash = '#/artifact/' + hash; return; }
      location.hash = core.buildRoute('packages', null, {
        distro: form.querySelector('#f-distro').value, verdict: form.querySelector('#f-verdict').value, q: q, limit: p.limit,
      });
    });
    for (const s of form.querySelectorAll('select')) {
      s.addEventListener('change', function () { form.requestSubmit(); });
    }
    main.appendChild(form);

    const query = new URLSearchParams();
    if (p.distro) query.set('distro', p.distro);
    if (p.verdict) query.set('verdict', p.verdict);
    if (p.name) query.set('name', p.name);
    if (p.q) query.set('q', p.q);
    if (p.cursor) query.set('cursor', p.cursor);
    const lim = Number(p.limit);
    query.set('limit', String(lim >= 1 && lim <= 1000 ? Math.floor(lim) : PAGE));
    const res = await getJson('artifacts?' + query.toString());
    const items = res.items || [];
    const key = filterKey(p);
    let trail = cursorTrail.get(key) || [];
    const cur = p.cursor || '';
    const pos = trail.indexOf(cur);
    if (pos >= 0) trail = trail.slice(0, pos + 1); else if (!cur) trail = ['']; else trail.push(cur);
    cursorTrail.set(key, trail);

    const results = h('section', { class: 'card', 'aria-labelledby': 'res-title' },
      h('h2', { id: 'res-title' }, items.length ? 'Artifacts' : 'No artifacts match'),
      items.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'list', id: 'artifact-list' },
        h('thead', null, h('tr', null, ['Package', 'Version', 'Distro', 'Arch', 'Files', 'Module root', 'sha256'].map(function (t) {
          return h('th', { scope: 'col' }, t);
        }))),
        h('tbody', null, items.map(row)))) : null);
    const nav = h('nav', { class: 'pager', 'aria-label': 'Pages' });
    const base = { distro: p.distro, verdict: p.verdict, q: p.q, name: p.name, limit: p.limit };
    if (cur) {
      nav.appendChild(h('a', { href: core.buildRoute('packages', null, base), class: 'button' }, 'First page'));
      const prev = trail.length >= 2 ? trail[trail.length - 2] : '';
      nav.appendChild(h('a', { href: core.buildRoute('packages', null, Object.assign({}, base, { cursor: prev })), class: 'button', rel: 'prev' }, 'Previous page'));
    }
    if (res.next) {
      nav.appendChild(h('a', { href: core.buildRoute('packages', null, Object.assign({}, base, { cursor: res.next })), class: 'button', rel: 'next', id: 'next-page' }, 'Next page'));
    }
    nav.appendChild(h('span', { class: 'muted' }, 'Page ' + trail.length + ', ' + items.length + ' shown'));
    results.appendChild(nav);
    main.appendChild(results);
    ctx.busy = items.some(function (a) { return !a.verdicts; });
  }

  KMR.views = KMR.views || {};
  KMR.views.packages = { title: 'Packages', render: render };
})(window);
