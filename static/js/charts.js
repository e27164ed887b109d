// The dashboard's own SVG charts: line (one or two y axes), bars (stacked or grouped),
// donut and sparkline. Colours come from CSS variables (--c0 … --c7), so both themes
// restyle them. Every chart is an <svg role="img"> with an aria-label, a <title> per
// point or bar for hover and screen readers, and an HTML legend.

const NS = 'http://www.w3.org/2000/svg';
const PALETTE = 8;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function title(el, text) {
  el.append(s('title', {}, text));
  return el;
}

/** A round upper bound and tick step for values up to `max`. */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw) || raw;
  return { top: step * Math.ceil(max / step), step };
}

const plain = (v) => (Math.abs(v) >= 1000 ? `${Math.round(v / 100) / 10}K` : `${Math.round(v * 100) / 100}`);

function legend(items) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  items.forEach((it, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = `swatch c${(it.color ?? i) % PALETTE}`;
    sw.setAttribute('aria-hidden', 'true');
    li.append(sw, document.createTextNode(it.label));
    ul.append(li);
  });
  return ul;
}

function frame(container, label, height) {
  const width = Math.max(280, Math.floor(container.clientWidth || 600));
  const svg = s('svg', {
    class: 'chart',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': label,
  });
  return { svg, width };
}

function empty(container, label, message = 'No data for this range yet.') {
  const p = document.createElement('p');
  p.className = 'chart-empty';
  p.textContent = message;
  p.setAttribute('aria-label', label);
  container.replaceChildren(p);
  container.dataset.points = '0';
}

/** Short time labels for an x axis. */
export function timeLabel(iso, spanMs) {
  const d = new Date(iso);
  if (spanMs > 2 * 86400000) return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function yAxis(svg, scale, x, y0, y1, fmt, side, width) {
  const g = s('g', { class: 'axis' });
  for (let v = 0; v <= scale.top + 1e-9; v += scale.step) {
    const y = y1 - ((y1 - y0) * v) / scale.top;
    if (side === 'left') g.append(s('line', { x1: x, x2: width, y1: y, y2: y, class: 'grid' }));
    g.append(s('text', { x: side === 'left' ? x - 6 : x + 6, y: y + 4, 'text-anchor': side === 'left' ? 'end' : 'start' }, fmt(v)));
  }
  svg.append(g);
}

function xAxis(svg, labels, xOf, y) {
  const g = s('g', { class: 'axis' });
  const n = labels.length;
  const every = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < n; i += every) g.append(s('text', { x: xOf(i), y, 'text-anchor': 'middle' }, labels[i]));
  svg.append(g);
}

/**
 * Line chart. opts: { label, labels: [x labels], series: [{ name, values, color?,
 * axis?: 'right', format? }], format (left axis), rightFormat, height, area }.
 */
export function lineChart(container, opts) {
  const { label, labels, series, height = 220 } = opts;
  const fmt = opts.format || plain;
  const total = series.reduce((n, se) => n + se.values.filter((v) => v).length, 0);
  if (!labels.length || !total) return empty(container, label);
  const { svg, width } = frame(container, label, height);
  const hasRight = series.some((se) => se.axis === 'right');
  const pad = { l: 52, r: hasRight ? 56 : 14, t: 12, b: 26 };
  const max = (axis) => Math.max(0, ...series.filter((se) => (se.axis === 'right') === axis).flatMap((se) => se.values.map((v) => v || 0)));
  const left = niceScale(max(false));
  const right = niceScale(max(true));
  const n = labels.length;
  const xOf = (i) => pad.l + (n === 1 ? (width - pad.l - pad.r) / 2 : (i * (width - pad.l - pad.r)) / (n - 1));
  const yOf = (v, sc) => height - pad.b - ((height - pad.t - pad.b) * (v || 0)) / sc.top;
  yAxis(svg, left, pad.l, pad.t, height - pad.b, fmt, 'left', width - pad.r);
  if (hasRight) yAxis(svg, right, width - pad.r, pad.t, height - pad.b, opts.rightFormat || plain, 'right', width);
  xAxis(svg, labels, xOf, height - 6);
  series.forEach((se, si) => {
    const sc = se.axis === 'right' ? right : left;
    const color = `c${(se.color ?? si) % PALETTE}`;
    const pts = se.values.map((v, i) => `${xOf(i).toFixed(1)},${yOf(v, sc).toFixed(1)}`);
    if (opts.area && si === 0) {
      svg.append(s('path', { class: `area ${color}`, d: `M${xOf(0)},${height - pad.b}L${pts.join('L')}L${xOf(n - 1)},${height - pad.b}Z` }));
    }
    svg.append(s('path', { class: `line ${color}`, d: `M${pts.join('L')}` }));
    const f = se.format || (se.axis === 'right' ? opts.rightFormat : fmt) || plain;
    se.values.forEach((v, i) => {
      if (!v) return;
      svg.append(title(s('circle', { class: `dot ${color}`, cx: xOf(i), cy: yOf(v, sc), r: n > 60 ? 1.5 : 3 }), `${labels[i]} — ${se.name}: ${f(v)}`));
    });
  });
  container.replaceChildren(svg, legend(series.map((se, i) => ({ label: se.name + (se.axis === 'right' ? ' (right axis)' : ''), color: se.color ?? i }))));
  container.dataset.points = String(total);
}

/**
 * Bar chart. opts: { label, labels, series: [{ name, values }], stacked (default
 * true), format, height }.
 */
export function barChart(container, opts) {
  const { label, labels, series, height = 220 } = opts;
  const stacked = opts.stacked !== false;
  const fmt = opts.format || plain;
  const total = series.reduce((n, se) => n + se.values.filter((v) => v).length, 0);
  if (!labels.length || !total) return empty(container, label);
  const { svg, width } = frame(container, label, height);
  const pad = { l: 52, r: 14, t: 12, b: 26 };
  const n = labels.length;
  const sums = labels.map((_, i) => (stacked
    ? series.reduce((a, se) => a + (se.values[i] || 0), 0)
    : Math.max(...series.map((se) => se.values[i] || 0))));
  const sc = niceScale(Math.max(...sums));
  const slot = (width - pad.l - pad.r) / n;
  const barW = Math.max(1, slot * 0.72);
  const yOf = (v) => ((height - pad.t - pad.b) * v) / sc.top;
  yAxis(svg, sc, pad.l, pad.t, height - pad.b, fmt, 'left', width - pad.r);
  xAxis(svg, labels, (i) => pad.l + slot * (i + 0.5), height - 6);
  let bars = 0;
  for (let i = 0; i < n; i++) {
    let base = height - pad.b;
    series.forEach((se, si) => {
      const v = se.values[i] || 0;
      if (!v) return;
      const hgt = yOf(v);
      const w = stacked ? barW : barW / series.length;
      const x = pad.l + slot * i + (slot - barW) / 2 + (stacked ? 0 : w * si);
      const y = stacked ? base - hgt : height - pad.b - hgt;
      if (stacked) base -= hgt;
      bars++;
      svg.append(title(s('rect', { class: `bar c${(se.color ?? si) % PALETTE}`, x: x.toFixed(1), y: y.toFixed(1), width: w.toFixed(1), height: Math.max(0.5, hgt).toFixed(1) }), `${labels[i]} — ${se.name}: ${fmt(v)}`));
    });
  }
  const parts = [svg];
  if (series.length > 1 || opts.legend) parts.push(legend(series.map((se, i) => ({ label: se.name, color: se.color ?? i }))));
  container.replaceChildren(...parts);
  container.dataset.points = String(bars);
}

/** Donut. opts: { label, items: [{ label, value }], format, centre }. */
export function donut(container, opts) {
  const items = opts.items.filter((it) => it.value > 0);
  const fmt = opts.format || plain;
  const sum = items.reduce((a, it) => a + it.value, 0);
  if (!sum) return empty(container, opts.label);
  const size = 180;
  const r = 70;
  const sw = 26;
  const svg = s('svg', { class: 'chart donut', viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: 'img', 'aria-label': opts.label });
  const c = 2 * Math.PI * r;
  let offset = 0;
  items.forEach((it, i) => {
    const len = (it.value / sum) * c;
    const arc = s('circle', {
      class: `slice c${i % PALETTE}`,
      cx: size / 2,
      cy: size / 2,
      r,
      'stroke-width': sw,
      'stroke-dasharray': `${len} ${c - len}`,
      'stroke-dashoffset': -offset,
      transform: `rotate(-90 ${size / 2} ${size / 2})`,
    });
    svg.append(title(arc, `${it.label}: ${fmt(it.value)} (${((100 * it.value) / sum).toFixed(1)}%)`));
    offset += len;
  });
  svg.append(s('text', { x: size / 2, y: size / 2 + 6, 'text-anchor': 'middle', class: 'donut-total' }, opts.centre ?? fmt(sum)));
  const wrap = document.createElement('div');
  wrap.className = 'donut-wrap';
  wrap.append(svg, legend(items.map((it, i) => ({ label: `${it.label} — ${fmt(it.value)}`, color: i }))));
  container.replaceChildren(wrap);
  container.dataset.points = String(items.length);
}

/** A small inline trend line (an <svg>), for metric cards. */
export function sparkline(values, label, color = 0) {
  const w = 120;
  const hgt = 28;
  const svg = s('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: 'img', 'aria-label': label });
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${((i * w) / (values.length - 1)).toFixed(1)},${(hgt - 2 - ((hgt - 4) * (v || 0)) / max).toFixed(1)}`);
  svg.append(s('path', { class: `line c${color}`, d: `M${pts.join('L')}` }));
  return svg;
}
