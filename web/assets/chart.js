// chart.js - the dashboard's line charts over time, drawn with uPlot (served
// from node_modules at /vendor/uplot/): one chart per <figure>, rebuilt only
// when its series change, resized with its box, with optional vertical
// markers (alerts) and horizontal lines (trigger thresholds). What a chart
// holds is written on its figure as data attributes (data-points: points per
// series, data-markers: markers drawn) for people reading the DOM and for the
// browser tests.

import {h} from './dom.js';

export const COLOURS = ['#0b5cad', '#c2410c', '#15803d', '#7c3aed', '#b91c1c', '#0e7490',
  '#a16207', '#be185d'];
const MARKER = '#b91c1c';

let uPlotClass = null;

/** The uPlot class, imported on first use; throws when the library is missing. */
export async function loadUPlot() {
  if (!uPlotClass) uPlotClass = (await import('/vendor/uplot/uPlot.esm.js')).default;
  return uPlotClass;
}

/**
 * Aligns series of [x, y] points (x in Unix seconds, ascending or not) on one
 * x axis: returns {xs, ys: [[y or null per x] per series]}.
 */
export function align(seriesPoints) {
  const set = new Set();
  for (const pts of seriesPoints) for (const [x] of pts) set.add(x);
  const xs = [...set].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = seriesPoints.map((pts) => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of pts) {
      if (v !== null && v !== undefined && Number.isFinite(v)) y[index.get(x)] = v;
    }
    return y;
  });
  return {xs, ys};
}

/**
 * A line chart in a figure. options: {label (the y axis), height, format
 * (value -> text for the legend), yRange ([min, max] or null for auto)}.
 * draw({xs, series: [{label, values, colour?, dash?}], markers: [{x, label}],
 * lines: [{y, label}]}) sets its data; destroy() frees it.
 */
export class LineChart {
  constructor(figure, {label, height = 240, format = (v) => v.toFixed(3), yRange = null} = {}) {
    this.figure = figure;
    this.label = label;
    this.height = height;
    this.format = format;
    this.yRange = yRange;
    this.plot = null;
    this.shape = '';
    this.markers = [];
    this.lines = [];
    this.xs = [];
    this.box = figure.querySelector('.plot') || figure.insertBefore(h('div', {class: 'plot'}), figure.firstChild);
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({width: this.width(), height: this.height});
    });
    this.resize.observe(figure);
  }

  width() {
    return Math.max(260, this.figure.clientWidth - 32);
  }

  async draw({xs, series, markers = [], lines = [], xMin = null, xMax = null}) {
    const uPlot = await loadUPlot();
    this.uPlot = uPlot;
    this.markers = markers;
    this.lines = lines;
    this.xs = xs;
    this.window = xMin !== null && xMax !== null ? [xMin, xMax] : null;
    const format = this.format;
    const opts = [{label: 'time'}];
    const data = [xs];
    series.forEach((s, i) => {
      opts.push({label: s.label, stroke: s.colour || COLOURS[i % COLOURS.length], width: 2,
        dash: s.dash, spanGaps: false, points: {show: true, size: 5},
        value: (u, v) => (v === null || v === undefined ? '—' : format(v))});
      data.push(s.values);
    });
    const shape = JSON.stringify(opts.map((o) => o.label));
    if (!this.plot || shape !== this.shape) {
      if (this.plot) this.plot.destroy();
      this.box.replaceChildren();
      const yRange = this.yRange;
      this.plot = new uPlot({
        width: this.width(),
        height: this.height,
        series: opts,
        scales: {
          // The x range takes in the markers too: an alert fires after the
          // minute its data is filed under.
          x: {time: true, range: (u, min, max) => this.xBounds(min, max)},
          y: yRange ? {range: () => yRange} : {range: (u, min, max) => this.yBounds(min, max)},
        },
        axes: [{}, {label: this.label, size: 60}],
        legend: {live: true},
        cursor: {focus: {prox: 16}},
        hooks: {draw: [(u) => this.paintOverlays(u)]},
      }, data, this.box);
      this.shape = shape;
    } else {
      this.plot.setData(data);
    }
    const points = {};
    series.forEach((s) => {
      points[s.label] = s.values.filter((v) => v !== null && v !== undefined).length;
    });
    this.figure.dataset.points = JSON.stringify(points);
    this.figure.dataset.markers = String(this.drawnMarkers);
  }

  /** The y range: the data's and the threshold lines', with uPlot's padding. */
  yBounds(min, max) {
    let lo = min;
    let hi = max;
    for (const l of this.lines) {
      if (lo === null || l.y < lo) lo = l.y;
      if (hi === null || l.y > hi) hi = l.y;
    }
    if (lo === null || hi === null) return [0, 1];
    return this.uPlot.rangeNum(lo, hi, 0.1, true);
  }

  /** The x range: the window asked for, or the data's and the markers'
   * times, padded. (uPlot's own range for a single time stamp in seconds
   * would span years.) */
  xBounds(min, max) {
    if (this.window) return this.window;
    let lo = this.xs.length ? this.xs[0] : min;
    let hi = this.xs.length ? this.xs[this.xs.length - 1] : max;
    for (const m of this.markers) {
      if (lo === null || m.x < lo) lo = m.x;
      if (hi === null || m.x > hi) hi = m.x;
    }
    if (lo === null || hi === null) return [0, 1];
    if (hi - lo < 60) return [lo - 30, hi + 30];
    const pad = (hi - lo) * 0.02;
    return [lo - pad, hi + pad];
  }

  /** Alert markers (vertical, solid, with a flag) and threshold lines
   * (horizontal, dashed), in the plot's own canvas after each draw. */
  paintOverlays(u) {
    const ctx = u.ctx;
    const {left, top, width, height} = u.bbox;
    const dpr = window.devicePixelRatio || 1;
    let drawn = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = MARKER;
    ctx.fillStyle = MARKER;
    ctx.font = `${Math.round(11 * dpr)}px system-ui, sans-serif`;
    for (const m of this.markers) {
      const x = Math.round(u.valToPos(m.x, 'x', true));
      if (x < left || x > left + width) continue;
      ctx.setLineDash([]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x + 8 * dpr, top + 4 * dpr);
      ctx.lineTo(x, top + 8 * dpr);
      ctx.fill();
      if (m.label) {
        // Labels step down so that alerts close in time stay readable, and
        // turn left near the right edge.
        const w = ctx.measureText(m.label).width;
        const lx = x + 10 * dpr + w > left + width ? x - 4 * dpr - w : x + 10 * dpr;
        ctx.fillText(m.label, lx, top + (12 + 13 * (drawn % 4)) * dpr);
      }
      drawn++;
    }
    ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    for (const l of this.lines) {
      const y = Math.round(u.valToPos(l.y, 'y', true));
      if (y < top || y > top + height) continue;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      if (l.label) ctx.fillText(l.label, left + 4 * dpr, y - 4 * dpr);
    }
    ctx.restore();
    this.drawnMarkers = drawn;
    this.figure.dataset.markers = String(drawn);
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

/** A figure for a LineChart: a card with a title, the plot box and a caption. */
export function chartFigure(idName, title, caption) {
  return h('figure', {class: 'chart card', id: idName, 'aria-label': title},
    h('h3', {class: 'chart-title'}, title),
    h('div', {class: 'plot'}),
    caption ? h('figcaption', {class: 'muted'}, caption) : null);
}
