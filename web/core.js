// kmr web UI: pure helpers shared by the views (no DOM access here, so the
// Node unit test in core_test.js can load this file as is).
(function (root) {
  'use strict';

  // The vocabulary and the one reproducibility rule are kmrd's
  // (/ui/verdicts.js, generated from rebuilder/verdict, loaded by rule.mjs).
  const VERDICTS = root.KMR && root.KMR.verdicts;
  if (!VERDICTS || typeof VERDICTS.isReproducible !== 'function') {
    throw new Error('the verdict rule (/ui/verdicts.js) is not loaded');
  }
  const FILES_TIERS = VERDICTS.FILES_TIERS;
  const MODULE_ROOT = VERDICTS.MODULE_ROOTS;
  const CONTENT_ROOT = VERDICTS.CONTENT_ROOTS;
  const GOOD_FILES = new Set(VERDICTS.GOOD_FILES_TIERS);

  const EXPLAIN = {
    files: {
      'identical': 'The rebuilt package file is bit-for-bit identical to the one the distro shipped.',
      'content-identical': 'The package container differs (compression or archive metadata), but every file inside it is identical.',
      'identical-modulo-signatures': 'Identical once the appended module signatures and Authenticode signatures are removed. Expected for signed kernels: the signing key stays with the distro, so a rebuilder cannot reproduce the signatures themselves.',
      'different': 'The rebuilt files differ from the shipped ones. The diff report below names every differing member.',
      'build-failed': 'The rebuild did not complete, so nothing could be compared. The build log shows why.',
      'environment-unavailable': 'The pinned build environment (toolchain and dependencies the distro used) could not be obtained, so no rebuild was attempted.',
      'error': 'kmr hit an error while verifying this package. The reason and the log show what went wrong.',
    },
    module_root: {
      'match': 'The Merkle root computed over the rebuilt kernel modules equals the root embedded in the shipped kernel: every module the kernel accepts is one the published sources build.',
      'mismatch': 'The rebuilt modules give a different Merkle root than the one embedded in the shipped kernel: the shipped kernel trusts at least one module that the published sources do not build.',
      'absent': 'The shipped kernel was built without module hashes (no embedded Merkle root), so this check does not apply.',
      'invalid': 'The shipped modules do not verify against the root embedded in the shipped kernel: the package is inconsistent with itself.',
      'none': 'No module root verdict: the rebuild stopped before the modules could be compared.',
    },
    module_content_root: {
      'match': 'The Merkle root over the shipped modules, each decompressed and with its signature removed, equals the root over the rebuilt modules: apart from their signatures, the shipped modules are exactly the ones the published sources build. It is the root CONFIG_MODULE_HASHES would embed for this build.',
      'mismatch': 'The shipped modules, with their signatures removed, give a different Merkle root than the rebuilt modules: at least one shipped module differs from what the published sources build. No files tier counts as reproduced then.',
      'absent': 'Neither the shipped nor the rebuilt package has kernel modules, so this check does not apply.',
      'none': 'Not compared: the rebuild stopped before the modules could be compared, or was made before kmr compared content roots.',
    },
  };
  const PENDING_TEXT = 'Not verified yet: the rebuild is queued or running.';

  function isSha256(s) {
    return typeof s === 'string' && /^[0-9a-fA-F]{64}$/.test(s);
  }

  // Accepts "HEX", "sha256:HEX" or "sha256-HEX" (surrounding blanks allowed);
  // returns the lowercase hex or null.
  function parseHashQuery(q) {
    if (typeof q !== 'string') return null;
    let s = q.trim();
    const m = /^sha256[:\-](.*)$/i.exec(s);
    if (m) s = m[1];
    return isSha256(s) ? s.toLowerCase() : null;
  }

  function explain(kind, verdict) {
    if (!verdict) return PENDING_TEXT;
    const t = EXPLAIN[kind] && EXPLAIN[kind][verdict];
    return t || ('Verdict "' + verdict + '".');
  }

  // Coarse class for colouring: good | warn | bad | na | pending.
  function verdictClass(kind, verdict) {
    if (!verdict || verdict === 'pending' || verdict === 'queued' || verdict === 'running') return 'pending';
    if (kind === 'files') {
      if (verdict === 'identical' || verdict === 'content-identical') return 'good';
      if (verdict === 'identical-modulo-signatures') return 'good';
      if (verdict === 'different') return 'bad';
      return 'warn';
    }
    if (verdict === 'match') return 'good';
    if (verdict === 'none') return 'na';
    if (verdict === 'absent') return 'na';
    return 'bad';
  }

  // The files answer to show: the tier when the rebuild was verified, else the
  // failure status (build-failed, environment-unavailable, error); null while pending.
  function filesVerdict(verdicts) {
    if (!verdicts) return null;
    if (verdicts.files) return verdicts.files;
    const st = verdicts.status;
    if (st && st !== 'verified' && st !== 'pending') return st;
    return st === 'verified' ? 'error' : null;
  }

  // kmrd's answer when it gave one, else the one rule over the verdicts.
  function isReproducible(verdicts) {
    if (!verdicts) return false;
    if (typeof verdicts.reproducible === 'boolean') return verdicts.reproducible;
    return VERDICTS.isReproducible(verdicts.files, verdicts.module_root, verdicts.module_content_root);
  }

  // One line on the shipped module signatures as kmr rebuild checked them
  // ({checked, signed, verified, ok, failed: [{module, reason}], note}):
  // {cls: ok | bad | muted, text}.
  function signatureSummary(sig) {
    if (!sig || typeof sig !== 'object') return { cls: 'muted', text: 'Not reported by this rebuild.' };
    const note = sig.note ? ' ' + sig.note + '.' : '';
    if (sig.checked === false) {
      return { cls: 'muted', text: 'Not checked: the files tier does not rest on signatures.' + note };
    }
    const signed = Number(sig.signed) || 0;
    const verified = Number(sig.verified) || 0;
    if (!signed) return { cls: sig.ok ? 'muted' : 'bad', text: (sig.note || 'No shipped module carries a PKCS#7 signature') + '.' };
    const of = verified + ' of ' + signed + ' shipped module signature' + (signed === 1 ? '' : 's');
    if (sig.ok && verified === signed) {
      return { cls: 'ok', text: of + ' verified against the certificates built into the shipped kernel.' };
    }
    return { cls: 'bad', text: of + ' verified against the certificates built into the shipped kernel; ' +
      (signed - verified) + ' did not.' };
  }

  function percent(n, total) {
    if (!total) return '0%';
    const p = (100 * n) / total;
    if (p > 0 && p < 0.1) return '<0.1%';
    return (Math.round(p * 10) / 10) + '%';
  }

  function formatBytes(n) {
    if (n == null || isNaN(n)) return '';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + u[i];
  }

  // Splits two hex strings into runs of equal / differing characters, for
  // highlighting a shipped vs rebuilt Merkle root side by side.
  function hexRuns(a, b) {
    a = a || '';
    b = b || '';
    const n = Math.max(a.length, b.length);
    const out = [];
    for (let i = 0; i < n; i++) {
      const same = a[i] === b[i];
      const last = out[out.length - 1];
      if (last && last.same === same) { last.a += a[i] || ''; last.b += b[i] || ''; } else {
        out.push({ same: same, a: a[i] || '', b: b[i] || '' });
      }
    }
    return out;
  }

  // ---- diff tree (diffoscope-style JSON plus kmr's kind/status/sha256) ----

  const SAME_STATUS = new Set(['identical', 'same', 'unchanged', 'equal']);

  function nodeDiffers(node) {
    if (!node || typeof node !== 'object') return false;
    if (typeof node.status === 'string') return !SAME_STATUS.has(node.status);
    if (node.unified_diff) return true;
    if (Array.isArray(node.details) && node.details.some(nodeDiffers)) return true;
    return Array.isArray(node.comments) && node.comments.length > 0 &&
      !(Array.isArray(node.details) && node.details.length);
  }

  // A node stands for a package member (file, archive entry) rather than a
  // view of one ("symbols", "hexdump", "readelf --wide ...", "filetype from
  // diffoscope"). kmr gives members their sha256 (views have none); plain
  // diffoscope JSON has no kinds, so views are told by their command-like names.
  const MEMBER_KINDS = new Set(['file', 'directory', 'symlink', 'member', 'archive']);
  // kmr's views of a file (rebuilder/compare): never package members
  const VIEW_KINDS = /^(elf-.*|file-list|filetype|hexdump|strings|disassembly|modinfo|module-trailer|bzimage-header|rpm-header|merkle|pkcs7|symbols|section|metadata)$/;
  function isMemberNode(node) {
    if (!node || typeof node !== 'object') return false;
    if (typeof node.kind === 'string' && VIEW_KINDS.test(node.kind)) return false;
    if (node.sha256 != null && node.sha256 !== '') return true;
    if (typeof node.kind === 'string' && node.kind !== '') return MEMBER_KINDS.has(node.kind);
    const s = String(node.source1 || node.source2 || '');
    if (!s || /\s/.test(s) || s.indexOf('{}') >= 0) return false;
    return true;
  }

  function nodeLabel(node) {
    let a = node.source1;
    let b = node.source2;
    if (a === '/dev/null' || a === '') a = null;  // only in the rebuilt side
    if (b === '/dev/null' || b === '') b = null;  // only in the shipped side
    if (a != null && b != null && a !== b) return a + ' \u2192 ' + b;
    return String(a != null ? a : (b != null ? b : '(unnamed)'));
  }

  // Differing members: the deepest member nodes that differ, each with its
  // path from the root (list of labels) and its id (path of child indexes,
  // e.g. "0.2.1", as the tree view numbers its nodes).
  function differingMembers(tree, limit) {
    const out = [];
    const max = limit || 10000;
    let truncated = false;
    function walk(node, path, id) {
      if (!nodeDiffers(node)) return false;
      const kids = Array.isArray(node.details) ? node.details : [];
      let below = false;
      for (let i = 0; i < kids.length; i++) {
        const k = kids[i];
        const childPath = isMemberNode(k) ? path.concat([nodeLabel(k)]) : path;
        if (walk(k, childPath, id === '' ? String(i) : id + '.' + i)) below = true;
      }
      if (!below && isMemberNode(node) && id !== '') {
        if (out.length < max) {
          out.push({ id: id, path: path, status: node.status || 'changed', kind: node.kind || null });
        } else {
          truncated = true;
        }
        return true;
      }
      return below || isMemberNode(node);
    }
    if (tree && typeof tree === 'object') walk(tree, [], '');
    return { members: out, truncated: truncated };
  }

  function countNodes(tree) {
    let n = 0;
    const stack = [tree];
    while (stack.length) {
      const x = stack.pop();
      if (!x || typeof x !== 'object') continue;
      n++;
      if (Array.isArray(x.details)) for (const d of x.details) stack.push(d);
    }
    return n;
  }

  // Classifies the lines of a unified diff for colouring.
  function diffLines(text) {
    if (typeof text !== 'string') return [];
    const lines = text.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines.map(function (l) {
      let cls = 'ctx';
      if (l.startsWith('@@')) cls = 'hunk';
      else if (l.startsWith('+')) cls = 'add';
      else if (l.startsWith('-')) cls = 'del';
      return { cls: cls, text: l };
    });
  }

  // Parses a Content-Range header "bytes a-b/total" -> {start, end, total}.
  function parseContentRange(h) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(h || '').trim());
    if (!m) return null;
    return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
  }

  // Splits a text into head and tail when it is longer than head+tail bytes
  // (characters here), returning {head, tail, omitted}.
  function headTail(text, headN, tailN) {
    if (text.length <= headN + tailN) return { head: text, tail: '', omitted: 0 };
    return { head: text.slice(0, headN), tail: text.slice(text.length - tailN), omitted: text.length - headN - tailN };
  }

  // Shell-quotes one word for the "verify offline" command line.
  function shellQuote(s) {
    s = String(s);
    if (/^[A-Za-z0-9_\/.:=@%+,-]+$/.test(s)) return s;
    return "'" + s.replace(/'/g, "'\\''") + "'";
  }

  // Builds the exact "kmr query" command a user runs to check this artifact
  // against this rebuilder, offline of the web page.
  function queryCommand(origin, sha256, keyFile) {
    const parts = ['kmr', 'query', '--rebuilder', origin, '--key', keyFile || 'rebuilder.pem', 'sha256:' + sha256];
    return parts.map(shellQuote).join(' ');
  }

  // Hash-route parsing: "#/artifact/HEX" -> {view:'artifact', arg:'HEX', params}
  function parseRoute(hash) {
    let h = String(hash || '').replace(/^#/, '');
    if (h === '' || h === '/') return { view: 'overview', arg: null, params: {} };
    let query = '';
    const qi = h.indexOf('?');
    if (qi >= 0) { query = h.slice(qi + 1); h = h.slice(0, qi); }
    const parts = h.replace(/^\//, '').split('/').filter(function (x) { return x !== ''; });
    const params = {};
    for (const kv of query.split('&')) {
      if (!kv) continue;
      const eq = kv.indexOf('=');
      const k = decodeURIComponent((eq < 0 ? kv : kv.slice(0, eq)).replace(/\+/g, ' '));
      const v = eq < 0 ? '' : decodeURIComponent(kv.slice(eq + 1).replace(/\+/g, ' '));
      params[k] = v;
    }
    return { view: parts[0] || 'overview', arg: parts.length > 1 ? parts.slice(1).join('/') : null, params: params };
  }

  function buildRoute(view, arg, params) {
    let s = '#/' + view + (arg ? '/' + encodeURIComponent(arg) : '');
    const q = [];
    for (const k of Object.keys(params || {})) {
      const v = params[k];
      if (v == null || v === '') continue;
      q.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    }
    if (q.length) s += '?' + q.join('&');
    return s;
  }

  // ---- RFC 6962 / 9162 inclusion proofs (for the log of attestations) ----

  function bytesFromHexOrBase64(s) {
    if (s instanceof Uint8Array) return s;
    s = String(s).trim();
    if (/^[0-9a-fA-F]{64}$/.test(s)) {
      const out = new Uint8Array(32);
      for (let i = 0; i < 32; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
      return out;
    }
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
    const bin = (typeof atob === 'function') ? atob(b64) : Buffer.from(b64, 'base64').toString('binary');
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function concatBytes(parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }

  function bytesEqual(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function toHex(b) {
    let s = '';
    for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
    return s;
  }

  // sha256: async (Uint8Array) -> Uint8Array. Returns the leaf hash of entry bytes.
  async function leafHash(sha256, entry) {
    return sha256(concatBytes([new Uint8Array([0]), entry]));
  }

  // RFC 9162 section 2.1.3.2. Resolves true iff the proof links leaf to root.
  async function verifyInclusion(sha256, leaf, index, size, proof, root) {
    if (!(index < size) || index < 0) return false;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concatBytes([new Uint8Array([1]), p, r]));
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await sha256(concatBytes([new Uint8Array([1]), r, p]));
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && bytesEqual(r, root);
  }

  // Parses a tlog-checkpoint note: {origin, size, root (Uint8Array), text}.
  function parseCheckpoint(text) {
    const lines = String(text).split('\n');
    if (lines.length < 3 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) return null;
    let root;
    try { root = bytesFromHexOrBase64(lines[2]); } catch (e) { return null; }
    if (root.length !== 32) return null;
    return { origin: lines[0], size: Number(lines[1]), root: root, rootText: lines[2] };
  }

  const api = {
    FILES_TIERS: FILES_TIERS, MODULE_ROOT: MODULE_ROOT, CONTENT_ROOT: CONTENT_ROOT, GOOD_FILES: GOOD_FILES,
    isSha256: isSha256, parseHashQuery: parseHashQuery, explain: explain, verdictClass: verdictClass,
    isReproducible: isReproducible, signatureSummary: signatureSummary, filesVerdict: filesVerdict, percent: percent, formatBytes: formatBytes, hexRuns: hexRuns,
    nodeDiffers: nodeDiffers, isMemberNode: isMemberNode, nodeLabel: nodeLabel,
    differingMembers: differingMembers, countNodes: countNodes, diffLines: diffLines,
    parseContentRange: parseContentRange, headTail: headTail, shellQuote: shellQuote,
    queryCommand: queryCommand, parseRoute: parseRoute, buildRoute: buildRoute,
    bytesFromHexOrBase64: bytesFromHexOrBase64, concatBytes: concatBytes, toHex: toHex, leafHash: leafHash,
    verifyInclusion: verifyInclusion, parseCheckpoint: parseCheckpoint,
  };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.KMR = Object.assign(root.KMR || {}, { core: api });
})(typeof window !== 'undefined' ? window : globalThis);
