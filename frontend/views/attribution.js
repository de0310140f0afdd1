// The "Where it looks" view: per probe image, the input and beside it each logged attribution map as an
// overlay (heat maps through a colour map, signed maps as they are), and occlusion as a grid of
// probabilities at the occluder's positions. The list in the sidebar switches methods on and off; every
// method shown sits in the same column, each at its latest step at or before the slider's.

import { inferno } from '../colormap.js';
import { classLabel, el, emptyBox, errorBox, extent, formatNumber, hideTooltip, percent, showTooltip } from '../dom.js';
import { atOrBefore, layersOf, pictureUrl, runSteps, sampleAtOrBefore, thinnedNote } from '../samples.js';
import { checksBadge, checksTrend, trendSteps } from './attribution_checks.js';
import { rankingTable } from './attribution_ranking.js';
import { latestReason, stabilityChart, stabilityPoints } from './attribution_stability.js';

const MIN_CELL_PX = 112; // small images are scaled up to at least this
const MAX_CELL_PX = 224;

export default {
  kind: 'attribution',
  title: 'Where it looks',
  noun: 'attribution maps',
  logCalls: ['viz.log_saliency(step, method=...)', 'viz.log_occlusion(step)'],
  listTitle: 'Methods',
  pickMany: true, // the list's items are switched on and off, all shown at once; ctx.items are those on
  itemNoun: 'method',
  itemTitle: methodTitle,
  control,
  load: (ctx) => Promise.all(ctx.items.map((method) => runSteps(ctx, 'attribution', method))),
  stepsOf: (stepLists) => stepLists.filter(Array.isArray).flat(),
  column,
};

/** The toolbar's overlay opacity, for every map on screen (a CSS variable on the tab's root). */
function control({ root }) {
  const opacity = el('input', { attrs: { id: 'overlay-opacity', type: 'range', min: 0, max: 100, step: 5, value: 60,
    'aria-label': 'Overlay opacity' } });
  opacity.addEventListener('input', () => {
    root.style.setProperty('--overlay-opacity', String(Number(opacity.value) / 100));
  });
  return el('label', { className: 'opacity-control', hidden: true }, ['overlay', opacity]);
}

async function column(ctx, stepLists, sliderStep) {
  const names = await ctx.ask('classNames'); // the run's class names, when it logged them (performance view)
  const entries = await Promise.all(ctx.items.map(async (method, i) => {
    const steps = stepLists[i];
    if (steps === null) return { method };
    if (steps instanceof Error) return { method, error: steps.message };
    const step = atOrBefore(steps, sliderStep);
    if (step === undefined) return { method };
    try {
      const at = { model: ctx.model, run: ctx.run, kind: 'attribution', layer: method, step };
      at.sample = await ctx.model.fetchSample(ctx.run, 'attribution', method, step);
      if (names && at.sample.meta && !at.sample.meta.class_names) {
        at.sample = { ...at.sample, meta: { ...at.sample.meta, class_names: names } }; // a copy: the cache keeps its own
      }
      const count = Number(at.sample.meta && at.sample.meta.images) || 0;
      const urls = { input: (n) => pictureUrl(at, n), map: (n) => pictureUrl(at, count + n) };
      return { method, sample: at.sample, urls, stepText: `step ${step}` };
    } catch (error) {
      return { method, error: error.message };
    }
  }));
  const steps = [...new Set(entries.filter((e) => e.sample).map((e) => e.sample.step))].sort((a, b) => a - b);
  const content = attributionView(entries);
  // The maps paint at once; the ranking, the stability curve and the checks trend read up to TREND_STEPS
  // samples a method, so they fill their places when those arrive (a long run need not wait for them).
  const summary = el('div', { className: 'attribution-summary', hidden: true });
  const trend = el('div', { className: 'attribution-trend-slot', hidden: true });
  content.prepend(summary);
  content.append(trend);
  fillSummary(ctx, entries, stepLists, sliderStep, summary, trend);
  // Methods logged together are thinned alike: say it once for the column, as the other views do.
  const thinned = [...new Set(stepLists.map(thinnedNote).filter(Boolean))].join('');
  return { content, stepText: steps.length ? `step ${steps.join(', ')}${thinned}` : '' };
}

/** The ranking table and the stability curve into `summary`, the checks trend into `trend`, when their
 * samples have arrived; a failure there leaves the maps as they are and says so in the slot. */
async function fillSummary(ctx, entries, stepLists, sliderStep, summary, trendSlot) {
  try {
    const [series, rankEntries] = await Promise.all([trendSeries(ctx, entries, stepLists),
      rankingEntries(ctx, entries, sliderStep)]);
    const ranking = rankingTable(rankEntries);
    const logged = series.filter(({ samples }) => samples.length);
    const stability = stabilityChart(logged.map(({ method, title, samples }) =>
      ({ method, title, points: stabilityPoints(samples), reason: latestReason(samples) })), sliderStep);
    const trend = checksTrend(series.map(({ method, title, samples }) => ({ method, title, points: samples
      .filter(({ meta }) => meta.checks && typeof meta.checks === 'object')
      .map(({ step, meta }) => ({ step, checks: meta.checks })) })), sliderStep);
    summary.replaceChildren(...[ranking, stability].filter(Boolean));
    summary.hidden = !(ranking || stability);
    if (trend) trendSlot.replaceChildren(trend);
    trendSlot.hidden = !trend;
  } catch (error) {
    summary.replaceChildren(errorBox(`Could not load the ranking and stability: ${error.message}`));
    summary.hidden = false;
  }
}

/**
 * Each shown method's samples at its logged steps (at most TREND_STEPS of them) as [{step, meta}], for the
 * checks trend and the stability curve.
 */
async function trendSeries(ctx, entries, stepLists) {
  return Promise.all(entries.map(async (entry, i) => {
    const title = methodTitle(entry.method);
    const steps = Array.isArray(stepLists[i]) ? stepLists[i] : [];
    if (!entry.sample || !entry.sample.meta) return { method: entry.method, title, samples: [] };
    const picked = trendSteps([...steps].sort((a, b) => a - b));
    const fetched = await Promise.all(picked.map((step) =>
      ctx.model.fetchSample(ctx.run, 'attribution', entry.method, step).catch(() => null)));
    const samples = fetched.map((sample, k) => ({ step: picked[k], meta: sample && sample.meta }))
      .filter((point) => point.meta && typeof point.meta === 'object');
    return { method: entry.method, title, samples };
  }));
}

/** Every method the run logged (shown or not) at its latest step at or before the slider's: the ranking's. */
async function rankingEntries(ctx, entries, sliderStep) {
  const shown = new Map(entries.filter((entry) => entry.sample).map((entry) => [entry.method, entry.sample]));
  return Promise.all(layersOf(ctx.entry, 'attribution').map(async (method) => {
    const found = shown.has(method) ? null : await sampleAtOrBefore(ctx, 'attribution', method, sliderStep);
    const sample = shown.get(method) || (found && found.sample);
    return { method, title: methodTitle(method), step: sample ? sample.step : null, meta: sample ? sample.meta : null };
  }));
}

const METHOD_TITLES = {
  saliency: 'Saliency',
  deconvnet: 'DeconvNet',
  guided_backprop: 'Guided backprop',
  grad_cam: 'Grad-CAM',
  guided_grad_cam: 'Guided Grad-CAM',
  occlusion: 'Occlusion',
};

/** "smoothgrad(guided_backprop)" -> "Guided backprop + SmoothGrad". */
function methodTitle(name) {
  const smooth = /^smoothgrad\((.*)\)$/.exec(name);
  const base = smooth ? smooth[1] : name;
  return `${METHOD_TITLES[base] ?? base}${smooth ? ' + SmoothGrad' : ''}`;
}

/**
 * One run's maps at one step. `entries`: [{method, sample, error, urls: {input(n), map(n)}, stepText}], in
 * the order to show. Returns the element.
 */
function attributionView(entries) {
  const withData = entries.filter((entry) => entry.sample && entry.sample.meta);
  const errors = entries.filter((entry) => entry.error).map((entry) => errorBox(entry.error, `${methodTitle(entry.method)}: `));
  if (!withData.length) return el('div', { className: 'attribution-view' }, errors.length ? errors : [emptyBox('No maps at or before this step.')]);
  const reference = withData[0];
  const count = Math.max(...withData.map((entry) => Number(entry.sample.meta.images) || 0));
  const flags = withData.flatMap((entry) => nonfiniteNote(entry));
  const rows = Array.from({ length: count }, (_, index) => probeRow(reference, withData, index));
  return el('div', { className: 'attribution-view' }, [...errors, ...flags, el('div', { className: 'attribution-grid' }, rows)]);
}

function cellTitle(text, title = '') {
  return el('div', { className: 'attribution-cell-title', text, title });
}

function nonfiniteNote(entry) {
  const flagged = (entry.sample.meta.nonfinite || []).map((bad, index) => (bad ? index : -1)).filter((index) => index >= 0);
  if (!flagged.length) return [];
  return [el('div', { className: 'note flag-nonfinite',
    text: `${methodTitle(entry.method)}: NaN/Inf in the map of image ${flagged.join(', ')} (drawn as 0)` })];
}

function cellSize(meta) {
  const height = Number(meta.height) || 64;
  const width = Number(meta.width) || 64;
  const scale = Math.min(MAX_CELL_PX / Math.max(height, width), Math.max(1, Math.ceil(MIN_CELL_PX / Math.max(height, width))));
  return { width: Math.round(width * scale), height: Math.round(height * scale), scale };
}

function probeRow(reference, entries, index) {
  const meta = reference.sample.meta;
  const size = cellSize(meta);
  const input = el('img', { className: 'attribution-input', attrs: { alt: `probe image ${index}`, width: size.width,
    height: size.height, draggable: 'false', src: reference.urls.input(index) } });
  const slot = el('div', { className: 'checks-detail-slot' }); // a map's checks detail, across the row
  const cells = entries.map((entry) => mapCell(entry, index, size, slot));
  return el('div', { className: 'attribution-row', dataset: { image: index } }, [
    el('figure', { className: 'attribution-cell', style: { width: `${size.width}px` } }, [cellTitle('input'), input, el('figcaption', {}, classLines(meta, index))]),
    ...cells,
    slot,
  ]);
}

function classLines(meta, index) {
  const label = (meta.labels || [])[index];
  const lines = [el('span', { text: `image ${index}` })];
  if (label !== null && label !== undefined) lines.push(el('span', { className: 'true-label', text: ` · true ${classLabel(meta, label)}` }));
  const predicted = (meta.predicted || [])[index];
  if (predicted !== undefined) {
    const wrong = label !== null && label !== undefined && predicted !== label;
    lines.push(el('span', { className: wrong ? 'predicted wrong' : 'predicted',
      text: ` · predicted ${classLabel(meta, predicted)} (${formatProbability((meta.predicted_probability || [])[index])})` }));
  }
  return lines;
}

function formatProbability(value) {
  return percent(value, '?');
}

function mapCell(entry, index, size, slot) {
  const meta = entry.sample.meta;
  const frame = el('div', { className: 'overlay-frame', style: { width: `${size.width}px`, height: `${size.height}px` } });
  const base = el('img', { className: 'overlay-base', attrs: { alt: '', width: size.width, height: size.height,
    draggable: 'false', src: entry.urls.input(index) } });
  frame.append(base);
  if (meta.style === 'occlusion') frame.append(occlusionLayer(meta, index, size));
  else if (meta.style === 'heat') frame.append(heatLayer(entry.urls.map(index), size));
  else frame.append(el('img', { className: 'overlay-map signed-map', attrs: { alt: `${entry.method} map of image ${index}`,
    width: size.width, height: size.height, draggable: 'false', src: entry.urls.map(index) } }));
  const target = (meta.targets || [])[index];
  const probability = formatProbability((meta.target_probability || [])[index]);
  const caption = el('figcaption', {}, [
    el('span', { className: 'explained-class', text: `map of class ${classLabel(meta, target)} (p\u00a0${probability})`,
      title: `what raises the model's score for class ${classLabel(meta, target)}, whose probability is ${probability}` }),
    meta.style === 'occlusion' ? occlusionLegend(meta, index) : null,
    flatMapNote(meta, index),
  ]);
  return el('figure', { className: 'attribution-cell', dataset: { method: entry.method }, style: { width: `${size.width}px` } },
    [cellTitle(methodTitle(entry.method), entry.stepText), frame, caption, checksBadge(meta.checks, index, slot)]);
}

/**
 * A note under a map that has nothing to show: all zero (a Grad-CAM whose class gradient never reaches the
 * layer's positive part, a saturated saliency) or one value everywhere (an occlusion that changes nothing, the
 * gradient of a model that only averages its input).
 */
function flatMapNote(meta, index) {
  let flat = null;
  if (meta.style === 'occlusion') {
    const { lo, hi } = occlusionRange(((meta.grid && meta.grid.values) || [])[index] || []);
    if (Number.isFinite(lo) && lo === hi) flat = `constant map: occluding any part leaves the probability at ${formatProbability(lo)}`;
  } else if ((meta.scale || [])[index] === 0) {
    flat = meta.method === 'grad_cam' || meta.method === 'guided_grad_cam'
      ? 'all-zero map: no positive Grad-CAM evidence for this class at this layer (not a loading failure)'
      : 'all-zero map: the class score does not change with any input pixel here (not a loading failure)';
  } else if ((meta.constant || [])[index]) {
    flat = 'constant map: every pixel has the same value, so it ranks no part of the image above another';
  }
  return flat ? el('div', { className: 'note flat-map', text: flat }) : null;
}

function occlusionLegend(meta, index) {
  const { lo, hi } = occlusionRange(((meta.grid.values || [])[index]) || []);
  return el('span', { className: 'occlusion-grid-info', text: ` · ${meta.grid.window}px window, stride ${meta.grid.stride}; `
    + `dark ${formatProbability(lo)} … bright ${formatProbability(hi)}` });
}

// A grey PNG drawn through the colour map onto a canvas (the PNG comes from the plugin's own route, so the
// canvas stays readable under TensorBoard's content security policy).
function heatLayer(url, size) {
  const canvas = el('canvas', { className: 'overlay-map heat-map', attrs: { width: size.width, height: size.height } });
  const picture = new Image();
  picture.addEventListener('load', () => {
    const scratch = document.createElement('canvas');
    scratch.width = picture.naturalWidth;
    scratch.height = picture.naturalHeight;
    const context = scratch.getContext('2d');
    context.drawImage(picture, 0, 0);
    inferno.apply(context, scratch.width, scratch.height);
    const target = canvas.getContext('2d');
    target.imageSmoothingEnabled = false;
    target.drawImage(scratch, 0, 0, canvas.width, canvas.height);
    canvas.dataset.drawn = 'true';
  });
  picture.addEventListener('error', () => { canvas.dataset.drawn = 'error'; canvas.title = 'the map could not be loaded'; });
  picture.src = url;
  return canvas;
}

// Each occluder position gets the stride-sized square around the occluder's centre, so the grid sits at
// the image's scale; hovering shows the occluder and the probability with it there.
function occlusionLayer(meta, index, size) {
  const grid = meta.grid || {};
  const values = ((grid.values || [])[index]) || [];
  const canvas = el('canvas', { className: 'overlay-map occlusion-map', attrs: { width: size.width, height: size.height } });
  const context = canvas.getContext('2d');
  const s = size.scale;
  const offset = (grid.window - grid.stride) / 2;
  const { lo, hi } = occlusionRange(values);
  values.forEach((row, i) => row.forEach((value, j) => {
    context.fillStyle = typeof value === 'number' ? inferno.css((value - lo) / Math.max(hi - lo, 1e-12)) : '#7b1fa2';
    context.fillRect((j * grid.stride + offset) * s, (i * grid.stride + offset) * s, grid.stride * s, grid.stride * s);
  }));
  canvas.dataset.drawn = 'true';
  const box = el('div', { className: 'occluder-box', hidden: true });
  const layer = el('div', { className: 'occlusion-layer' }, [canvas, box]);
  const unoccluded = (meta.target_probability || [])[index];
  layer.addEventListener('mousemove', (event) => {
    const rect = canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) / s;
    const y = (event.clientY - rect.top) / s;
    const i = clampIndex(Math.floor((y - offset) / grid.stride), values.length);
    const j = clampIndex(Math.floor((x - offset) / grid.stride), (values[0] || []).length);
    if (i < 0 || j < 0) return;
    Object.assign(box.style, { left: `${j * grid.stride * s}px`, top: `${i * grid.stride * s}px`,
      width: `${grid.window * s}px`, height: `${grid.window * s}px` });
    box.hidden = false;
    const value = values[i][j];
    showTooltip(event, [
      `occluder at row ${i * grid.stride}, column ${j * grid.stride} (${grid.window}×${grid.window} px, fill ${formatNumber(grid.fill)})`,
      `p(class ${(meta.targets || [])[index]}) = ${formatProbability(value)}`,
      `unoccluded: ${formatProbability(unoccluded)}`,
    ], typeof value === 'number' ? [] : ['NaN']);
  });
  layer.addEventListener('mouseleave', () => { box.hidden = true; hideTooltip(); });
  return layer;
}

/** The colour scale of one occlusion map: its own lowest (dark) to highest (bright) probability. */
function occlusionRange(values) {
  const [lo, hi] = extent(values.flat()) || [0, 1];
  return { lo, hi };
}

function clampIndex(index, length) {
  if (!length) return -1;
  return Math.max(0, Math.min(length - 1, index));
}
