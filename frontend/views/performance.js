// The "Where it fails" view: accuracy by class, the confusion matrix (a click shows the most confidently
// wrong examples of that confusion), accuracy against each image attribute with its Wilson band and counts,
// and the reliability diagram. Over many classes (ImageNet's 1000), where the matrix is too big to draw, the most
// confused class pairs as a ranked list (Russakovsky et al.'s ILSVRC analysis) and the per-class figures as a
// table sorted by any column and searched by name; which classes got a PR curve in TensorBoard's PR Curves tab,
// and why. DOM and SVG only. Class names are text, never markup.

import { inferno } from '../colormap.js';
import { ACCENT, asArray, classLabel as className, drawSpriteCell, el, emptyBox, formatNumber, hideTooltip, percent, plural,
  showTooltip, svg } from '../dom.js';
import { layersOf, picture, sampleView } from '../samples.js';
import { classBars, classCount, classTable } from './performance_table.js';

const CELL_PX = 22;
const THUMB_PX = 48;
/** Up to this many classes, accuracy by class is a bar per class; above, a sortable, searchable table. */
const CLASS_BARS_UP_TO = 20;
const CHART = { width: 300, height: 150, left: 34, right: 8, top: 8, bottom: 34 };
// The attribute charts have two rows under the plot: the bins' values and their counts.
const ATTRIBUTE_CHART = { ...CHART, height: 172, bottom: 56, right: 22 }; // room for the last edge's value
// A label's width in px, estimated from its length at the charts' 10 px font (no layout needed to thin them).
const labelWidth = (text) => 6 * String(text).length + 6;

/** Of `labels` spaced `spacing` px apart, the indices to draw: every k-th, so that none overlaps the next. */
function fitting(labels, spacing) {
  const every = Math.max(1, Math.ceil(Math.max(0, ...labels.map(labelWidth)) / Math.max(1, spacing)));
  return labels.map((_, i) => i).filter((i) => i % every === 0);
}

export default sampleView({
  kind: 'performance',
  title: 'Where it fails',
  noun: 'accuracy views',
  logCalls: ['viz.log_performance(data, step)'],
  listTitle: 'Data sets',
  content,
  provides: { classNames },
});

/**
 * The run's class names, for the views that show classes by number (ctx.ask('classNames')): those its latest
 * accuracy view of a data set was logged with (log_performance(..., class_names=...)); null when none has them.
 */
async function classNames(ctx) {
  for (const name of layersOf(ctx.entry, 'performance')) {
    try {
      const reply = await ctx.model.fetchSteps(ctx.entry.run, 'performance', name);
      const names = reply && reply.latest && reply.latest.meta && reply.latest.meta.class_names;
      if (Array.isArray(names) && names.length) return names.map(String);
    } catch {
      // another data set may have them
    }
  }
  return null;
}

/** The sample's pictures: a sprite of thumbnails of wrong examples, then their saliency maps (both optional). */
async function content(ctx) {
  const load = async (index) => (Number(ctx.sample.images) <= index ? null : picture(ctx, index));
  const [thumbnails, saliency] = await Promise.all([load(0), load(1)]);
  return performanceView(ctx.sample, { thumbnails, saliency }, ctx.store);
}

/** White (0) to deep orange (1): a light scale, so that the many empty cells of a confusion stay quiet. */
function shareColor(share) {
  const t = Math.max(0, Math.min(1, share));
  const [r, g, b] = [255 + t * (230 - 255), 255 + t * (81 - 255), 255 + t * (0 - 255)];
  return `rgb(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)})`;
}

function section(title, content, className = '') {
  return el('section', { className: `perf-section ${className}`.trim() }, [el('h4', { text: title }), content]);
}

/**
 * One run's accuracy views at one step. `sprites` = {thumbnails, saliency}: decoded sprites (ImageBitmaps),
 * Errors, or null; `store`: the view's state for the tab (the per-class table's sort and search).
 */
function performanceView(sample, sprites, store) {
  const meta = sample.meta || {};
  const parts = [el('div', { className: 'note sample-meta', text: headline(meta) })];
  if (meta.pr_curves) parts.push(prCurvesNote(meta, sample));
  if (meta.why_empty) parts.push(emptyBox(`No accuracy views: ${meta.why_empty}.`));
  if (Array.isArray(meta.confusion)) parts.push(confusionSection(meta, sprites));
  else if (Array.isArray(meta.confused_pairs)) parts.push(confusedPairsSection(meta, sprites));
  else if (meta.per_class) parts.push(el('div', { className: 'note', text: `The confusion matrix is left out above 100 classes (${meta.classes} here).` }));
  if (meta.per_class && classCount(meta) <= CLASS_BARS_UP_TO) parts.push(section('Accuracy by class, worst first', classBars(meta)));
  else if (meta.per_class) parts.push(section(`Per class (${classCount(meta)} classes)`, classTable(meta, store), 'class-table-section'));
  const attributes = Object.entries(meta.attributes || {});
  if (attributes.length) {
    parts.push(section(meta.why_empty ? 'Attributes (counts)' : 'Accuracy by image attribute',
      el('div', { className: 'attribute-charts' }, attributes.map(([name, binned]) => attributeChart(name, binned, meta, sprites)))));
  }
  if (meta.calibration) parts.push(section(`Reliability (ECE ${percent(meta.calibration.ece)})`, reliabilityChart(meta.calibration)));
  return el('div', { className: 'performance-view' }, parts);
}

function headline(meta) {
  const parts = [];
  if (typeof meta.top1 === 'number') parts.push(`top-1 ${percent(meta.top1)}`);
  for (const [k, value] of Object.entries(meta.topk || {})) if (k === '5') parts.push(`top-5 ${percent(value)}`);
  parts.push(`${meta.examples ?? '?'} examples (${meta.labelled ?? 0} labelled)`);
  parts.push(`${meta.classes ?? '?'} classes`);
  return parts.join(' · ');
}

/* ------------------------------------------------------------------ confusion */

function confusionSection(meta, sprites) {
  const matrix = meta.confusion;
  const classes = matrix.length;
  const examples = el('div', { className: 'confusion-examples' }, [
    el('div', { className: 'note', text: 'Click a cell to see the most confidently wrong examples of that confusion.' })]);
  const grid = el('div', { className: 'confusion-grid', style: {
    gridTemplateColumns: `auto repeat(${classes}, ${CELL_PX}px)` } });
  grid.append(el('div', { className: 'confusion-corner', text: 'true \\ predicted' }));
  for (let j = 0; j < classes; j += 1) grid.append(el('div', { className: 'confusion-col-label', text: className(meta, j), title: className(meta, j) }));
  matrix.forEach((row, i) => {
    const total = row.reduce((sum, value) => sum + value, 0);
    grid.append(el('div', { className: 'confusion-row-label', text: className(meta, i), title: className(meta, i) }));
    row.forEach((count, j) => {
      const share = total ? count / total : 0;
      const cell = el('button', { className: `confusion-cell${i === j ? ' diagonal' : ''}`,
        dataset: { row: i, col: j, count },
        attrs: { type: 'button', 'aria-label': `true ${className(meta, i)}, predicted ${className(meta, j)}: ${count}` },
        style: { background: shareColor(share), color: share > 0.55 ? '#fff' : '#212121' },
        text: count ? String(count) : '' });
      cell.addEventListener('mousemove', (event) => showTooltip(event, [
        `true ${className(meta, i)} → predicted ${className(meta, j)}`,
        `${count} of ${total} (${percent(share)} of the row)`]));
      cell.addEventListener('mouseleave', hideTooltip);
      cell.addEventListener('click', () => {
        for (const other of grid.querySelectorAll('.confusion-cell.selected')) other.classList.remove('selected');
        cell.classList.add('selected');
        examples.replaceChildren(confusionExamples(meta, sprites, i, j, count));
      });
      grid.append(cell);
    });
  });
  return section('Confusion (row: true class; colour: share of the row)', el('div', {}, [grid, examples]), 'confusion-section');
}

function confusionExamples(meta, sprites, row, col, count) {
  const title = `true ${className(meta, row)} → predicted ${className(meta, col)} (${count})`;
  if (row === col) return el('div', { className: 'note', text: `${title}: right answers; thumbnails are kept for mistakes only.` });
  const wanted = wrongExamples(meta).filter((example) => example.label === row && example.predicted === col);
  if (!wanted.length) {
    return el('div', { className: 'note', text: `${title}: none of them among the ${wrongExamples(meta).filter((e) => e.label === row).length} `
      + `most confidently wrong examples kept for class ${className(meta, row)}.` });
  }
  return el('div', {}, [el('div', { className: 'examples-title', text: title }), thumbnailStrip(meta, sprites, wanted)]);
}

function wrongExamples(meta) {
  return (meta.wrong && Array.isArray(meta.wrong.examples)) ? meta.wrong.examples : [];
}

function thumbnailStrip(meta, sprites, examples) {
  const withSaliency = Boolean(meta.wrong && meta.wrong.saliency);
  return el('div', { className: 'thumbnail-strip' }, examples.map((example) => {
    const canvas = el('canvas', { className: 'wrong-thumbnail', attrs: { width: THUMB_PX, height: THUMB_PX },
      dataset: { index: example.index } });
    drawTile(canvas, sprites.thumbnails, meta.wrong.layout, example.tile);
    const pictures = [canvas];
    if (withSaliency) {
      const heat = el('canvas', { className: 'wrong-saliency', attrs: { width: THUMB_PX, height: THUMB_PX },
        title: `saliency of ${className(meta, example.predicted)}: what made it say so`, dataset: { index: example.index } });
      drawTile(heat, sprites.saliency, meta.wrong.layout, example.tile, true);
      pictures.push(heat);
    }
    return el('figure', { className: 'wrong-example' }, [el('div', { className: 'wrong-pictures' }, pictures), el('figcaption', {
      text: `#${example.index}: ${className(meta, example.predicted)} (${percent(example.confidence)}), true ${className(meta, example.label)}` })]);
  }));
}

function drawTile(canvas, sprite, layout, tile, heat = false) {
  const context = canvas.getContext('2d');
  if (!sprite || sprite instanceof Error || !layout) {
    context.fillStyle = '#eee';
    context.fillRect(0, 0, canvas.width, canvas.height);
    canvas.title = sprite instanceof Error ? sprite.message : 'no thumbnail';
    return;
  }
  context.imageSmoothingEnabled = false;
  drawSpriteCell(context, sprite, layout, Math.floor(tile / layout.cols), tile % layout.cols, 0, 0, canvas.width, canvas.height);
  if (heat) inferno.apply(context, canvas.width, canvas.height);
  canvas.dataset.drawn = 'true';
}

/* ------------------------------------------------------------------ many classes: confused pairs, PR curves */

/**
 * The most confused (true, predicted) pairs, most examples first, as logged in `confused_pairs`: the list to read
 * when a 1000 x 1000 matrix is too big to draw. A click shows the pair's most confidently wrong examples.
 */
function confusedPairsSection(meta, sprites) {
  const pairs = meta.confused_pairs.filter((pair) => pair && typeof pair.true === 'number' && typeof pair.predicted === 'number');
  const left = `The confusion matrix is left out above 100 classes (${meta.classes} here)`;
  if (!pairs.length) return section('Most confused classes', el('div', { className: 'note', text: `${left}; no example was confused.` }));
  const intro = `${left}: the ${plural(pairs.length, 'pair')} of classes confused most often instead, most examples first. `
    + 'Click one to see its most confidently wrong examples.';
  const examples = el('div', { className: 'confusion-examples' });
  const list = el('ol', { className: 'confused-pairs' }, pairs.map((pair, rank) => {
    const button = el('button', { className: 'confused-pair', attrs: { type: 'button' },
      dataset: { true: pair.true, predicted: pair.predicted, count: pair.count } }, [
      el('span', { className: 'pair-rank', text: `${rank + 1}.` }),
      el('span', { className: 'pair-classes' }, [
        el('span', { className: 'pair-true', text: className(meta, pair.true) }),
        el('span', { className: 'pair-arrow', text: ' → ' }),
        el('span', { className: 'pair-predicted', text: className(meta, pair.predicted) })]),
      el('span', { className: 'pair-count', text: plural(pair.count, 'example') }),
      el('span', { className: 'pair-share', text: `${percent(pair.share)} of ${className(meta, pair.true)}`,
        title: `share of the examples of ${className(meta, pair.true)} called ${className(meta, pair.predicted)}` }),
    ]);
    button.addEventListener('click', () => {
      for (const other of list.querySelectorAll('.confused-pair.selected')) other.classList.remove('selected');
      button.classList.add('selected');
      examples.replaceChildren(confusionExamples(meta, sprites, pair.true, pair.predicted, pair.count));
    });
    return el('li', {}, [button]);
  }));
  return section('Most confused classes (true → predicted)', el('div', {}, [
    el('div', { className: 'note', text: intro }), list, examples]), 'confused-pairs-section');
}

/**
 * Which classes got a PR curve in TensorBoard's PR Curves tab (`pr_curves`): every class when there are few, else
 * the worst by accuracy and the most frequent, and the micro-average over every class.
 */
function prCurvesNote(meta, sample) {
  const chosen = meta.pr_curves;
  const worst = asArray(chosen.worst);
  const frequent = asArray(chosen.most_frequent);
  const classes = asArray(chosen.classes);
  const of = chosen.of ?? meta.classes;
  const names = (list, why) => list.flatMap((c, i) => [i ? ', ' : '',
    el('span', { className: 'pr-class', dataset: { class: c, why }, text: className(meta, c) })]);
  const prefix = typeof sample.model === 'string' && sample.model ? `cnnviz.${sample.model}` : 'cnnviz';
  const tags = `${prefix}/pr_curve/${sample.layer ?? meta.layer}`; // as metadata.tag_prefix and views/performance.py write them
  const parts = ['PR curves in TensorBoard\'s PR Curves tab: '];
  if (!worst.length && !frequent.length) {
    parts.push(classes.length === of ? `every class (${of})` : `${classes.length} of ${of} classes`);
  } else {
    parts.push(`${classes.length} of ${of} classes, `);
    if (worst.length) parts.push(`the ${worst.length} worst by accuracy (`, ...names(worst, 'worst'), ')');
    if (worst.length && frequent.length) parts.push(' and ');
    if (frequent.length) parts.push(`the ${frequent.length} most frequent (`, ...names(frequent, 'most_frequent'), ')');
  }
  if (chosen.micro) parts.push(`, plus the micro-average over all ${of} (${tags}/micro)`);
  parts.push('.');
  return el('div', { className: 'note pr-curves-note', title: `tags ${tags}/<class index> and ${tags}/micro` }, parts);
}

/* ------------------------------------------------------------------ attributes */

/**
 * The bins' values under the plot: a categorical bin's value at its centre; quantile bins' edges at their
 * boundaries. Thinned to every k-th where they would run together (the tooltip names every bin).
 */
function binValueLabels(chart, bins, x, step, y) {
  const ranged = bins.length && bins.every((bin) => Array.isArray(bin.bin));
  const labels = ranged ? [...bins.map((bin) => formatNumber(bin.bin[0])), formatNumber(bins[bins.length - 1].bin[1])]
    : bins.map((bin) => String(bin.bin));
  const at = (i) => (ranged ? x(i) - step / 2 : x(i));
  for (const i of fitting(labels, step)) {
    chart.append(svg('text', { x: at(i), y, 'text-anchor': 'middle', class: 'chart-tick bin-value' }, [labels[i]]));
  }
}

function binLabel(bin) {
  if (Array.isArray(bin.bin)) return `${formatNumber(bin.bin[0])}–${formatNumber(bin.bin[1])}`;
  return String(bin.bin);
}

function attributeChart(name, binned, meta, sprites) {
  const bins = Array.isArray(binned.bins) ? binned.bins : [];
  const { width, height, left, right, top, bottom } = ATTRIBUTE_CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const step = bins.length ? plotWidth / bins.length : plotWidth;
  const x = (i) => left + step * (i + 0.5);
  const y = (value) => top + plotHeight * (1 - value);
  const chart = svg('svg', { class: 'attribute-chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `accuracy by ${name}` });
  for (const tick of [0, 0.5, 1]) {
    chart.append(svg('line', { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: 'chart-grid' }));
    chart.append(svg('text', { x: left - 4, y: y(tick) + 3, 'text-anchor': 'end', class: 'chart-tick' }, [`${tick * 100}%`]));
  }
  const labelled = !meta.why_empty;
  const maxCount = Math.max(1, ...bins.map((bin) => bin.count));
  bins.forEach((bin, i) => {
    if (labelled && bin.count) {
      chart.append(svg('rect', { x: x(i) - step * 0.3, width: step * 0.6, y: y(bin.high), height: Math.max(1, y(bin.low) - y(bin.high)),
        class: 'wilson-band' }));
      chart.append(svg('circle', { cx: x(i), cy: y(bin.accuracy), r: 3, class: 'bin-accuracy', 'data-bin': i }));
    } else if (!labelled) {
      const barHeight = plotHeight * bin.count / maxCount;
      chart.append(svg('rect', { x: x(i) - step * 0.3, width: step * 0.6, y: top + plotHeight - barHeight, height: barHeight, class: 'count-bar' }));
    }
  });
  binValueLabels(chart, bins, x, step, height - bottom + 15);
  const counts = bins.map((bin) => String(bin.count));
  chart.append(svg('text', { x: left - 4, y: height - bottom + 29, 'text-anchor': 'end', class: 'chart-count' }, ['n']));
  for (const i of fitting(counts, step)) {
    chart.append(svg('text', { x: x(i), y: height - bottom + 29, 'text-anchor': 'middle', class: 'chart-count' }, [counts[i]]));
  }
  if (labelled) {
    const points = bins.map((bin, i) => (bin.count ? `${x(i)},${y(bin.accuracy)}` : null)).filter(Boolean);
    if (points.length > 1) chart.insertBefore(svg('polyline', { points: points.join(' '), class: 'bin-line' }), chart.querySelector('circle'));
  }
  chart.append(svg('text', { x: left + plotWidth / 2, y: height - 4, 'text-anchor': 'middle', class: 'chart-axis' },
    [binned.kind === 'categorical' ? `${name} (by value)` : `${name} (quantile bins)`]));
  chart.addEventListener('mousemove', (event) => {
    const box = chart.getBoundingClientRect();
    const i = Math.floor((event.clientX - box.left - left) / step);
    const bin = bins[i];
    if (!bin) return hideTooltip();
    return showTooltip(event, labelled ? [
      `${name} ${binLabel(bin)}`, `accuracy ${percent(bin.accuracy)} (${bin.correct} of ${bin.count})`,
      `95% Wilson interval ${percent(bin.low)} – ${percent(bin.high)}`] : [`${name} ${binLabel(bin)}`, `${bin.count} examples`]);
  });
  chart.addEventListener('mouseleave', hideTooltip);
  const notes = [];
  if (binned.excluded) notes.push(el('div', { className: 'note', text: `${binned.excluded} example(s) without a value (NaN) left out` }));
  const worst = meta.worst_bins && meta.worst_bins[name];
  if (worst && worst.tiles && worst.tiles.length) {
    const examples = wrongExamples(meta).filter((example) => worst.tiles.includes(example.tile));
    notes.push(el('div', { className: 'examples-title', text: `wrong in the worst bin (${binLabel(bins[worst.bin])})` }));
    notes.push(thumbnailStrip(meta, sprites, examples));
  }
  return el('figure', { className: 'attribute-figure', dataset: { attribute: name } }, [
    el('figcaption', { text: name }), chart, ...notes]);
}

/* ------------------------------------------------------------------ calibration */

function reliabilityChart(calibration) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const edges = calibration.edges || [];
  const chart = svg('svg', { class: 'reliability-chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': 'reliability diagram' });
  const x = (value) => left + plotWidth * value;
  const y = (value) => top + plotHeight * (1 - value);
  chart.append(svg('line', { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: 'chart-diagonal' }));
  (calibration.accuracy || []).forEach((accuracy, i) => {
    if (typeof accuracy !== 'number') return;
    chart.append(svg('rect', { x: x(edges[i]) + 1, width: Math.max(1, x(edges[i + 1]) - x(edges[i]) - 2), y: y(accuracy),
      height: y(0) - y(accuracy), class: 'reliability-bar', fill: ACCENT }));
  });
  for (const tick of [0, 0.5, 1]) {
    chart.append(svg('text', { x: left - 4, y: y(tick) + 3, 'text-anchor': 'end', class: 'chart-tick' }, [`${tick * 100}%`]));
    const anchor = tick === 1 ? 'end' : tick === 0 ? 'start' : 'middle'; // '100%' stays inside the chart
    chart.append(svg('text', { x: x(tick), y: height - bottom + 12, 'text-anchor': anchor, class: 'chart-tick' }, [`${tick * 100}%`]));
  }
  chart.append(svg('text', { x: left + plotWidth / 2, y: height - 4, 'text-anchor': 'middle', class: 'chart-axis' },
    ['confidence (bars: accuracy; line: perfect calibration)']));
  return chart;
}
