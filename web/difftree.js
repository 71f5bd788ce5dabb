// kmr web UI: viewer for kmr's JSON diff tree (diffoscope JSON layout:
// source1, source2, unified_diff, comments, details; plus kind, status and
// sha256 from kmr). Nodes are disclosure buttons with aria-expanded; bodies
// are built lazily on first expansion, so huge reports stay responsive.
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};
  const { h } = KMR.dom;
  const core = KMR.core;
  const EXPAND_ALL_LIMIT = 3000;
  const DIFF_LINE_LIMIT = 4000;

  function hashInfo(node) {
    const out = [];
    const s = node.sha256;
    if (typeof s === 'string') out.push(['sha256', s]);
    else if (s && typeof s === 'object') {
      for (const k of Object.keys(s)) if (typeof s[k] === 'string') out.push(['sha256 ' + k, s[k]]);
    }
    for (const k of ['sha256_1', 'sha256_2', 'sha256_source1', 'sha256_source2']) {
      if (typeof node[k] === 'string') out.push([k, node[k]]);
    }
    const z = node.size;
    if (z && typeof z === 'object') {
      for (const k of Object.keys(z)) if (typeof z[k] === 'number') out.push(['size ' + k, z[k] + ' bytes (' + core.formatBytes(z[k]) + ')']);
    }
    return out;
  }

  function statusOf(node) {
    if (typeof node.status === 'string') return node.status;
    return core.nodeDiffers(node) ? 'changed' : 'identical';
  }

  function unifiedDiff(text) {
    const lines = core.diffLines(text);
    const pre = h('pre', { class: 'udiff', tabindex: '0', 'aria-label': 'unified diff' });
    const n = Math.min(lines.length, DIFF_LINE_LIMIT);
    for (let i = 0; i < n; i++) {
      pre.appendChild(h('span', { class: 'l-' + lines[i].cls }, lines[i].text + '\n'));
    }
    if (lines.length > n) pre.appendChild(h('span', { class: 'l-note' }, '[ ' + (lines.length - n) + ' more lines not shown ]\n'));
    return pre;
  }

  function Tree(tree) {
    this.tree = tree;
    this.byId = new Map();
    this.count = 0;
  }

  Tree.prototype.nodeAt = function (id) {
    let n = this.tree;
    if (id === '') return n;
    for (const part of id.split('.')) {
      if (!n || !Array.isArray(n.details)) return null;
      n = n.details[Number(part)];
    }
    return n || null;
  };

  Tree.prototype.renderNode = function (node, id, depth) {
    const self = this;
    const kids = Array.isArray(node.details) ? node.details : [];
    const hasBody = kids.length > 0 || !!node.unified_diff || (Array.isArray(node.comments) && node.comments.length > 0) ||
      hashInfo(node).length > 0;
    const status = statusOf(node);
    const li = h('li', { class: 'dnode st-' + status.replace(/[^a-z-]/gi, ''), 'data-node-id': id, 'data-status': status });
    const bodyId = 'dn-' + (id === '' ? 'root' : id.replace(/\./g, '-'));
    const label = core.nodeLabel(node);
    const meta = [];
    if (node.kind) meta.push(h('span', { class: 'kind' }, node.kind));
    meta.push(h('span', { class: 'st st-' + status.replace(/[^a-z-]/gi, '') }, status));
    if (kids.length) meta.push(h('span', { class: 'muted' }, kids.length + (kids.length === 1 ? ' child' : ' children')));
    let head;
    if (hasBody) {
      const btn = h('button', {
        type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-controls': bodyId,
      }, h('span', { class: 'chev', 'aria-hidden': 'true' }), h('span', { class: 'label' }, label));
      btn.addEventListener('click', function () { self.toggle(li); });
      head = h('div', { class: 'node-head' }, btn, meta);
    } else {
      head = h('div', { class: 'node-head' }, h('span', { class: 'label leaf' }, label), meta);
    }
    li.appendChild(head);
    if (hasBody) li.appendChild(h('div', { class: 'node-body', id: bodyId, hidden: true }));
    this.byId.set(id, li);
    this.count++;
    return li;
  };

  Tree.prototype.fillBody = function (li) {
    const body = li.querySelector(':scope > .node-body');
    if (!body || body.dataset.filled) return body;
    body.dataset.filled = '1';
    const id = li.getAttribute('data-node-id');
    const node = this.nodeAt(id);
    const hashes = hashInfo(node);
    if (hashes.length) {
      body.appendChild(h('dl', { class: 'hashes' }, hashes.map(function (kv) {
        return h('div', null, h('dt', null, kv[0]), h('dd', null, h('code', null, kv[1])));
      })));
    }
    if (Array.isArray(node.comments) && node.comments.length) {
      body.appendChild(h('ul', { class: 'comments' }, node.comments.map(function (c) { return h('li', null, String(c)); })));
    }
    if (node.unified_diff) body.appendChild(unifiedDiff(String(node.unified_diff)));
    const kids = Array.isArray(node.details) ? node.details : [];
    if (kids.length) {
      const ul = h('ul', { class: 'dchildren' });
      const depth = id === '' ? 1 : id.split('.').length + 1;
      for (let i = 0; i < kids.length; i++) {
        if (!kids[i] || typeof kids[i] !== 'object') continue;
        ul.appendChild(this.renderNode(kids[i], id === '' ? String(i) : id + '.' + i, depth));
      }
      body.appendChild(ul);
    }
    return body;
  };

  Tree.prototype.setExpanded = function (li, open) {
    const btn = li.querySelector(':scope > .node-head > .toggle');
    if (!btn) return;
    const body = this.fillBody(li);
    btn.setAttribute('aria-expanded', open ? 'true' : 'false');
    body.hidden = !open;
  };

  Tree.prototype.toggle = function (li) {
    const btn = li.querySelector(':scope > .node-head > .toggle');
    if (btn) this.setExpanded(li, btn.getAttribute('aria-expanded') !== 'true');
  };

  // Expands every ancestor of node `id` (building them as needed) and returns its element.
  Tree.prototype.reveal = function (id) {
    const parts = id === '' ? [] : id.split('.');
    let cur = '';
    this.setExpanded(this.byId.get(''), true);
    for (let i = 0; i < parts.length; i++) {
      cur = i === 0 ? parts[0] : cur + '.' + parts[i];
      const li = this.byId.get(cur);
      if (!li) return null;
      if (i < parts.length - 1) this.setExpanded(li, true);
    }
    return this.byId.get(id) || null;
  };

  // Expands the differing descendants of node `id` (its tool views, e.g. the
  // readelf or hexdump diffs of a module), at most `limit` nodes.
  Tree.prototype.expandSubtree = function (id, limit) {
    const queue = [id];
    let n = 0;
    while (queue.length && n < limit) {
      const cur = queue.shift();
      const li = this.byId.get(cur);
      const node = this.nodeAt(cur);
      if (!li || !node || (cur !== id && !core.nodeDiffers(node))) continue;
      this.setExpanded(li, true);
      n++;
      const kids = Array.isArray(node.details) ? node.details : [];
      for (let i = 0; i < kids.length; i++) queue.push(cur === '' ? String(i) : cur + '.' + i);
    }
  };

  Tree.prototype.expandAll = function (open) {
    if (!open) {
      for (const li of this.byId.values()) this.setExpanded(li, false);
      this.setExpanded(this.byId.get(''), true);
      return true;
    }
    const queue = [''];
    let n = 0;
    while (queue.length && n < EXPAND_ALL_LIMIT) {
      const id = queue.shift();
      const li = this.byId.get(id);
      if (!li) continue;
      if (!core.nodeDiffers(this.nodeAt(id)) && id !== '') continue;
      this.setExpanded(li, true);
      n++;
      const node = this.nodeAt(id);
      const kids = Array.isArray(node.details) ? node.details : [];
      for (let i = 0; i < kids.length; i++) queue.push(id === '' ? String(i) : id + '.' + i);
    }
    return queue.length === 0;
  };

  // Builds the whole viewer: summary of differing members, toolbar, tree.
  function render(tree) {
    const wrap = h('div', { class: 'difftree' });
    if (!tree || typeof tree !== 'object') {
      wrap.appendChild(h('p', { class: 'error' }, 'The diff report is not a JSON object.'));
      return wrap;
    }
    const t = new Tree(tree);
    const summary = core.differingMembers(tree, 500);
    const total = core.countNodes(tree);
    const sum = h('div', { class: 'diff-summary', id: 'diff-summary' },
      h('h3', null, summary.members.length + (summary.truncated ? '+' : '') + ' differing member' + (summary.members.length === 1 ? '' : 's')),
      tree['diffoscope-json-version'] != null ? h('p', { class: 'muted' },
        'diffoscope JSON version ' + tree['diffoscope-json-version'] + ', ' + total + ' nodes') : null);
    if (summary.members.length) {
      const ol = h('ol', { class: 'members' });
      for (const m of summary.members) {
        const b = h('button', { type: 'button', class: 'linklike', 'data-target': m.id },
          m.path.length ? m.path.join(' \u203a ') : core.nodeLabel(t.nodeAt(m.id)));
        b.addEventListener('click', function () {
          const li = t.reveal(m.id);
          if (!li) return;
          t.expandSubtree(m.id, 50);
          const btn = li.querySelector(':scope > .node-head > .toggle') || li;
          li.scrollIntoView({ block: 'center' });
          if (btn.focus) btn.focus();
        });
        ol.appendChild(h('li', null, b, ' ', h('span', { class: 'st st-' + String(m.status).replace(/[^a-z-]/gi, '') }, m.status)));
      }
      sum.appendChild(ol);
    } else if (!core.nodeDiffers(tree)) {
      sum.appendChild(h('p', null, 'No differences.'));
    }
    wrap.appendChild(sum);
    const note = h('span', { class: 'muted', role: 'status' });
    const tools = h('div', { class: 'toolbar' },
      h('button', { type: 'button', id: 'diff-expand-all' }, 'Expand differing'),
      h('button', { type: 'button', id: 'diff-collapse-all' }, 'Collapse all'), note);
    tools.querySelector('#diff-expand-all').addEventListener('click', function () {
      note.textContent = t.expandAll(true) ? '' : 'Expanded the first ' + EXPAND_ALL_LIMIT + ' nodes.';
    });
    tools.querySelector('#diff-collapse-all').addEventListener('click', function () { t.expandAll(false); note.textContent = ''; });
    wrap.appendChild(tools);
    const ul = h('ul', { class: 'dtree', 'aria-label': 'Diff tree' });
    ul.appendChild(t.renderNode(tree, '', 0));
    wrap.appendChild(ul);
    t.setExpanded(t.byId.get(''), true);
    wrap.kmrTree = t;
    return wrap;
  }

  KMR.difftree = { render: render };
})(window);
