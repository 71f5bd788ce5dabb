// kmr web UI: hash router, header search, auto-refresh while jobs run.
(function (root) {
  'use strict';
  const KMR = root.KMR;
  const { h, clear, errorBox } = KMR.dom;
  const core = KMR.core;
  const REFRESH_BUSY_MS = 4000;
  let generation = 0;
  let timer = null;

  function setStatus(text) {
    const s = document.getElementById('status');
    if (s) s.textContent = text || '';
  }

  function markNav(view) {
    for (const a of document.querySelectorAll('nav a[data-view]')) {
      if (a.getAttribute('data-view') === view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  function userIsEditing(main) {
    const el = document.activeElement;
    return el && main.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }

  async function show(opts) {
    const refresh = !!(opts && opts.refresh);
    const gen = ++generation;
    if (timer) { clearTimeout(timer); timer = null; }
    const route = core.parseRoute(location.hash);
    const view = KMR.views[route.view];
    const main = document.getElementById('main');
    markNav(route.view);
    const ctx = { route: route, busy: false, rerender: function () { show(); } };
    const next = h('div', { class: 'view view-' + route.view });
    if (!refresh) setStatus('Loading\u2026');
    try {
      if (!view) {
        next.appendChild(h('h1', null, 'Not found'));
        next.appendChild(h('p', null, 'No page ', h('code', null, location.hash), '. ', h('a', { href: '#/' }, 'Go to the overview')));
      } else {
        await view.render(next, ctx);
      }
    } catch (e) {
      if (gen !== generation) return;
      if (refresh) { setStatus('Refresh failed: ' + (e.message || e)); schedule(ctx, gen); return; }
      next.appendChild(errorBox(e));
    }
    if (gen !== generation) return;
    const focusKey = focusKeyOf(main, document.activeElement);
    const scroll = window.scrollY;
    clear(main).appendChild(next);
    document.title = (view ? view.title : 'Not found') + ' \u2014 kmr';
    if (refresh) {
      window.scrollTo(0, scroll);
      if (focusKey) refocus(next, focusKey);
      setStatus(ctx.busy ? 'Jobs running; refreshed ' + new Date().toLocaleTimeString() : '');
    } else {
      setStatus(ctx.busy ? 'Jobs running; this page refreshes itself.' : '');
      if (opts && opts.focus) main.focus({ preventScroll: true });
    }
    main.setAttribute('data-ready', String(gen));
    schedule(ctx, gen);
  }

  // Keyboard focus survives an auto-refresh: the element with the same id, or
  // the same tag, href and text, gets it back.
  function focusKeyOf(main, el) {
    if (!el || el === main || !main.contains(el)) return null;
    return { id: el.id, tag: el.tagName, href: el.getAttribute('href'), text: el.textContent };
  }
  function refocus(root, k) {
    let el = k.id ? document.getElementById(k.id) : null;
    if (!el) {
      for (const c of root.querySelectorAll(k.tag)) {
        if (c.getAttribute('href') === k.href && c.textContent === k.text) { el = c; break; }
      }
    }
    if (el) el.focus({ preventScroll: true });
  }

  function schedule(ctx, gen) {
    if (!ctx.busy) return;
    timer = setTimeout(function () {
      if (gen !== generation) return;
      const main = document.getElementById('main');
      if (document.hidden || userIsEditing(main)) { schedule(ctx, gen); return; }
      show({ refresh: true });
    }, REFRESH_BUSY_MS);
  }

  function onSearch(ev) {
    ev.preventDefault();
    const input = document.getElementById('search-input');
    const q = input.value.trim();
    if (!q) return;
    const hex = core.parseHashQuery(q);
    location.hash = hex ? '#/artifact/' + hex : core.buildRoute('packages', null, { q: q });
  }

  function start() {
    document.getElementById('search-form').addEventListener('submit', onSearch);
    const skip = document.querySelector('a.skip');
    if (skip) {
      skip.addEventListener('click', function (ev) {
        ev.preventDefault();
        document.getElementById('main').focus();
      });
    }
    window.addEventListener('hashchange', function () { show({ focus: true }); });
    show();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(window);
