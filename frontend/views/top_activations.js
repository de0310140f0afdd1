// The "Top patches" view: per channel (or random direction) of a layer, the input patches of the k images
// that activate it most, as a browsable grid; a click opens the unit: bigger patches, their activation
// values, which image and where, its filter when another view provides it (ctx.ask('filterTile')), and the
// channel's flag (its off rate, and what an off channel is called) when another view provides it (ctx.ask('channelFlags')). It provides
// other views a layer's top patches (topPatches). A layer's relevance ranking, when logged too, shows beside
// its activation ranking: per channel what it fires on and what it matters for (views/top_relevance.js).

import { drawSpriteCell, el, emptyBox, formatNumber } from '../dom.js';
import { gatesNote, picture, sampleAtOrBefore, sampleView } from '../samples.js';
import {
  detailTitle, isRelevance, loadPair, pairedUnit, rankingBlock, rankingNote, slotText,
} from './top_relevance.js';

const PATCH_PX = 40;
const DETAIL_PX = 112;

export default sampleView({
  kind: 'top_activations',
  title: 'Top patches',
  noun: 'top patches',
  logCalls: ['viz.log_top_activations(data, layer, step)',
    'viz.log_top_activations(data, layer, step, rank="relevance")'],
  content,
  provides: { topPatches },
});

async function content(ctx) {
  const { entry, sample, step } = ctx;
  const sprite = await picture(ctx, 0);
  let whole = null;
  if (Number(sample.images) > 1) {
    whole = await picture(ctx, 1);
    if (whole instanceof Error) whole = null; // the whole images are an extra: the patches still show
  }
  const flags = await ctx.ask('channelFlags', sample.meta && sample.meta.source_layer, step);
  const pair = await loadPair(ctx, sample.meta, step);
  const loadFilter = (filterLayer, filter) => ctx.ask('filterTile', filterLayer, step, filter);
  return topView(sample, sprite, flags, whole, loadFilter, pair);
}

/**
 * A layer's top patches at or before `step`, for other views: {step, patchesOf(channel, size) -> element or
 * null (the channel's row of patches)}, or null when none are logged.
 */
async function topPatches(ctx, layer, step) {
  const at = await sampleAtOrBefore(ctx, 'top_activations', layer, step);
  if (!at) return null;
  const sprite = await picture(at, 0);
  if (sprite instanceof Error) return null;
  const meta = at.sample.meta || {};
  const units = Array.isArray(meta.units) ? meta.units : [];
  return {
    step: at.step,
    patchesOf(channel, size) {
      const row = meta.axes === 'directions' ? -1 : units.findIndex((unit) => unit && unit.unit === channel);
      if (row < 0) return null;
      const unit = units[row];
      return el('div', { className: 'top-patches', title: `top patches of channel ${channel} at step ${at.step}` },
        (unit.images || []).map((image, slot) => patchCanvas(meta, sprite, row, slot, size,
          `image ${image}, activation ${formatNumber(unit.values[slot])}`)));
    },
  };
}

/**
 * One run's top activations at one step. `sprite` is the decoded sprite (ImageBitmap) or an Error;
 * `flags` is a Map channel -> {rate, off, health, step} at the flush at or before this step, or null.
 */
function topView(sample, sprite, flags, wholeSprite = null, loadFilter = null, pair = null) {
  const meta = sample.meta || {};
  const units = Array.isArray(meta.units) ? meta.units : [];
  if (!units.length) return emptyBox('No units in this sample.');
  const noun = meta.axes === 'directions' ? 'direction' : 'channel';
  const detail = el('div', { className: 'top-detail', hidden: true });
  const shown = units.length < (meta.units_total ?? units.length)
    ? `showing ${units.length} of ${meta.units_total} ${noun}s` : `${units.length} ${noun}s`;
  const field = meta.field || {};
  const header = el('div', { className: 'note sample-meta', text: `${shown} · top ${meta.k} images each · receptive field `
    + `${(field.size || []).join('×')} px, stride ${(field.stride || []).join('×')}` });
  const note = meta.axes === 'directions'
    ? el('div', { className: 'note', text: 'Random unit directions of the channel space (Szegedy et al.): if these look as '
      + 'coherent as the channels, the channel axes are not special.' }) : null;
  const context = { wholeSprite, loadFilter, pair };
  const grid = el('div', { className: 'top-grid' }, units.map((unit, row) => unitRow(meta, unit, row, sprite, noun, flags, detail, context)));
  const dataset = { rank: meta.rank || 'activation', paired: Boolean(pair) };
  return el('div', { className: 'top-view', dataset },
    [header, note, rankingNote(meta, pair), gatesNote(meta.gates), detail, grid]);
}

function unitRow(meta, unit, row, sprite, noun, flags, detail, context) {
  const patches = rowCanvases(meta, unit, row, sprite);
  const flag = flags && noun === 'channel' ? flags.get(unit.unit) : undefined;
  const off = flag && typeof flag.rate === 'number' ? flag : null;
  const label = el('button', { className: 'top-unit-label', attrs: { type: 'button' }, dataset: { unit: unit.unit } }, [
    `${noun} ${unit.unit}`,
    off && off.off ? ' ' : null, // a space in the text too: "channel 1 dead", not "channel 1dead"
    off && off.off ? el('span', { className: `${off.health}-badge`, text: off.health }) : null,
  ]);
  const { pair } = context;
  const paired = pair ? pairedUnit(pair, unit.unit) : null;
  const rankings = pair || isRelevance(meta) ? el('div', { className: 'top-rankings' }, [
    rankingBlock(meta, unit, patches),
    pair ? rankingBlock(pair.meta, paired && paired.unit,
      paired ? rowCanvases(pair.meta, paired.unit, paired.row, pair.sprite) : []) : null,
  ]) : el('div', { className: 'top-patches' }, patches);
  const element = el('div', { className: 'top-unit', dataset: { unit: unit.unit } }, [label, rankings]);
  element.addEventListener('click', (event) => {
    for (const other of element.parentElement.querySelectorAll('.top-unit.selected')) other.classList.remove('selected');
    element.classList.add('selected');
    const relevance = paired && event.target.closest('.top-ranking[data-rank="relevance"]');
    const shown = relevance ? { ...context, wholeSprite: pair.whole } : context;
    detail.replaceChildren(relevance
      ? unitDetail(pair.meta, paired.unit, paired.row, pair.sprite, noun, off, shown)
      : unitDetail(meta, unit, row, sprite, noun, off, shown));
    detail.hidden = false;
  });
  return element;
}

/** A unit's row of patch canvases, each titled with its image and value. */
function rowCanvases(meta, unit, row, sprite) {
  return (unit.images || []).map((_, slot) => patchCanvas(meta, sprite, row, slot, PATCH_PX,
    slotText(meta, unit, slot)));
}

function unitDetail(meta, unit, row, sprite, noun, off, context) {
  const figures = (unit.images || []).map((image, slot) => {
    const box = (unit.boxes || [])[slot] || [];
    const pictures = [patchCanvas(meta, sprite, row, slot, DETAIL_PX, '')];
    if (context.wholeSprite && meta.whole_tile) pictures.push(wholeCanvas(meta, context.wholeSprite, row, slot, box));
    return el('figure', { className: 'top-detail-patch' }, [
      el('div', { className: 'top-detail-pictures' }, pictures),
      el('figcaption', { text: `${slotText(meta, unit, slot)} · rows ${box[0]}–${box[2]}, `
        + `cols ${box[1]}–${box[3]}` }),
    ]);
  });
  const lines = [`${noun} ${unit.unit} of ${meta.source_layer ?? meta.layer}: `
    + detailTitle(meta, figures.length)
    + (context.wholeSprite && meta.whole_tile ? ' (patch, and the whole image with the box)' : '')];
  if (off) {
    lines.push(`${off.health} rate ${(100 * off.rate).toFixed(1)}% of training inputs at the flush of step ${off.step}`
      + (off.off ? ` (${off.health})` : ''));
  }
  const filter = el('div', { className: 'top-filter' });
  if (noun === 'channel' && meta.filter_layer && context.loadFilter) {
    filter.append(el('span', { className: 'examples-title', text: `its filter in ${meta.filter_layer}: ` }));
    context.loadFilter(meta.filter_layer, unit.unit).then((tile) => {
      filter.append(tile || el('span', { className: 'note', text: 'not logged at or before this step' }));
    });
  }
  return el('div', {}, [...lines.map((text) => el('div', { className: 'examples-title', text })), filter,
    el('div', { className: 'thumbnail-strip' }, figures)]);
}

// The whole image, with the receptive field's box drawn on it (clipped where it leaves the image).
function wholeCanvas(meta, sprite, row, slot, box) {
  const layout = meta.whole_tile;
  const canvas = el('canvas', { className: 'top-whole', attrs: { width: DETAIL_PX, height: DETAIL_PX }, dataset: { slot } });
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  drawSpriteCell(context, sprite, layout, row, slot, 0, 0, DETAIL_PX, DETAIL_PX);
  const [height, width] = meta.input_size || [];
  if (height && width && box.length === 4) {
    const sy = DETAIL_PX / height;
    const sx = DETAIL_PX / width;
    context.strokeStyle = '#00e5ff';
    context.lineWidth = 2;
    context.strokeRect(box[1] * sx, box[0] * sy, (box[3] - box[1]) * sx, (box[2] - box[0]) * sy);
    canvas.dataset.box = 'true';
  }
  return canvas;
}

function patchCanvas(meta, sprite, row, slot, size, title) {
  const canvas = el('canvas', { className: 'top-patch', attrs: { width: size, height: size }, title,
    dataset: { slot } });
  const layout = meta.tile;
  const context = canvas.getContext('2d');
  if (!sprite || sprite instanceof Error || !layout) {
    context.fillStyle = '#eee';
    context.fillRect(0, 0, size, size);
    if (sprite instanceof Error) canvas.title = sprite.message;
    return canvas;
  }
  context.imageSmoothingEnabled = false;
  drawSpriteCell(context, sprite, layout, row, slot, 0, 0, size, size);
  canvas.dataset.drawn = 'true';
  return canvas;
}
