// kmr web UI: DOM building (text nodes only, never HTML strings), API access
// and the admin token kept in sessionStorage.
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};
  const API = '/api/v1';
  const TOKEN_KEY = 'kmr.adminToken';

  // h('div', {class: 'x', onclick: fn}, child, 'text', [more])
  function h(tag, attrs) {
    const svg = tag.startsWith('svg:');
    const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
      : document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v == null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'class') el.setAttribute('class', v);
        else if (k === 'text') el.textContent = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (let i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c == null || c === false) return;
    if (Array.isArray(c)) { for (const x of c) append(el, x); return; }
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function adminToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function setAdminToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: token lives for this page only */ }
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // Resolves a path (relative to /api/v1 unless it starts with '/' or a scheme).
  function apiUrl(path) {
    if (/^[a-z]+:\/\//i.test(path) || path.startsWith('/')) return path;
    return API + '/' + path;
  }

  async function request(path, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
    const tok = adminToken();
    if (tok && opts.admin !== false) headers.Authorization = 'Bearer ' + tok;
    const res = await fetch(apiUrl(path), {
      method: opts.method || 'GET', headers: headers, body: opts.body,
      cache: 'no-cache', credentials: 'same-origin',
    });
    return res;
  }

  async function getJson(path, opts) {
    const res = await request(path, opts);
    let body = null;
    const text = await res.text();
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) {
      const err = body && (body.error || body);
      const code = (err && (err.code || err.error)) || ('http_' + res.status);
      const msg = (err && (err.message || err.detail)) || (res.status + ' ' + res.statusText);
      throw new ApiError(res.status, typeof code === 'string' ? code : 'error', String(msg));
    }
    if (body === null && text) throw new ApiError(res.status, 'bad_json', 'the server did not answer JSON');
    return body;
  }

  function fmtTime(t) {
    if (t == null || t === '') return '';
    let d;
    if (typeof t === 'number') d = new Date(t < 1e12 ? t * 1000 : t);
    else d = new Date(t);
    if (isNaN(d.getTime())) return String(t);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function ago(t) {
    if (t == null || t === '') return '';
    const d = typeof t === 'number' ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
    if (isNaN(d.getTime())) return String(t);
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 0) return 'in ' + dur(-s);
    return dur(s) + ' ago';
  }
  function dur(s) {
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  }

  function badge(kind, verdict) {
    const cls = KMR.core.verdictClass(kind, verdict);
    return h('span', { class: 'badge badge-' + cls, title: KMR.core.explain(kind, verdict) },
      verdict || 'pending');
  }

  // An artifact synced from a repository whose index was not signature-checked
  // (insecure_unsigned in kmrd's config, or a local repository without trusted_keys).
  function unsignedBadge(a) {
    if (!a || !a.insecure_unsigned) return null;
    return h('span', {
      class: 'badge badge-warn badge-unsigned',
      title: 'From a repository synced without a verified signature: whoever serves that repository chose this artifact.'
    }, 'unsigned repository');
  }

  function errorBox(err) {
    const msg = err instanceof ApiError ? (err.message + (err.code ? ' (' + err.code + ')' : ''))
      : String(err && err.message ? err.message : err);
    return h('div', { class: 'error', role: 'alert' }, msg);
  }

  function copyButton(text, label) {
    const b = h('button', { type: 'button', class: 'copy', 'aria-label': label || 'Copy to clipboard' }, 'Copy');
    b.addEventListener('click', async function () {
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = 'Copied';
      } catch (e) {
        b.textContent = 'Select and copy';
      }
      setTimeout(function () { b.textContent = 'Copy'; }, 1500);
    });
    return b;
  }

  function section(title, id) {
    const hid = id ? id + '-title' : null;
    const s = h('section', { class: 'card', id: id, 'aria-labelledby': hid });
    s.appendChild(h('h2', { id: hid }, title));
    return s;
  }

  KMR.dom = {
    h: h, append: append, clear: clear, adminToken: adminToken, setAdminToken: setAdminToken,
    ApiError: ApiError, apiUrl: apiUrl, request: request, getJson: getJson, fmtTime: fmtTime, ago: ago,
    badge: badge, unsignedBadge: unsignedBadge, errorBox: errorBox, copyButton: copyButton, section: section,
  };
})(window);
