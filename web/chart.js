// kmr web UI: small inline-SVG charts (no library). Colours come from CSS
// classes so the stylesheet controls them.
(function (root) {
  'use strict';
  const KMR = root.KMR = root.KMR || {};

  function svg(tag, attrs) {
    return KMR.dom.h.apply(null, ['svg:' + tag].concat(Array.prototype.slice.call(arguments, 1)));
  }

  // Horizontal stacked bar: segments = [{label, value, cls}]
  function stackedBar(segments, total, title) {
    const W = 100;
    const s = svg('svg', {
      class: 'stack', viewBox: '0 0 ' + W + ' 6', preserveAspectRatio: 'none',
      role: 'img', 'aria-label': title,
    });
    let x = 0;
    for (const seg of segments) {
      if (!seg.value || !total) continue;
      const w = (W * seg.value) / total;
      s.appendChild(svg('rect', { x: x.toFixed(3), y: 0, width: w.toFixed(3), height: 6, class: 'seg-' + seg.cls },
        svg('title', null, seg.label + ': ' + seg.value + ' (' + KMR.core.percent(seg.value, total) + ')')));
      x += w;
    }
    if (x === 0) s.appendChild(svg('rect', { x: 0, y: 0, width: W, height: 6, class: 'seg-empty' }));
    return s;
  }

  // Line chart of reproducible share over time.
  // points = [{time: Date|string|number, verified, reproducible}]
  function timeChart(points, title) {
    const W = 640;
    const H = 220;
    const L = 44;
    const R = 12;
    const T = 12;
    const B = 36;
    const pts = (points || []).map(function (p) {
      const t = typeof p.time === 'number' ? (p.time < 1e12 ? p.time * 1000 : p.time) : Date.parse(p.time);
      return { t: t, v: Number(p.verified) || 0, r: Number(p.reproducible) || 0 };
    }).filter(function (p) { return !isNaN(p.t); }).sort(function (a, b) { return a.t - b.t; });

    const s = svg('svg', { class: 'timechart', viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title });
    s.appendChild(svg('title', null, title));
    if (!pts.length) {
      s.appendChild(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis-label' }, 'No verified rebuilds yet'));
      return s;
    }
    const t0 = pts[0].t;
    const t1 = pts.length > 1 ? pts[pts.length - 1].t : t0 + 1;
    const X = function (t) { return L + ((W - L - R) * (t - t0)) / Math.max(1, t1 - t0); };
    const Y = function (pct) { return T + ((H - T - B) * (100 - pct)) / 100; };
    // grid + y labels
    for (const g of [0, 25, 50, 75, 100]) {
      s.appendChild(svg('line', { x1: L, x2: W - R, y1: Y(g), y2: Y(g), class: 'grid' }));
      s.appendChild(svg('text', { x: L - 6, y: Y(g) + 4, 'text-anchor': 'end', class: 'axis-label' }, g + '%'));
    }
    // x labels: first and last
    const lab = function (t) { return new Date(t).toISOString().slice(0, 16).replace('T', ' '); };
    s.appendChild(svg('text', { x: L, y: H - 12, 'text-anchor': 'start', class: 'axis-label' }, lab(t0)));
    if (pts.length > 1) s.appendChild(svg('text', { x: W - R, y: H - 12, 'text-anchor': 'end', class: 'axis-label' }, lab(t1)));
    let d = '';
    let area = '';
    pts.forEach(function (p, i) {
      const pct = p.v ? (100 * p.r) / p.v : 0;
      const x = pts.length > 1 ? X(p.t) : (L + W - R) / 2;
      d += (i ? 'L' : 'M') + x.toFixed(1) + ' ' + Y(pct).toFixed(1);
      area += (i ? 'L' : 'M' + x.toFixed(1) + ' ' + Y(0) + 'L') + x.toFixed(1) + ' ' + Y(pct).toFixed(1);
    });
    if (pts.length > 1) {
      const lastX = X(pts[pts.length - 1].t);
      s.appendChild(svg('path', { d: area + 'L' + lastX.toFixed(1) + ' ' + Y(0) + 'Z', class: 'area' }));
    }
    s.appendChild(svg('path', { d: d, class: 'line' }));
    pts.forEach(function (p) {
      const pct = p.v ? (100 * p.r) / p.v : 0;
      const x = pts.length > 1 ? X(p.t) : (L + W - R) / 2;
      s.appendChild(svg('circle', { cx: x.toFixed(1), cy: Y(pct).toFixed(1), r: 3, class: 'dot' },
        svg('title', null, lab(p.t) + ': ' + p.r + ' of ' + p.v + ' reproducible (' + KMR.core.percent(p.r, p.v) + ')')));
    });
    return s;
  }

  KMR.chart = { stackedBar: stackedBar, timeChart: timeChart };
})(window);
