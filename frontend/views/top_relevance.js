// Relevance beside activation in "Top patches" (views/top_activations.js): a layer's relevance ranking is
// its own sample, '<layer> (relevance)' with meta.rank 'relevance' (after zennit-crp's RelMax: activation ×
// gradient of the class score, summed over the channel's map). When a layer's activation ranking is shown and
// the run also has that sample, each channel shows both: what it fires on, and what it matters for. Samples
// without meta.rank were written before relevance existed: they are activation rankings.

import { classLabel, el, formatNumber } from '../dom.js';
import { layersOf, picture, sampleAtOrBefore } from '../samples.js';

const SUFFIX = ' (relevance)';

export function isRelevance(meta) {
  return Boolean(meta) && meta.rank === 'relevance';
}

/**
 * The relevance ranking to show beside an activation ranking of `ctx.layer` at `step`:
 * {meta, sprite, whole, step}, or null (a relevance or random-direction sample itself, or none logged at or
 * before `step`).
 */
export async function loadPair(ctx, meta, step) {
  if (!meta || isRelevance(meta) || meta.axes === 'directions') return null;
  const name = `${ctx.layer}${SUFFIX}`;
  if (!layersOf(ctx.entry, 'top_activations').includes(name)) return null;
  const at = await sampleAtOrBefore(ctx, 'top_activations', name, step);
  if (!at || !isRelevance(at.sample.meta)) return null;
  const sprite = await picture(at, 0);
  let whole = Number(at.sample.images) > 1 ? await picture(at, 1) : null;
  if (whole instanceof Error) whole = null;
  return { meta: at.sample.meta, sprite, whole, step: at.step };
}

/** A channel's unit and sprite row in the relevance sample, or null when it is not there. */
export function pairedUnit(pair, channel) {
  const units = Array.isArray(pair.meta.units) ? pair.meta.units : [];
  const row = units.findIndex((unit) => unit && unit.unit === channel);
  return row < 0 ? null : { unit: units[row], row };
}

/** 'fires on', or 'matters for circle' (the class its top images' relevance most often explains). */
export function rankingLabel(meta, unit) {
  if (!isRelevance(meta)) return 'fires on';
  const images = unit && Array.isArray(unit.images) ? unit.images : [];
  return images.length ? `matters for ${classLabel(meta, unit.top_class)}` : 'matters for no image';
}

/** The hover text of one kept image: its value, and for relevance the class it explains. */
export function slotText(meta, unit, slot) {
  const image = (unit.images || [])[slot];
  if (!isRelevance(meta)) return `image ${image}, activation ${formatNumber(unit.values[slot])}`;
  const classes = Array.isArray(unit.classes) ? unit.classes : [];
  const value = formatNumber(unit.values[slot]);
  return `image ${image}, relevance ${value} for ${classLabel(meta, classes[slot])}`;
}

/** What the detail's first line says the images are. */
export function detailTitle(meta, count) {
  return isRelevance(meta)
    ? `the ${count} images where it matters most for the class (relevance: activation × gradient, summed)`
    : `its ${count} strongest images`;
}

function whose(meta) {
  if (meta.target === 'predicted') return 'the predicted class';
  if (meta.target === 'label') return "each image's label";
  return "each image's label where given, else the predicted class";
}

/** The line above a relevance ranking, alone or beside an activation ranking (`pair`), else null. */
export function rankingNote(meta, pair) {
  const shown = pair ? pair.meta : meta;
  if (!isRelevance(shown)) return null;
  const how = `activation × gradient of the score of ${whose(shown)}, summed over the channel's map `
    + "(Grad × Input, after zennit-crp's RelMax); the patch is where that product is largest";
  const text = pair
    ? 'Each channel: the images it fires on most, and beside them those where it matters most for the class: '
      + `${how} (relevance logged at step ${pair.step}).`
    : `Ranked by relevance, not activation: ${how}. Only images where the channel adds to the score `
      + 'are kept.';
  return el('div', { className: 'note top-relevance-note', text });
}

/**
 * One ranking of a channel: its label ('fires on' / 'matters for ...') and its `patches` (canvases); a
 * channel with no image where it adds to the score says so.
 */
export function rankingBlock(meta, unit, patches) {
  const rank = isRelevance(meta) ? 'relevance' : 'activation';
  const empty = !patches.length && rank === 'relevance'
    ? el('span', { className: 'note', text: 'no image where it adds to the class score' }) : null;
  return el('div', { className: 'top-ranking', dataset: { rank } }, [
    el('span', { className: 'top-rank-label', text: rankingLabel(meta, unit) }),
    el('div', { className: 'top-patches' }, patches), empty,
  ]);
}
