// The "Inversion" view: a probe image beside its reconstructions from shallow to deep layers' codes (Mahendran
// & Vedaldi), each with its code-error curve over the optimisation.

import { classLabel, el, emptyBox, formatNumber, percent, pictureFigure, svg } from '../dom.js';
import { pictureUrls, sampleView } from '../samples.js';

const SPARK = { width: 96, height: 28 };

export default sampleView({
  kind: 'inversion',
  title: 'Inversion',
  noun: 'inversions',
  logCalls: ['viz.log_inversion(step)'],
  listTitle: 'Images',
  content: async (ctx) => inversionView(ctx.sample, pictureUrls(ctx), await ctx.ask('classNames')),
});

/** A tiny line chart of an optimisation's per-step values (log scale: errors fall by decades). */
function sparkline(values, label) {
  const points = (Array.isArray(values) ? values.map(Number).filter(Number.isFinite) : [])
    .map((value) => Math.log10(Math.max(value, 1e-6)));
  const node = svg('svg', { class: 'synth-spark', width: SPARK.width, height: SPARK.height, role: 'img', 'aria-label': label });
  if (points.length < 2) return node;
  const lo = Math.min(...points);
  const hi = Math.max(...points);
  const y = (v) => (hi > lo ? (hi - v) / (hi - lo) : 0.5) * (SPARK.height - 4) + 2;
  node.append(svg('polyline', { points: points.map((v, i) => `${(i / (points.length - 1)) * SPARK.width},${y(v)}`).join(' ') }));
  return node;
}

/**
 * `urls[i]` is the i-th picture of the sample: the original, then one reconstruction per layer; `classNames`:
 * the run's, when it logged them (its label is then named).
 */
function inversionView(sample, urls, classNames = null) {
  const meta = sample.meta || {};
  const layers = Array.isArray(meta.layers) ? meta.layers : [];
  if (!layers.length) return emptyBox('No layers in this inversion.');
  const label = meta.label !== null && meta.label !== undefined ? `label ${classLabel({ class_names: classNames }, meta.label)}` : '';
  const figures = [pictureFigure(urls[0], 'original', ['original', label])];
  layers.forEach((layer, i) => {
    const error = (meta.code_error || [])[i];
    const r = (meta.correlation || [])[i];
    const seconds = (meta.seconds || [])[i];
    figures.push(pictureFigure(urls[i + 1], `reconstruction from ${layer}`, [
      String(layer),
      `code error ${percent(error)} · r ${formatNumber(r)}`,
      typeof seconds === 'number' ? `${seconds.toFixed(1)} s` : '',
    ], sparkline((meta.curves || [])[i], `code error of ${layer} over ${meta.steps} steps`)));
  });
  return el('div', { className: 'synth-view' }, [
    el('div', { className: 'note sample-meta', text: `Reconstructed from each layer's code (Mahendran & Vedaldi), shallow to deep, `
      + `${meta.steps} steps${meta.max_steps > meta.steps ? ` of at most ${meta.max_steps}` : ''} each; r is the correlation with the original, the curve the relative code error per step.` }),
    el('div', { className: 'synth-row inversion-row' }, figures),
  ]);
}
