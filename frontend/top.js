// The "Top patches" view: per channel (or random direction) of a layer, the input patches of the k images
// that activate it most, as a browsable grid; a click opens the unit: bigger patches, their activation
// values, which image and where, and the channel's dead rate when the dead-filter view has it.
// DOM only; index.js fetches.

import { el, emptyBox, formatNumber } from './views.js';

const PATCH_PX = 40;
const DETAIL_PX = 112;

/**
 * One run's top activations at one step. `sprite` is the decoded sprite (ImageBitmap) or an Error;
 * `deadChannels` is the Set of this layer's channels dead at the latest dead-filter flush (or null).
 */
export function topView(sample, sprite, deadChannels) {
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
  const grid = el('div', { className: 'top-grid' }, units.map((unit, row) => unitRow(meta, unit, row, sprite, noun, deadChannels, detail)));
  return el('div', { className: 'top-view' }, [header, note, detail, grid]);
}

function unitRow(meta, unit, row, sprite, noun, deadChannels, detail) {
  const patches = (unit.images || []).map((image, slot) => patchCanvas(meta, sprite, row, slot, PATCH_PX,
    `image ${image}, activation ${formatNumber(unit.values[slot])}`));
  const dead = Boolean(deadChannels && noun === 'channel' && deadChannels.has(unit.unit));
  const label = el('button', { className: 'top-unit-label', attrs: { type: 'button' }, dataset: { unit: unit.unit } }, [
    `${noun} ${unit.unit}`,
    dead ? el('span', { className: 'dead-badge', text: 'dead' }) : null,
  ]);
  const element = el('div', { className: 'top-unit', dataset: { unit: unit.unit } }, [label, el('div', { className: 'top-patches' }, patches)]);
  element.addEventListener('click', () => {
    for (const other of element.parentElement.querySelectorAll('.top-unit.selected')) other.classList.remove('selected');
    element.classList.add('selected');
    detail.replaceChildren(unitDetail(meta, unit, row, sprite, noun, dead));
    detail.hidden = false;
  });
  return element;
}

function unitDetail(meta, unit, row, sprite, noun, dead) {
  const figures = (unit.images || []).map((image, slot) => {
    const box = (unit.boxes || [])[slot] || [];
    return el('figure', { className: 'top-detail-patch' }, [
      patchCanvas(meta, sprite, row, slot, DETAIL_PX, ''),
      el('figcaption', { text: `${formatNumber(unit.values[slot])} · image ${image} · rows ${box[0]}–${box[2]}, cols ${box[1]}–${box[3]}` }),
    ]);
  });
  const lines = [`${noun} ${unit.unit} of ${meta.source_layer ?? meta.layer}: its ${figures.length} strongest images`];
  if (dead) lines.push('dead at the latest dead-filter flush: all zero for (nearly) every training input');
  return el('div', {}, [...lines.map((text) => el('div', { className: 'examples-title', text })),
    el('div', { className: 'thumbnail-strip' }, figures)]);
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
  context.drawImage(sprite, slot * (layout.width + layout.gap), row * (layout.height + layout.gap), layout.width, layout.height,
    0, 0, size, size);
  canvas.dataset.drawn = 'true';
  return canvas;
}
