// kmr web UI: artifact page (verdicts explained, Merkle roots side by side,
// modules, pinned environment, history, log head/tail, diff tree,
// attestations with log inclusion and the offline verification command).
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};
  const { h, getJson, request, section, errorBox, copyButton, fmtTime, badge } = KMR.dom;
  const core = KMR.core;
  const LOG_HEAD = 64 * 1024;
  const LOG_TAIL = 64 * 1024;

  function pick(obj, paths) {
    for (const p of paths) {
      let v = obj;
      for (const k of p.split('.')) { v = v == null ? undefined : v[k]; }
      if (v != null && v !== '') return v;
    }
    return null;
  }

  function verdictBlock(kind, title, verdict, reason) {
    return h('div', { class: 'verdict verdict-' + core.verdictClass(kind, verdict), 'data-kind': kind },
      h('h3', null, title, ' ', badge(kind, verdict)),
      h('p', null, core.explain(kind, verdict)),
      reason ? h('p', { class: 'reason' }, h('strong', null, 'Reason: '), String(reason)) : null);
  }

  function rootColumn(title, side, other, levels, cls) {
    const hex = h('code', { class: 'roothex' });
    if (side) {
      for (const r of core.hexRuns(side, other || '')) {
        hex.appendChild(h('span', { class: r.same && other ? 'same' : (other ? 'differs' : '') }, r.a));
      }
    } else hex.appendChild(document.createTextNode('(none)'));
    return h('div', { class: 'rootcol ' + cls },
      h('h3', null, title),
      hex,
      h('p', { class: 'muted' }, levels != null ? 'levels: ' + levels : ''));
  }

  function merkleSection(a, rb) {
    const shipped = pick(a, ['merkle.shipped.root', 'shipped_root', 'roots.shipped']) || pick(rb || {}, ['shipped_root']);
    const rebuilt = pick(a, ['merkle.rebuilt.root', 'rebuilt_root', 'roots.rebuilt']) || pick(rb || {}, ['rebuilt_root']);
    const sl = pick(a, ['merkle.shipped.levels', 'shipped_levels', 'merkle.levels']);
    const rl = pick(a, ['merkle.rebuilt.levels', 'rebuilt_levels', 'merkle.levels']);
    const s = section('Module Merkle root', 'merkle');
    const equal = shipped && rebuilt && shipped.toLowerCase() === rebuilt.toLowerCase();
    s.appendChild(h('p', { class: equal ? 'ok' : (shipped && rebuilt ? 'bad' : 'muted'), id: 'root-compare' },
      equal ? 'The roots are equal.' : (shipped && rebuilt ? 'The roots differ; differing hex digits are marked.' :
        'Only one root is known (see the module_root verdict).')));
    s.appendChild(h('div', { class: 'roots' + (equal ? ' equal' : '') },
      rootColumn('Shipped (embedded in vmlinux)', shipped, rebuilt, sl, 'shipped'),
      rootColumn('Rebuilt (from rebuilt modules)', rebuilt, shipped, rl, 'rebuilt')));
    // kmrd: modules {verified: n, invalid: [names], note}; older shapes {count, failed}
    const failed = pick(a, ['modules.failed', 'modules.invalid', 'failed_modules']) || [];
    let count = pick(a, ['modules.count', 'module_count']);
    const verified = pick(a, ['modules.verified']);
    if (count == null && verified != null) count = Number(verified) + failed.length;
    const note = pick(a, ['modules.note']);
    if (count != null || failed.length) {
      s.appendChild(h('p', { id: 'module-count' }, count != null ? String(count) + ' modules' + (verified != null ? ', ' + verified + ' verified against the shipped root. ' : '. ') : '',
        failed.length ? failed.length + ' module proof(s) failed:' : 'No module proof failed.', note ? ' ' + note : ''));
      if (failed.length) {
        s.appendChild(h('ul', { class: 'failed-modules' }, failed.slice(0, 500).map(function (m) {
          return h('li', null, h('code', null, typeof m === 'string' ? m : (m.name || JSON.stringify(m))),
            typeof m === 'object' && m.reason ? ' \u2014 ' + m.reason : '');
        })));
      }
    }
    return s;
  }

  // The root over the modules without signatures (kmr's content root), shipped
  // against rebuilt, next to the embedded root above; then the shipped module
  // signatures as the rebuild checked them.
  function contentRootSection(a) {
    const cr = a.content_root || {};
    const verdict = cr.verdict || pick(a, ['verdicts.module_content_root']);
    const shipped = cr.shipped || null;
    const rebuilt = cr.rebuilt || null;
    const s = section('Module content root (signatures removed)', 'content-root');
    const equal = shipped && rebuilt && shipped.toLowerCase() === rebuilt.toLowerCase();
    s.appendChild(h('p', { id: 'content-root-verdict' }, 'Verdict: ', KMR.dom.badge('module_content_root', verdict), ' ',
      core.explain('module_content_root', verdict || 'none')));
    s.appendChild(h('div', { class: 'roots' + (equal ? ' equal' : ''), id: 'content-roots' },
      rootColumn('Shipped (shipped modules, signatures removed)', shipped, rebuilt, cr.levels, 'shipped'),
      rootColumn('Rebuilt (rebuilt modules)', rebuilt, shipped, cr.levels, 'rebuilt')));
    if (cr.note) s.appendChild(h('p', { class: 'muted', id: 'content-root-note' }, String(cr.note)));
    const sig = a.signatures;
    const sum = core.signatureSummary(sig);
    const box = h('div', { id: 'signatures' }, h('h3', null, 'Shipped module signatures'),
      h('p', { class: sum.cls, id: 'signature-summary' }, sum.text));
    const failed = sig && Array.isArray(sig.failed) ? sig.failed : [];
    if (failed.length) {
      box.appendChild(h('ul', { class: 'failed-modules', id: 'signature-failures' }, failed.slice(0, 500).map(function (m) {
        return h('li', null, h('code', null, String(m.module || m)), m.reason ? ' \u2014 ' + m.reason : '');
      })));
      const notVerified = (Number(sig.signed) || 0) - (Number(sig.verified) || 0);
      if (notVerified > failed.length) {
        box.appendChild(h('p', { class: 'muted' }, 'The rebuild reports the first ' + failed.length + ' of ' + notVerified + '.'));
      }
    }
    s.appendChild(box);
    return s;
  }

  function kvTable(obj) {
    const rows = [];
    (function walk(o, prefix) {
      for (const k of Object.keys(o)) {
        const v = o[k];
        const key = prefix ? prefix + '.' + k : k;
        if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, key);
        else rows.push([key, Array.isArray(v) ? v.join(', ') : String(v)]);
      }
    })(obj, '');
    return h('table', { class: 'kv' }, h('tbody', null, rows.map(function (r) {
      return h('tr', null, h('th', { scope: 'row' }, r[0]), h('td', null, h('code', null, r[1])));
    })));
  }

  function historySection(a) {
    const hist = a.history || [];
    const s = section('Rebuild history', 'history');
    if (!hist.length) { s.appendChild(h('p', { class: 'muted' }, 'No rebuild finished yet.')); return s; }
    s.appendChild(h('div', { class: 'table-wrap' }, h('table', { class: 'list' },
      h('thead', null, h('tr', null, ['Rebuild', 'Finished', 'Worker', 'Status', 'Files', 'Module root', 'Duration'].map(function (t) {
        return h('th', { scope: 'col' }, t);
      }))),
      h('tbody', null, hist.map(function (r) {
        const v = r.verdicts || { files: core.filesVerdict(r), module_root: r.module_root };
        const dur = r.duration_ms != null ? (r.duration_ms / 1000).toFixed(1) + ' s' : '';
        const id = r.build != null ? r.build : (r.id != null ? r.id : '');
        return h('tr', null,
          h('td', null, r.url || r.build ? h('a', { href: r.url || r.build }, '#' + id) : '#' + id),
          h('td', null, fmtTime(r.finished_at || r.finished || r.time)),
          h('td', null, String(r.worker || r.worker_name || '')),
          h('td', null, String(r.status || '')),
          h('td', null, badge('files', v.files)),
          h('td', null, badge('module_root', v.module_root)),
          h('td', { class: 'num' }, dur));
      })))));
    return s;
  }

  async function loadLog(url, box) {
    const pre = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'build log' });
    const info = h('p', { class: 'muted' });
    box.appendChild(info);
    box.appendChild(pre);
    const res = await request(url, { headers: { Range: 'bytes=0-' + (LOG_HEAD - 1), Accept: 'text/plain' }, admin: false });
    if (!res.ok && res.status !== 206) throw new Error('log: ' + res.status + ' ' + res.statusText);
    const head = await res.text();
    const cr = core.parseContentRange(res.headers.get('Content-Range'));
    if (res.status === 206 && cr && cr.total != null && cr.total > LOG_HEAD) {
      const tailStart = Math.max(LOG_HEAD, cr.total - LOG_TAIL);
      const r2 = await request(url, { headers: { Range: 'bytes=' + tailStart + '-', Accept: 'text/plain' }, admin: false });
      const tail = await r2.text();
      info.textContent = 'Log is ' + core.formatBytes(cr.total) + '; showing the first ' + core.formatBytes(LOG_HEAD) +
        ' and the last ' + core.formatBytes(cr.total - tailStart) + '.';
      pre.appendChild(h('span', null, head));
      if (tailStart > LOG_HEAD) pre.appendChild(h('span', { class: 'l-note' }, '\n[ \u2026 ' + core.formatBytes(tailStart - LOG_HEAD) + ' omitted \u2026 ]\n'));
      pre.appendChild(h('span', null, r2.status === 206 ? tail : tail.slice(tailStart)));
    } else {
      const ht = core.headTail(head, LOG_HEAD, LOG_TAIL);
      info.textContent = 'Log is ' + core.formatBytes(head.length) + (ht.omitted ? '; showing head and tail.' : '.');
      pre.appendChild(h('span', null, ht.head));
      if (ht.omitted) {
        pre.appendChild(h('span', { class: 'l-note' }, '\n[ \u2026 ' + core.formatBytes(ht.omitted) + ' omitted \u2026 ]\n'));
        pre.appendChild(h('span', null, ht.tail));
      }
    }
    box.appendChild(h('p', null, h('a', { href: url, download: true }, 'Download the full log')));
  }

  async function loadDiff(url, box) {
    const tree = await getJson(url, { admin: false });
    box.appendChild(KMR.difftree.render(tree));
  }

  function attestationItem(att, a) {
    const url = typeof att === 'string' ? att : (att.url || att.href);
    const li = h('li', { class: 'attestation' });
    const name = (a.sha256 || 'artifact').slice(0, 16) + '.intoto.json';
    li.appendChild(h('a', { href: url, download: name, class: 'button', id: 'attestation-download' }, 'Download DSSE envelope'));
    if (typeof att === 'object') {
      const bits = [];
      if (att.keyid) bits.push(h('span', null, 'key ', h('code', null, String(att.keyid).slice(0, 16) + '\u2026')));
      if (att.verification_result || att.result) bits.push(h('span', null, ' result ', String(att.verification_result || att.result)));
      li.appendChild(h('span', { class: 'muted' }, ' ', bits));
    }
    const logIndex = typeof att === 'object' ? pick(att, ['log_index', 'log.index', 'index']) : null;
    const inc = h('div', { class: 'inclusion' });
    li.appendChild(inc);
    if (logIndex != null) {
      inc.appendChild(h('p', null, 'Transparency log entry ', h('strong', null, '#' + logIndex), ' ', h('a', { href: KMR.dom.apiUrl('log/entries/' + logIndex) }, 'entry')));
      loadInclusion(logIndex, url, inc).catch(function (e) { inc.appendChild(h('p', { class: 'muted' }, 'Inclusion proof unavailable: ' + e.message)); });
    } else {
      inc.appendChild(h('p', { class: 'muted' }, 'Not in the transparency log yet.'));
    }
    return li;
  }

  async function subtleSha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  // Fetches the checkpoint and the inclusion proof, and checks the proof in
  // the browser (RFC 9162) for the envelope's bytes as the log entry.
  async function loadInclusion(index, envelopeUrl, box) {
    const res = await request('log/checkpoint', { headers: { Accept: 'text/plain' }, admin: false });
    if (!res.ok) throw new Error('checkpoint ' + res.status);
    const text = await res.text();
    const cp = core.parseCheckpoint(text);
    if (!cp) throw new Error('the checkpoint is not a tlog-checkpoint note');
    if (!(cp.size > index)) {
      box.appendChild(h('p', { class: 'muted' }, 'The current checkpoint (size ' + cp.size + ') does not cover this entry yet.'));
      return;
    }
    const proof = await getJson('log/proof/inclusion?index=' + index + '&size=' + cp.size, { admin: false });
    const raw = Array.isArray(proof) ? proof : (proof.hashes || proof.proof || proof.inclusion || proof.inclusion_proof || []);
    const status = h('p', { id: 'inclusion-status' });
    box.appendChild(status);
    status.appendChild(document.createTextNode('Log ' + cp.origin + ', checkpoint size ' + cp.size + ', root '));
    status.appendChild(h('code', { class: 'wrap' }, cp.rootText));
    status.appendChild(document.createTextNode(', inclusion proof of ' + raw.length + ' hash' + (raw.length === 1 ? '' : 'es') + '. '));
    const verdict = h('strong', { id: 'inclusion-verdict' });
    status.appendChild(verdict);
    if (!(root.crypto && root.crypto.subtle)) {
      verdict.textContent = 'Not checked here (the browser offers SHA-256 only on https or localhost); kmr query checks it offline.';
      verdict.className = 'muted';
    } else {
      let ok = false;
      try {
        const envRes = await request(envelopeUrl, { admin: false });
        const envBytes = new Uint8Array(await envRes.arrayBuffer());
        const hashes = raw.map(core.bytesFromHexOrBase64);
        const leaf = await core.leafHash(subtleSha256, envBytes);
        ok = await core.verifyInclusion(subtleSha256, leaf, index, cp.size, hashes, cp.root);
      } catch (e) { ok = false; }
      verdict.textContent = ok ? 'Inclusion verified in this browser.' : 'The proof does not link this envelope to the checkpoint root.';
      verdict.className = ok ? 'ok' : 'bad';
    }
    box.appendChild(h('details', null, h('summary', null, 'Signed checkpoint (its signature is checked by kmr query)'), h('pre', { class: 'small' }, text)));
  }

  // Offers the rebuilder's current public key as rebuilder.pem (a Blob URL,
  // allowed under default-src 'self' for downloads).
  async function loadKeys(box) {
    const ks = await getJson('keys', { admin: false });
    const keys = (ks && ks.keys) || [];
    const cur = keys.filter(function (k) { return k.current; })[0] || keys[0];
    if (!cur || !cur.public_key_pem) return;
    const url = URL.createObjectURL(new Blob([cur.public_key_pem], { type: 'application/x-pem-file' }));
    box.appendChild(document.createTextNode(' '));
    box.appendChild(h('a', { href: url, download: 'rebuilder.pem', id: 'key-download' }, 'download rebuilder.pem'));
    box.appendChild(h('span', { class: 'muted' }, ' (key id ', h('code', null, String(cur.keyid || '').slice(0, 16) + '\u2026'),
      keys.length > 1 ? ', ' + keys.length + ' keys published' : '', ')'));
  }

  async function render(main, ctx) {
    const hex = core.parseHashQuery(ctx.route.arg || '');
    if (!hex) {
      main.appendChild(h('h1', null, 'Artifact'));
      main.appendChild(errorBox('Not a sha256: ' + (ctx.route.arg || '(empty)')));
      return;
    }
    let a;
    try {
      a = await getJson('artifacts/sha256/' + hex);
    } catch (e) {
      main.appendChild(h('h1', null, 'Artifact ', h('code', { class: 'wrap' }, hex)));
      if (e.status === 404) {
        main.appendChild(h('div', { class: 'card' }, h('p', { id: 'not-found' }, 'This rebuilder does not know a package file with sha256 ', h('code', { class: 'wrap' }, hex), '.'),
          h('p', null, 'It tracks the kernel packages of its configured repositories only.')));
        return;
      }
      throw e;
    }
    const pkg = a.package || {};
    const v = Object.assign({}, a.verdicts || {});
    v.files = core.filesVerdict(a.verdicts);
    const latest = (a.history || [])[0] || null;
    main.appendChild(h('h1', { id: 'artifact-title' }, (pkg.name || a.filename || 'artifact') + ' ', h('span', { class: 'ver' }, pkg.version || ''),
      ' ', KMR.dom.unsignedBadge(a)));
    main.appendChild(h('dl', { class: 'kv-inline card' },
      h('div', null, h('dt', null, 'Distro'), h('dd', null, h('a', { href: core.buildRoute('packages', null, { distro: a.distro }) }, a.distro || ''))),
      pkg.arch ? h('div', null, h('dt', null, 'Architecture'), h('dd', null, pkg.arch)) : null,
      a.filename ? h('div', null, h('dt', null, 'File'), h('dd', null, a.url ? h('a', { href: a.url }, a.filename) : a.filename)) : null,
      a.size != null ? h('div', null, h('dt', null, 'Size'), h('dd', null, core.formatBytes(a.size))) : null,
      h('div', { class: 'wide' }, h('dt', null, 'sha256'), h('dd', null, h('code', { class: 'wrap', id: 'artifact-sha256' }, a.sha256 || hex), ' ', copyButton(a.sha256 || hex, 'Copy sha256')))));

    const vs = section('Verdicts', 'verdicts');
    const reason = pick(a, ['reason', 'verdicts.reason']) || (latest && latest.reason);
    const contentVerdict = pick(a, ['content_root.verdict', 'verdicts.module_content_root']);
    vs.appendChild(h('div', { class: 'two' },
      verdictBlock('module_root', 'Module Merkle root', v.module_root, null),
      a.verdicts ? verdictBlock('module_content_root', 'Module content root', contentVerdict || 'none', null) : null,
      verdictBlock('files', 'Files', v.files, reason)));
    if (v.downgraded) {
      vs.appendChild(h('p', { class: 'reason', id: 'verdict-downgraded' },
        h('strong', null, 'kmrd stored a weaker verdict than the worker reported: '), String(v.downgraded)));
    }
    main.appendChild(vs);

    main.appendChild(merkleSection(a, latest));
    if (a.verdicts) main.appendChild(contentRootSection(a));

    const env = pick(a, ['environment', 'build_environment', 'env']) || (latest && latest.environment);
    const envSec = section('Pinned build environment', 'environment');
    if (env && typeof env === 'object') envSec.appendChild(kvTable(env));
    else envSec.appendChild(h('p', { class: 'muted' }, env ? String(env) : 'Not recorded yet.'));
    main.appendChild(envSec);

    main.appendChild(historySection(a));

    const logUrl = pick(a, ['log', 'log_url', 'links.log']);
    const logSec = section('Build log', 'log');
    main.appendChild(logSec);
    if (logUrl) loadLog(logUrl, logSec).catch(function (e) { logSec.appendChild(errorBox(e)); });
    else logSec.appendChild(h('p', { class: 'muted' }, 'No log yet.'));

    const diffUrl = pick(a, ['diff', 'diff_url', 'links.diff']);
    const diffSec = section('Differences', 'diff');
    main.appendChild(diffSec);
    if (diffUrl) {
      const htmlUrl = pick(a, ['diff_html', 'links.diff_html']);
      if (htmlUrl) diffSec.appendChild(h('p', null, h('a', { href: htmlUrl }, 'HTML report')));
      loadDiff(diffUrl, diffSec).catch(function (e) { diffSec.appendChild(errorBox(e)); });
    } else {
      const differing = (a.verdicts && Array.isArray(a.verdicts.differing)) ? a.verdicts.differing : [];
      if (differing.length) {
        // no report stored: the rebuild's list of differing members ("file:member")
        diffSec.appendChild(h('div', { class: 'diff-summary', id: 'diff-summary' },
          h('h3', null, differing.length + ' differing member' + (differing.length === 1 ? '' : 's')),
          h('p', { class: 'muted' }, 'No diff report was stored for this rebuild; the rebuild named these members:'),
          h('ol', { class: 'members', id: 'differing-list' }, differing.slice(0, 2000).map(function (m) {
            return h('li', null, h('code', null, String(m)));
          }))));
      } else {
        diffSec.appendChild(h('p', { class: 'muted' }, v.files && core.GOOD_FILES.has(v.files) ? 'No diff: the files reproduce.' : 'No diff report.'));
      }
    }

    const attSec = section('Attestations', 'attestations');
    const atts = (a.attestation_details && a.attestation_details.length) ? a.attestation_details : (a.attestations || []);
    if (atts.length) attSec.appendChild(h('ul', { class: 'atts' }, atts.map(function (x) { return attestationItem(x, a); })));
    else attSec.appendChild(h('p', { class: 'muted' }, 'No attestation yet.'));
    const cmd = core.queryCommand(location.origin, a.sha256 || hex, 'rebuilder.pem');
    const keyBox = h('p', { id: 'rebuilder-keys' }, 'Verify offline with this rebuilder\u2019s public key (',
      h('a', { href: KMR.dom.apiUrl('keys') }, 'GET /api/v1/keys'), ', saved as rebuilder.pem):');
    attSec.appendChild(keyBox);
    loadKeys(keyBox).catch(function () { /* the JSON link above stays */ });
    attSec.appendChild(h('div', { class: 'cmd' }, h('code', { id: 'query-command' }, cmd), ' ', copyButton(cmd, 'Copy command')));
    main.appendChild(attSec);

    if (KMR.dom.adminToken() && KMR.admin) {
      const rq = h('button', { type: 'button', id: 'requeue-artifact' }, 'Rebuild again (admin)');
      const note = h('span', { class: 'muted', role: 'status' });
      rq.addEventListener('click', async function () {
        rq.disabled = true;
        try {
          await KMR.admin.requeue({ sha256: a.sha256 || hex });
          note.textContent = ' Requeued.';
          ctx.rerender();
        } catch (e) { note.textContent = ' ' + e.message; rq.disabled = false; }
      });
      vs.appendChild(h('p', null, rq, note));
    }
    const js = a.job && a.job.state;
    ctx.busy = !a.verdicts || js === 'queued' || js === 'running';
    if (js === 'queued' || js === 'running') {
      vs.appendChild(h('p', { class: 'muted', id: 'job-state' }, 'A rebuild is ' + js + ' (job #' + a.job.id + '); this page refreshes itself.'));
    }
  }

  KMR.views = KMR.views || {};
  KMR.views.artifact = { title: 'Artifact', render: render };
})(window);
