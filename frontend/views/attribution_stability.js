// Map stability over training for the "Where it looks" view (issue 25): per method, each logged step's rank
// correlation of every probe image's map with its map at the previous logged step, drawn as the mean over the
// images with a dot per step (hover: each image's value, and why an image has none). The numbers come from
// the logging side (meta.stability, tb_cnnviz/views/map_stability.py); this module only draws them.

import { el, svg } from '../dom.js';

export const STABILITY_PITFALL = 'Rank correlation (Spearman) of each image\'s map with its map at the '
  + 'previous logged step: 1 = the same order of pixels. Late jumps say the model, or the method, has not '
  + 'settled. Pitfall: stable is not right: a map that ignores the weights (guided backprop\'s edge maps) is '
  + 'stable from the first step, and a correlation over all pixels is dominated by the background\'s order; '
  + 'steps far apart compare less alike than close ones.';

function finite(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

function signed(value) {
  if (!finite(value)) return '–';
  return value < 0 ? `\u2212${Math.abs(value).toFixed(2)}` : `+${value.toFixed(2)}`;
}

/**
 * A method's stability points from its samples at some steps ([{step, meta}], any order): those that have
 * a previous step and at least one image with a value, as {step, previous, mean, values, why}, by step.
 */
export function stabilityPoints(samples) {
  const points = [];
  for (const { step, meta } of samples) {
    const stability = meta && typeof meta.stability === 'object' ? meta.stability : null;
    if (!stability || !finite(stability.previous_step)) continue;
    const values = Array.isArray(stability.rank_correlation) ? stability.rank_correlation : [];
    const kept = values.filter(finite);
    if (!kept.length) continue;
    const why = Array.isArray(stability.why) ? stability.why : [];
    const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
    points.push({ step, previous: stability.previous_step, mean, values, why });
  }
  return points.sort((a, b) => a.step - b.step);
}

/** Why a method's latest sample has no stability value: its first image's reason (stability.why), or null. */
export function latestReason(samples) {
  const latest = [...samples].sort((a, b) => b.step - a.step)
    .find(({ meta }) => meta && meta.stability && typeof meta.stability === 'object');
  const why = latest && Array.isArray(latest.meta.stability.why) ? latest.meta.stability.why : [];
  return why.find((reason) => typeof reason === 'string') || null;
}

function pointTitle(title, point) {
  const lines = point.values.map((value, n) => (finite(value)
    ? `image ${n}: ${signed(value)}`
    : `image ${n}: none (${typeof point.why[n] === 'string' ? point.why[n] : 'no value'})`));
  const head = `${title}, step ${point.step} vs step ${point.previous}: mean ${signed(point.mean)}`;
  return [head, ...lines].join('\n');
}

function noCurveYet(heading, series) {
  const reasons = series.filter((entry) => entry.reason).map((entry) => el('div', {
    className: 'stability-reason', dataset: { method: entry.method },
    text: `${entry.title}: ${entry.reason}` }));
  const text = 'No stability point yet: a method needs two logged steps of the same images and classes.';
  return el('section', { className: 'map-stability' }, [
    heading, el('div', { className: 'note stability-none', text }, reasons)]);
}

/**
 * The stability chart. `series`: [{method, title, points (stabilityPoints), reason (latestReason)}], one per
 * method the run logged. A note instead of a chart when no method has two comparable steps yet; null with no
 * method.
 */
export function stabilityChart(series, currentStep) {
  if (!series.length) return null;
  const drawn = series.filter((entry) => entry.points.length);
  const heading = el('h3', { className: 'stability-title', attrs: { tabindex: '0' },
    title: STABILITY_PITFALL }, [
    'Map stability over training: rank correlation with the previous logged step',
    el('span', { className: 'pitfall-mark', text: '?' })]);
  if (!drawn.length) return noCurveYet(heading, series);
  const steps = drawn.flatMap((entry) => entry.points.map((point) => point.step));
  const lo = Math.min(...steps);
  const hi = Math.max(...steps);
  const width = 380;
  const height = 150;
  const [left, right, top, bottom] = [30, width - 8, 8, height - 26];
  const x = (step) => left + (hi > lo ? (step - lo) / (hi - lo) : 0.5) * (right - left);
  const y = (value) => bottom - ((Math.max(-1, Math.min(1, value)) + 1) / 2) * (bottom - top);
  const tick = (v) => svg('text', { x: left - 3, y: y(v) + 4, 'text-anchor': 'end', class: 'chart-tick' },
    [v < 0 ? '\u22121' : String(v)]);
  const parts = [
    svg('line', { x1: left, x2: right, y1: bottom, y2: bottom, class: 'chart-axis' }),
    svg('line', { x1: left, x2: left, y1: top, y2: bottom, class: 'chart-axis' }),
    svg('line', { x1: left, x2: right, y1: y(0), y2: y(0), class: 'stability-zero' }),
    tick(1), tick(0), tick(-1),
    svg('text', { x: left, y: height - 3, class: 'chart-tick' }, [`step ${lo}`]),
    svg('text', { x: right, y: height - 3, 'text-anchor': 'end', class: 'chart-tick' }, [`step ${hi}`]),
  ];
  if (finite(currentStep) && currentStep >= lo && currentStep <= hi) {
    const now = x(currentStep);
    parts.push(svg('line', { x1: now, x2: now, y1: top, y2: bottom, class: 'trend-now' }));
  }
  series.forEach((entry, k) => {
    if (!entry.points.length) return;
    const colour = `trend-${k % 6}`;
    parts.push(svg('polyline', { class: `stability-line trend-line ${colour}`, 'data-method': entry.method,
      points: entry.points.map((p) => `${x(p.step).toFixed(1)},${y(p.mean).toFixed(1)}`).join(' ') }));
    for (const point of entry.points) {
      parts.push(svg('circle', { cx: x(point.step).toFixed(1), cy: y(point.mean).toFixed(1), r: 3,
        class: `stability-dot trend-dot ${colour}`, 'data-method': entry.method, 'data-step': point.step },
      [svg('title', {}, [pointTitle(entry.title, point)])]));
    }
  });
  const legend = el('div', { className: 'trend-legend' }, series.map((entry, k) => el('span', {
    className: `trend-key trend-${k % 6}`, dataset: { method: entry.method },
    title: entry.points.length ? '' : entry.reason,
    text: entry.points.length ? entry.title : `${entry.title} (no point yet)` })));
  return el('section', { className: 'map-stability' }, [
    heading,
    legend,
    svg('svg', { class: 'stability-chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': 'map stability over training' }, parts),
  ]);
}
