// Images made by the network: representation inversions (the original beside its reconstructions from
// shallow to deep layers, each with its code-error curve), class models as a labelled grid, and channel
// visualisations beside the same channel's filter and top patches when those are logged.
// DOM and SVG only; index.js fetches. Names from event files are text, never markup.

import { patchCanvas } from './top.js';
import { el, emptyBox, formatNumber } from './views.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const PICTURE_PX = 96;
const SPARK = { width: 96, height: 28 };

function picture(url, title, size = PICTURE_PX) {
  return el('img', { className: 'synth-picture', title, attrs: { src: url, alt: title, width: size, height: size, decoding: 'async' } });
}

function figure(url, title, captionLines, extra = null) {
  return el('figure', { className: 'synth-figure' }, [
    picture(url, title),
    el('figcaption', {}, captionLines.map((line, i) => el('div', { className: i ? 'synth-detail' : 'synth-name', text: line }))),
    extra,
  ]);
}

function numbers(values) {
  return Array.isArray(values) ? values.map(Number).filter(Number.isFinite) : [];
}

/** A tiny line chart of an optimisation's per-step values (log scale: errors fall by decades). */
function sparkline(values, label) {
  const points = numbers(values).map((value) => Math.log10(Math.max(value, 1e-6)));
  const node = document.createElementNS(SVG_NS, 'svg');
  node.setAttribute('class', 'synth-spark');
  node.setAttribute('width', String(SPARK.width));
  node.setAttribute('height', String(SPARK.height));
  node.setAttribute('role', 'img');
  node.setAttribute('aria-label', label);
  if (points.length < 2) return node;
  const lo = Math.min(...points);
  const hi = Math.max(...points);
  const y = (v) => (hi > lo ? (hi - v) / (hi - lo) : 0.5) * (SPARK.height - 4) + 2;
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('points', points.map((v, i) => `${(i / (points.length - 1)) * SPARK.width},${y(v)}`).join(' '));
  node.append(line);
  return node;
}

function percent(value) {
  return typeof value === 'number' && Number.isFinite(value) ? `${(100 * value).toFixed(1)}%` : '–';
}

/** `urls[i]` is the i-th picture of the sample: the original, then one reconstruction per layer. */
export function inversionView(sample, urls) {
  const meta = sample.meta || {};
  const layers = Array.isArray(meta.layers) ? meta.layers : [];
  if (!layers.length) return emptyBox('No layers in this inversion.');
  const label = meta.label !== null && meta.label !== undefined ? `label ${meta.label}` : '';
  const figures = [figure(urls[0], 'original', ['original', label])];
  layers.forEach((layer, i) => {
    const error = (meta.code_error || [])[i];
    const r = (meta.correlation || [])[i];
    const seconds = (meta.seconds || [])[i];
    figures.push(figure(urls[i + 1], `reconstruction from ${layer}`, [
      String(layer),
      `code error ${percent(error)} · r ${formatNumber(r)}`,
      typeof seconds === 'number' ? `${seconds.toFixed(1)} s` : '',
    ], sparkline((meta.curves || [])[i], `code error of ${layer} over ${meta.steps} steps`)));
  });
  return el('div', { className: 'synth-view' }, [
    el('div', { className: 'note sample-meta', text: `Reconstructed from each layer's code (Mahendran & Vedaldi), shallow to deep, `
      + `${meta.steps} steps each; r is the correlation with the original, the curve the relative code error per step.` }),
    el('div', { className: 'synth-row inversion-row' }, figures),
  ]);
}

export function classModelsView(sample, urls) {
  const meta = sample.meta || {};
  const classes = Array.isArray(meta.classes) ? meta.classes : [];
  if (!classes.length) return emptyBox('No classes in this sample.');
  const names = Array.isArray(meta.class_names) ? meta.class_names : [];
  const figures = classes.map((value, i) => {
    const name = typeof names[i] === 'string' ? names[i] : String(value);
    const predicted = (meta.predicted || [])[i];
    const lines = [name, `p ${percent((meta.probability || [])[i])} · score ${formatNumber((meta.score || [])[i])}`];
    if (predicted !== undefined && predicted !== value) {
      lines.push(`seen as ${typeof names[classes.indexOf(predicted)] === 'string' ? names[classes.indexOf(predicted)] : predicted}`);
    }
    return figure(urls[i], `class model of ${name}`, lines);
  });
  return el('div', { className: 'synth-view' }, [
    el('div', { className: 'note sample-meta', text: `Inputs that maximise each class score with L2 regularisation `
      + `(Simonyan et al.), ${meta.steps} steps; p is the softmax probability the network gives the image.` }),
    el('div', { className: 'synth-grid' }, figures),
  ]);
}

/**
 * `context.top`: {sample, sprite, step} of the same layer's top patches at or before this step, or null;
 * `context.loadFilter(layer, filter)`: a promise of the filter's tile (or null).
 */
export function channelVisView(sample, urls, context = {}) {
  const meta = sample.meta || {};
  const channels = Array.isArray(meta.channels) ? meta.channels : [];
  if (!channels.length) return emptyBox('No channels in this sample.');
  const top = context.top || null;
  const topUnits = top && top.sample.meta && Array.isArray(top.sample.meta.units) ? top.sample.meta.units : [];
  const rows = channels.map((channel, i) => {
    const parts = [figure(urls[i], `channel ${channel}`, [`channel ${channel}`,
      `mean activation ${formatNumber((meta.activation || [])[i])}`])];
    if (meta.filter_layer && context.loadFilter) {
      const slot = el('div', { className: 'synth-filter', title: `filter ${channel} of ${meta.filter_layer}` });
      context.loadFilter(meta.filter_layer, channel).then((tile) => { if (tile) slot.append(tile); });
      parts.push(slot);
    }
    const row = topUnits.findIndex((unit) => unit && unit.unit === channel && top.sample.meta.axes !== 'directions');
    if (row >= 0) {
      const unit = topUnits[row];
      parts.push(el('div', { className: 'top-patches synth-top', title: `top patches of channel ${channel} at step ${top.step}` },
        (unit.images || []).map((image, slot) => patchCanvas(top.sample.meta, top.sprite, row, slot, 40,
          `image ${image}, activation ${formatNumber(unit.values[slot])}`))));
    }
    return el('div', { className: 'synth-channel', dataset: { channel } }, parts);
  });
  const linked = [meta.filter_layer && context.loadFilter ? `its filter in ${meta.filter_layer}` : null,
    topUnits.length ? `its top patches (step ${top.step})` : null].filter(Boolean);
  return el('div', { className: 'synth-view' }, [
    el('div', { className: 'note sample-meta', text: `Inputs that maximise each channel's mean activation (Fourier `
      + `parameterisation with jitter), ${meta.steps} steps${linked.length ? `; beside each, ${linked.join(' and ')}` : ''}.` }),
    el('div', { className: 'synth-channels' }, rows),
  ]);
}
