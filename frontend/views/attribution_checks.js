// "Can I trust this map?" for the "Where it looks" view (maps logged with checks=True, issue 13): a badge under
// each map with the sanity verdict (Adebayo et al.), whether it beat a random order (Petsiuk et al.'s deletion
// and insertion) and, with object masks, the pointing game; hovering or focusing it opens the curves and the
// similarity after each re-drawn layer. Under the maps, a trend per method over the logged steps. The numbers
// and verdicts come from the logging side (tb_cnnviz/views/map_checks.py); this module only draws them.

import { el, svg } from '../dom.js';

/** At most this many steps per method in the trend (evenly spread, the last one kept): one /sample each. */
export const TREND_STEPS = 24;

function finite(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

function fixed(value, digits = 2) {
  return finite(value) ? value.toFixed(digits) : '–';
}

/** A signed number with its sign: '+0.87', '−0.95' (a minus sign, not a hyphen), '–' when missing. */
function signed(value) {
  if (!finite(value)) return '–';
  return value < 0 ? `\u2212${Math.abs(value).toFixed(2)}` : `+${value.toFixed(2)}`;
}

/** A bar from the middle of a track: right for a positive correlation, left (another colour) for a negative one. */
function signedBar(value) {
  const r = finite(value) ? Math.max(-1, Math.min(1, value)) : 0;
  const half = 40; // px each side of zero
  const bar = el('span', { className: `similarity-bar ${r < 0 ? 'negative' : 'positive'}`, dataset: { value: String(r) },
    style: { width: `${Math.round(Math.abs(r) * half)}px`, [r < 0 ? 'right' : 'left']: `${half}px` } });
  return el('span', { className: 'similarity-track', title: `rank correlation ${signed(value)}` }, [bar]);
}

function mean(values) {
  const kept = (Array.isArray(values) ? values : []).filter(finite);
  return kept.length ? kept.reduce((a, b) => a + b, 0) / kept.length : null;
}

function at(list, index) {
  return Array.isArray(list) ? list[index] : undefined;
}

function verdict(name, label, passed, title) {
  const known = passed === true || passed === false;
  return el('span', {
    className: `check-verdict ${known ? (passed ? 'check-pass' : 'check-fail') : 'check-unknown'}`,
    dataset: { check: name },
    text: `${known ? (passed ? '✓' : '✗') : '?'} ${label}`,
    title,
  });
}

/**
 * The badge under image `index`'s map, or null when the map was logged without checks. Its detail (curves,
 * correlations) shows on hover or focus in `slot`, a strip across the whole row under the maps: it pushes the
 * next row down instead of covering it, and has the row's width, not a map's.
 */
export function checksBadge(checks, index, slot) {
  if (!checks || typeof checks !== 'object') return null;
  const similarity = at(checks.similarity, index);
  const threshold = finite(checks.sanity_threshold) ? checks.sanity_threshold : 0.5;
  const auc = (key) => at((checks[key] || {}).auc, index);
  const verdicts = [
    verdict('sanity', 'sanity', at(checks.sane, index),
      `Rank correlation with the trained model's map as the layers are re-drawn from the logits down, averaged: `
      + `${fixed(mean(similarity))} (passes below ${threshold}: the map depends on the weights)`),
    verdict('random', 'beats random', at(checks.beats_random, index),
      `Deletion AUC ${fixed(auc('deletion'))} vs ${fixed(auc('random_deletion'))} for a random order (lower is better); `
      + `insertion AUC ${fixed(auc('insertion'))} vs ${fixed(auc('random_insertion'))} (higher is better)`),
  ];
  const pointing = at(checks.pointing, index);
  if (pointing === true || pointing === false) {
    const mass = at(checks.mass, index);
    verdicts.push(verdict('pointing', 'on object', pointing,
      `Pointing game: the map's peak is ${pointing ? '' : 'not '}on the object; ${fixed(finite(mass) ? 100 * mass : null, 0)}% of its mass lies on it`));
  }
  const detail = el('div', { className: 'checks-detail', hidden: true }, checksDetail(checks, index));
  const badge = el('div', { className: 'checks-badge', attrs: { tabindex: '0', role: 'group', 'aria-label': 'map checks' },
    dataset: { image: index } }, [...verdicts, slot ? null : detail]);
  const show = () => {
    if (slot) slot.replaceChildren(detail);
    detail.hidden = false;
  };
  const hide = () => { detail.hidden = true; };
  badge.addEventListener('mouseenter', show);
  badge.addEventListener('mouseleave', hide);
  badge.addEventListener('focus', show);
  badge.addEventListener('blur', hide);
  return badge;
}

/** The two curves (this map solid, the random order dashed) and the similarity after each re-drawn layer. */
function checksDetail(checks, index) {
  const fractions = Array.isArray(checks.fractions) ? checks.fractions : [];
  const curve = (key) => at((checks[key] || {}).probability, index) || [];
  const layers = Array.isArray(checks.layers) ? checks.layers : [];
  const similarity = at(checks.similarity, index) || [];
  const rows = layers.map((layer, k) => el('div', { className: 'similarity-row' }, [
    el('span', { className: 'similarity-layer', text: `… ${layer}` }),
    signedBar(similarity[k]),
    el('span', { className: 'similarity-value', text: signed(similarity[k]) }),
  ]));
  return [
    el('div', { className: 'checks-charts' }, [
      curveChart('deletion', fractions, curve('deletion'), curve('random_deletion')),
      curveChart('insertion', fractions, curve('insertion'), curve('random_insertion')),
    ]),
    el('div', { className: 'checks-legend', text: 'solid: this map · dashed: a random order' }),
    el('div', { className: 'similarity-title', text: 'rank correlation with the trained map, re-drawn from the logits down to:' }),
    ...rows,
  ];
}

function polyline(xs, ys, x, y) {
  return ys.map((v, i) => (finite(v) && finite(xs[i]) ? `${x(xs[i]).toFixed(1)},${y(v).toFixed(1)}` : null)).filter(Boolean).join(' ');
}

function axes(left, right, top, bottom) {
  return [
    svg('line', { x1: left, x2: right, y1: bottom, y2: bottom, class: 'chart-axis' }),
    svg('line', { x1: left, x2: left, y1: top, y2: bottom, class: 'chart-axis' }),
  ];
}

function curveChart(title, fractions, ours, random) {
  const width = 160;
  const height = 104;
  const [left, right, top, bottom] = [22, width - 4, 6, height - 20];
  const x = (f) => left + f * (right - left);
  const y = (p) => bottom - p * (bottom - top);
  return svg('svg', { class: 'checks-curve', 'data-curve': title, width, height, viewBox: `0 0 ${width} ${height}`,
    role: 'img', 'aria-label': `${title} curve` }, [
    ...axes(left, right, top, bottom),
    svg('text', { x: left - 3, y: top + 6, 'text-anchor': 'end', class: 'chart-tick' }, ['1']),
    svg('text', { x: left - 3, y: bottom, 'text-anchor': 'end', class: 'chart-tick' }, ['0']),
    svg('text', { x: left + 4, y: top + 8, class: 'chart-tick' }, [`p(class), ${title}`]),
    svg('polyline', { points: polyline(fractions, random, x, y), class: 'curve-random' }),
    svg('polyline', { points: polyline(fractions, ours, x, y), class: 'curve-map' }),
    svg('text', { x: (left + right) / 2, y: height - 5, 'text-anchor': 'middle', class: 'chart-tick' },
      [`${title === 'deletion' ? 'deleted' : 'revealed'} pixels →`]),
  ]);
}

/** Up to `limit` of `steps` (ascending), evenly spread, the first and the last kept. */
export function trendSteps(steps, limit = TREND_STEPS) {
  if (steps.length <= limit) return steps;
  const picked = new Set();
  for (let k = 0; k < limit; k += 1) picked.add(steps[Math.round((k * (steps.length - 1)) / (limit - 1))]);
  return [...picked];
}

/**
 * The trend per method over the logged steps. `series`: [{method, title, points: [{step, checks}]}], points in
 * step order. Three small charts: mean deletion AUC and mean insertion AUC per method (solid; the random
 * order's dashed), and the mean similarity of the sanity check (the threshold dashed). Null without checks.
 */
export function checksTrend(series, currentStep) {
  const drawn = series.filter((entry) => entry.points.length);
  if (!drawn.length) return null;
  const steps = drawn.flatMap((entry) => entry.points.map((point) => point.step));
  const lo = Math.min(...steps);
  const hi = Math.max(...steps);
  const aucOf = (key) => (checks) => mean((checks[key] || {}).auc);
  const randomOf = (key) => drawn[0].points.map((point) => [point.step, mean((point.checks[key] || {}).auc)]);
  const threshold = drawn[0].points[0].checks.sanity_threshold;
  const charts = [
    trendChart('deletion AUC (lower: faithful)', drawn, aucOf('deletion'), randomOf('random_deletion'), lo, hi, currentStep),
    trendChart('insertion AUC (higher: faithful)', drawn, aucOf('insertion'), randomOf('random_insertion'), lo, hi, currentStep),
    trendChart('similarity when re-drawn (lower: sane)', drawn, (checks) => mean((checks.similarity || []).map(mean)),
      finite(threshold) ? [[lo, threshold], [hi, threshold]] : [], lo, hi, currentStep),
  ];
  const legend = el('div', { className: 'trend-legend' }, drawn.map((entry, k) =>
    el('span', { className: `trend-key trend-${k % 6}`, dataset: { method: entry.method }, text: entry.title })));
  return el('section', { className: 'checks-trend' }, [
    el('h3', { text: `Map checks over training (steps ${lo}–${hi}; dashed: a random order, or the sanity threshold)` }),
    legend,
    el('div', { className: 'checks-trend-charts' }, charts),
  ]);
}

function trendChart(title, series, valueOf, dashed, lo, hi, currentStep) {
  const width = 250;
  const height = 130;
  const [left, right, top, bottom] = [24, width - 6, 6, height - 20];
  const x = (step) => left + (hi > lo ? (step - lo) / (hi - lo) : 0.5) * (right - left);
  const y = (value) => bottom - Math.max(-0.2, Math.min(1, value)) * (bottom - top);
  const parts = [
    ...axes(left, right, top, bottom),
    svg('text', { x: left - 3, y: y(1) + 4, 'text-anchor': 'end', class: 'chart-tick' }, ['1']),
    svg('text', { x: left - 3, y: y(0) + 4, 'text-anchor': 'end', class: 'chart-tick' }, ['0']),
    svg('text', { x: (left + right) / 2, y: height - 5, 'text-anchor': 'middle', class: 'chart-tick' }, [title]),
  ];
  if (finite(currentStep) && currentStep >= lo && currentStep <= hi) {
    parts.push(svg('line', { x1: x(currentStep), x2: x(currentStep), y1: top, y2: bottom, class: 'trend-now' }));
  }
  const kept = dashed.filter(([, v]) => finite(v));
  if (kept.length) parts.push(svg('polyline', { points: kept.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' '), class: 'trend-random' }));
  series.forEach((entry, k) => {
    const values = entry.points.map((point) => [point.step, valueOf(point.checks)]).filter(([, v]) => finite(v));
    parts.push(svg('polyline', { points: values.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
      class: `trend-line trend-${k % 6}`, 'data-method': entry.method }));
    for (const [s, v] of values) {
      parts.push(svg('circle', { cx: x(s).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: `trend-dot trend-${k % 6}` },
        [svg('title', {}, [`${entry.title}, step ${s}: ${fixed(v)}`])]));
    }
  });
  return svg('svg', { class: 'checks-trend-chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title }, parts);
}
