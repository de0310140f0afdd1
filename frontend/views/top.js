// The "Top patches" view: per channel (or random direction) of a layer, the input patches of the k images
// that activate it most, as a browsable grid; a click opens the unit: bigger patches, their activation
// values, which image and where, its filter when the filters are logged, and the channel's dead rate when the
// dead-filter view has it.

import { drawSpriteCell, el, emptyBox, formatNumber } from '../dom.js';
import { picture, sampleAtOrBefore, sampleView } from '../samples.js';
import { deadRatesAt } from './dead.js';
import { filterTileAt } from './filters.js';

const PATCH_PX = 40;
const DETAIL_PX = 112;

export default sampleView({
  kind: 'top',
  title: 'Top patches',
  noun: 'top patches',
  logCalls: ['viz.log_top_activations(data, layer, step)'],
  content,
});

async function content(ctx) {
  const { entry, sample, step } = ctx;
  const sprite = await picture(ctx, 0);
  let whole = null;
  if (Number(sample.images) > 1) {
    whole = await picture(ctx, 1);
    if (whole instanceof Error) whole = null; // the whole images are an extra: the patches still show
  }
  const rates = await deadRatesAt(entry, sample.meta && sample.meta.source_layer, step);
  return topView(sample, sprite, rates, whole, (filterLayer, filter) => filterTileAt(entry, filterLayer, step, filter));
}

/** A layer's top patches at or before `step` ({sample, sprite, step}), or null when none are logged. */
export async function topPatchesAt(entry, layer, step) {
  const at = await sampleAtOrBefore(entry, 'top', layer, step);
  if (!at) return null;
  const sprite = await picture(at, 0);
  return sprite instanceof Error ? null : { sample: at.sample, sprite, step: at.step };
}

/**
 * One run's top activations at one step. `sprite` is the decoded sprite (ImageBitmap) or an Error;
 * `dead` is {threshold, rates: Map channel -> rate, step} from the dead-filter flush at or before this step
 * (or null when the layer is not watched).
 */
function topView(sample, sprite, dead, wholeSprite = null, loadFilter = null) {
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
  const context = { wholeSprite, loadFilter };
  const grid = el('div', { className: 'top-grid' }, units.map((unit, row) => unitRow(meta, unit, row, sprite, noun, dead, detail, context)));
  return el('div', { className: 'top-view' }, [header, note, detail, grid]);
}

function unitRow(meta, unit, row, sprite, noun, deadInfo, detail, context) {
  const patches = (unit.images || []).map((image, slot) => patchCanvas(meta, sprite, row, slot, PATCH_PX,
    `image ${image}, activation ${formatNumber(unit.values[slot])}`));
  const rate = deadInfo && noun === 'channel' ? deadInfo.rates.get(unit.unit) : undefined;
  const dead = typeof rate === 'number' ? { rate, isDead: rate >= deadInfo.threshold, step: deadInfo.step } : null;
  const label = el('button', { className: 'top-unit-label', attrs: { type: 'button' }, dataset: { unit: unit.unit } }, [
    `${noun} ${unit.unit}`,
    dead && dead.isDead ? el('span', { className: 'dead-badge', text: 'dead' }) : null,
  ]);
  const element = el('div', { className: 'top-unit', dataset: { unit: unit.unit } }, [label, el('div', { className: 'top-patches' }, patches)]);
  element.addEventListener('click', () => {
    for (const other of element.parentElement.querySelectorAll('.top-unit.selected')) other.classList.remove('selected');
    element.classList.add('selected');
    detail.replaceChildren(unitDetail(meta, unit, row, sprite, noun, dead, context));
    detail.hidden = false;
  });
  return element;
}

function unitDetail(meta, unit, row, sprite, noun, dead, context) {
  const figures = (unit.images || []).map((image, slot) => {
    const box = (unit.boxes || [])[slot] || [];
    const pictures = [patchCanvas(meta, sprite, row, slot, DETAIL_PX, '')];
    if (context.wholeSprite && meta.whole_tile) pictures.push(wholeCanvas(meta, context.wholeSprite, row, slot, box));
    return el('figure', { className: 'top-detail-patch' }, [
      el('div', { className: 'top-detail-pictures' }, pictures),
      el('figcaption', { text: `${formatNumber(unit.values[slot])} · image ${image} · rows ${box[0]}–${box[2]}, cols ${box[1]}–${box[3]}` }),
    ]);
  });
  const lines = [`${noun} ${unit.unit} of ${meta.source_layer ?? meta.layer}: its ${figures.length} strongest images`
    + (context.wholeSprite && meta.whole_tile ? ' (patch, and the whole image with the box)' : '')];
  if (dead) {
    lines.push(`dead rate ${(100 * dead.rate).toFixed(1)}% of training inputs at the flush of step ${dead.step}`
      + (dead.isDead ? ' (dead)' : ''));
  }
  const filter = el('div', { className: 'top-filter' });
  if (noun === 'channel' && meta.filter_layer && context.loadFilter) {
    filter.append(el('span', { className: 'examples-title', text: `its filter in ${meta.filter_layer}: ` }));
    context.loadFilter(meta.filter_layer, unit.unit).then((tile) => {
      filter.append(tile || el('span', { className: 'note', text: 'not logged (log_filters) at or before this step' }));
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

export function patchCanvas(meta, sprite, row, slot, size, title) {
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
