// kmr web UI: queue and workers pages. Admin details (worker addresses, lease
// tokens, requeue) need the admin token, typed into the page and kept in
// sessionStorage for this tab only.
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};
  const { h, getJson, adminToken, setAdminToken, fmtTime, ago, errorBox } = KMR.dom;

  function tokenForm(onChange) {
    const has = !!adminToken();
    const form = h('form', { class: 'card token', id: 'admin-form', 'aria-label': 'Admin token' });
    if (has) {
      form.appendChild(h('p', null, 'Admin token set for this tab. ',
        h('button', { type: 'button', id: 'admin-forget' }, 'Forget token')));
      form.querySelector('#admin-forget').addEventListener('click', function () { setAdminToken(''); onChange(); });
    } else {
      form.appendChild(h('div', { class: 'field grow' },
        h('label', { for: 'admin-token' }, 'Admin token (shows worker addresses and admin actions; kept in this tab only)'),
        h('input', { id: 'admin-token', type: 'password', autocomplete: 'off' })));
      form.appendChild(h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Use token')));
      const msg = h('p', { class: 'muted', role: 'status', id: 'admin-message' });
      form.appendChild(msg);
      form.addEventListener('submit', async function (ev) {
        ev.preventDefault();
        const t = form.querySelector('#admin-token').value.trim();
        if (!t) return;
        try {
          await checkToken(t);
        } catch (e) {
          msg.textContent = e.message;
          msg.className = 'error';
          return;
        }
        setAdminToken(t);
        onChange();
      });
    }
    return form;
  }

  // POST /api/v1/admin/requeue with exactly one of {job}, {sha256}, {failed: true}.
  function requeue(body) {
    return getJson('admin/requeue', {
      method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' },
    });
  }

  // kmrd answers /workers with public fields only when the token is wrong, and
  // admin endpoints with 401: check the token once, when it is entered.
  async function checkToken(token) {
    const res = await fetch(KMR.dom.apiUrl('admin/requeue'), {
      method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' }, body: '{}',
    });
    if (res.status === 401 || res.status === 403) {
      let msg = res.status + '';
      try { const b = await res.json(); msg = (b.error && b.error.message) || b.message || msg; } catch (e) { /* keep status */ }
      throw new Error('Token refused: ' + msg);
    }
  }

  function table(cols, rows) {
    return h('div', { class: 'table-wrap' }, h('table', { class: 'list' },
      h('thead', null, h('tr', null, cols.map(function (c) { return h('th', { scope: 'col' }, c); }))),
      h('tbody', null, rows)));
  }

  function listOf(res, key) {
    if (Array.isArray(res)) return res;
    return (res && (res[key] || res.items)) || [];
  }

  async function adminCheck(main, err) {
    if (err && (err.status === 401 || err.status === 403) && adminToken()) {
      main.appendChild(errorBox('The admin token was refused (' + err.status + '). Showing public details only.'));
      setAdminToken('');
      return true;
    }
    return false;
  }

  async function fetchMaybeAdmin(path, main) {
    try {
      return await getJson(path);
    } catch (e) {
      if (await adminCheck(main, e)) return getJson(path, { admin: false });
      throw e;
    }
  }

  async function renderQueue(main, ctx) {
    main.appendChild(h('h1', null, 'Queue'));
    main.appendChild(tokenForm(ctx.rerender));
    const res = await fetchMaybeAdmin('queue', main);
    const jobs = listOf(res, 'jobs');
    const admin = !!adminToken();
    const counts = {};
    for (const j of jobs) counts[j.state || '?'] = (counts[j.state || '?'] || 0) + 1;
    if (res && res.counts) Object.assign(counts, res.counts);
    if (res && res.queued != null) counts.queued = res.queued;
    if (res && res.running != null) counts.running = res.running;
    for (const k of Object.keys(counts)) if (!counts[k]) delete counts[k];
    if (admin) {
      const all = h('button', { type: 'button', id: 'requeue-failed' }, 'Requeue every not-reproducible and failed artifact');
      const note = h('span', { class: 'muted', role: 'status' });
      all.addEventListener('click', async function () {
        all.disabled = true;
        try {
          const r = await requeue({ failed: true });
          note.textContent = ' Requeued ' + (r && r.requeued != null ? r.requeued : '?') + ' job(s).';
        } catch (e) { note.textContent = ' ' + e.message; }
        all.disabled = false;
      });
      main.appendChild(h('p', null, all, note));
    }
    main.appendChild(h('p', { id: 'queue-counts' }, Object.keys(counts).length ?
      Object.keys(counts).map(function (k) { return counts[k] + ' ' + k; }).join(', ') : 'The queue is empty.'));
    const rows = jobs.map(function (j) {
      const art = j.artifacts || (j.sha256 ? [j.sha256] : []);
      const actions = h('td', null);
      if (admin && j.id != null) {
        const b = h('button', { type: 'button' }, 'Requeue');
        b.addEventListener('click', async function () {
          b.disabled = true;
          try {
            await requeue({ job: j.id });
            ctx.rerender();
          } catch (e) { actions.appendChild(errorBox(e)); b.disabled = false; }
        });
        actions.appendChild(b);
      }
      return h('tr', { 'data-state': j.state || '' },
        h('td', null, '#' + (j.id != null ? j.id : '')),
        h('td', null, String(j.distro || '')),
        h('td', null, String(j.name || (typeof j.package === 'string' ? j.package : (j.package && j.package.name)) || j.set || j.set_key || '')),
        h('td', null, art.map(function (s) {
          const hex = typeof s === 'string' ? s : s.sha256;
          return hex ? h('a', { href: '#/artifact/' + hex }, h('code', null, hex.slice(0, 12) + '\u2026 ')) : null;
        })),
        h('td', null, String(j.state || '')),
        h('td', { class: 'num' }, String((j.build_attempts || 0) + (j.repro_attempts || 0) + (j.attempts || 0))),
        h('td', null, String(j.worker || j.lease_owner || '')),
        h('td', null, j.lease_expiry ? ago(j.lease_expiry) : ''),
        h('td', null, j.next_try ? fmtTime(j.next_try) : ''),
        admin ? actions : null);
    });
    main.appendChild(h('section', { class: 'card' }, jobs.length ? table(
      ['Job', 'Distro', 'Build input', 'Artifacts', 'State', 'Attempts', 'Worker', 'Lease expires', 'Next try'].concat(admin ? ['Admin'] : []),
      rows) : h('p', null, 'No jobs.')));
    ctx.busy = jobs.some(function (j) { return j.state === 'running' || j.state === 'queued'; });
  }

  async function renderWorkers(main, ctx) {
    main.appendChild(h('h1', null, 'Workers'));
    main.appendChild(tokenForm(ctx.rerender));
    const res = await fetchMaybeAdmin('workers', main);
    const ws = listOf(res, 'workers');
    const admin = ws.length ? ws.some(function (w) { return 'public_key' in w || 'address' in w; }) : !!adminToken();
    const rows = ws.map(function (w) {
      let classes = w.resource_classes;
      if (typeof classes === 'string') { try { classes = JSON.parse(classes); } catch (e) { /* keep */ } }
      return h('tr', { 'data-worker': w.name || '' },
        h('td', null, String(w.name || w.id || '')),
        h('td', null, w.online === false || w.disabled ? 'offline' : (w.online ? 'online' : (w.status || ''))),
        h('td', null, w.last_seen ? ago(w.last_seen) : 'never'),
        h('td', null, Array.isArray(classes) ? classes.join(', ') : String(classes || '')),
        h('td', null, w.current_job != null ? '#' + w.current_job : (w.job != null ? '#' + w.job : '')),
        admin ? h('td', null, String(w.address || '')) : null,
        admin ? h('td', null, w.public_key ? h('code', null, String(w.public_key).slice(0, 16) + '\u2026') : '') : null);
    });
    main.appendChild(h('section', { class: 'card' }, ws.length ? table(
      ['Name', 'State', 'Last seen', 'Resource classes', 'Job'].concat(admin ? ['Address', 'Public key'] : []), rows)
      : h('p', null, 'No workers registered.')));
    ctx.busy = true;
  }

  KMR.admin = { requeue: requeue };
  KMR.views = KMR.views || {};
  KMR.views.queue = { title: 'Queue', render: renderQueue };
  KMR.views.workers = { title: 'Workers', render: renderWorkers };
})(window);
