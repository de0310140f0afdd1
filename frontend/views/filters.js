// The "Filters" view: a conv layer's weights, one tile per filter (RGB for the first layer, per input channel
// deeper), each with its noise score; noisy filters are outlined and can be sorted first. Other views show a
// filter beside its channel through ctx.ask('filterTile', ...), which this view provides.

import { asArray, drawSpriteCell, el, emptyBox, errorBox, formatNumber, formatShape, indexList, note, plural, toNumber } from '../dom.js';
import { picture, sampleAtOrBefore, sampleView } from '../samples.js';

const FILTER_TILE_PX = 64;

export default sampleView({
  kind: 'filters',
  title: 'Filters',
  noun: 'filters',
  logCalls: ['viz.log_filters(step)'],
  control,
  content: async (ctx) => filtersView(ctx.sample, await picture(ctx, 0), ctx.store),
  provides: { filterTile: tileAt },
});

/**
 * The toolbar's "sort by noise" checkbox: re-orders the tiles on screen in place; `store.sortByNoise` keeps it
 * across steps, layers and views.
 */
function control({ store }) {
  const box = el('input', { attrs: { id: 'sort-noise', type: 'checkbox' } });
  box.addEventListener('change', () => {
    store.sortByNoise = box.checked;
    for (const grid of document.querySelectorAll('.filter-grid')) orderFilterTiles(grid, store.sortByNoise);
  });
  return el('label', { className: 'sort-control', hidden: true }, [box, 'sort by noise']);
}

/** The tile of one filter of a conv layer, from this view's latest sample at or before `step` (or null). */
async function tileAt(ctx, layer, step, filter) {
  const at = await sampleAtOrBefore(ctx, 'filters', layer, step);
  if (!at) return null;
  return singleFilterTile(at.sample, await picture(at, 0), filter);
}

/**
 * One run's filters sample. `bitmap` is the decoded mosaic, or an Error shown where the tiles would be.
 */
function filtersView(sample, bitmap, store) {
  const meta = sample.meta || {};
  const filters = asArray(meta.filters);
  const noisy = asArray(meta.noisy);
  const header = [
    note('sample-meta', filterSummary(meta, filters)),
    omittedFiltersNote(meta, filters),
    noisy.length ? note('flag-noisy', `${plural(noisy.length, 'noisy filter')} (noise above ${formatNumber(meta.noise_threshold)}): ${indexList(noisy)}`) : null,
  ];
  let grid;
  if (bitmap instanceof Error) grid = errorBox(bitmap.message);
  else if (!filters.length) grid = emptyBox('This sample has no filters.');
  else grid = filterGrid(meta, filters, bitmap, Boolean(store.sortByNoise));
  return el('div', { className: 'filters-view' }, [...header, grid]);
}

function filterSummary(meta, filters) {
  const parts = [`shape ${formatShape(meta.shape)}`, `${meta.filters_total ?? filters.length} filters`];
  if (meta.mode === 'rgb') parts.push('mode rgb (kernels as colour images)');
  else if (meta.mode === 'per_input') {
    parts.push(`mode per_input · input channels shown: ${asArray(meta.inputs).length} of ${meta.inputs_total ?? '?'}`);
  } else if (meta.mode) parts.push(`mode ${meta.mode}`);
  return parts.join(' · ');
}

function omittedFiltersNote(meta, filters) {
  const omitted = meta.omitted || {};
  const parts = [];
  if (omitted.filters > 0) parts.push(`showing ${filters.length} of ${meta.filters_total ?? filters.length + omitted.filters} filters`);
  if (omitted.inputs > 0) parts.push(`${omitted.inputs} input channels left out of each tile`);
  return parts.length ? note('omitted-note', parts.join('; ')) : null;
}

function filterGrid(meta, filters, bitmap, sortByNoise) {
  const grid = el('div', { className: 'filter-grid' }, filters.map((filter, index) => filterTile(meta, bitmap, index)));
  orderFilterTiles(grid, sortByNoise);
  return grid;
}

/** One filter of a filters sample as a tile, or null when that sample does not show it. */
function singleFilterTile(sample, bitmap, filter) {
  const meta = sample.meta || {};
  const index = asArray(meta.filters).indexOf(filter);
  if (index < 0 || !bitmap || bitmap instanceof Error) return null;
  return filterTile(meta, bitmap, index);
}

/** Tile `index` of a filters sample: the kernel scaled up, its number and noise score. */
function filterTile(meta, bitmap, index) {
  const tile = meta.tile || {};
  const filter = asArray(meta.filters)[index];
  const noise = asArray(meta.noise)[index];
  const isNoisy = asArray(meta.noisy).includes(filter);
  const weightScale = asArray(meta.scale)[index];
  const scale = Math.max(1, Math.round(FILTER_TILE_PX / Math.max(1, tile.height, tile.width)));
  const canvas = el('canvas', { className: 'filter-canvas', attrs: { width: tile.width, height: tile.height },
    style: { width: `${tile.width * scale}px`, height: `${tile.height * scale}px` } });
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  drawSpriteCell(context, bitmap, tile, Math.floor(index / tile.cols), index % tile.cols, 0, 0, tile.width, tile.height);
  const noiseValue = toNumber(noise);
  const title = [`filter ${filter}`, `noise ${formatNumber(noise)}${isNoisy ? ' (noisy)' : ''}`];
  if (weightScale !== undefined) title.push(`max |w| ${formatNumber(weightScale)}`);
  return el('div', { className: `filter-tile${isNoisy ? ' noisy' : ''}`, title: title.join('\n'),
    dataset: { filter, index, noise: Number.isFinite(noiseValue) ? noiseValue : -1 } }, [
    canvas,
    el('div', { className: 'filter-index', text: `#${filter}` }),
    el('div', { className: 'filter-noise', text: `noise ${formatNumber(noise)}` }),
  ]);
}

/** Re-orders the tiles of a grid in place: noisiest first, or in filter order (the toolbar's choice). */
function orderFilterTiles(grid, sortByNoise) {
  const tiles = [...grid.querySelectorAll('.filter-tile')];
  const key = sortByNoise
    ? (a, b) => Number(b.dataset.noise) - Number(a.dataset.noise) || Number(a.dataset.index) - Number(b.dataset.index)
    : (a, b) => Number(a.dataset.index) - Number(b.dataset.index);
  grid.append(...tiles.sort(key));
}
