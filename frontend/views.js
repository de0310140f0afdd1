// DOM builders for the CNNVIZ tab. No fetching and no state here: index.js passes data in.
//
// Every string that came from data (run, layer and tag names, labels) goes through textContent or a
// dataset/attribute setter, never through innerHTML: names are text, even when they look like markup.

const SVG_NS = 'http://www.w3.org/2000/svg';
const MIN_ACTIVATION_TILE_PX = 48; // small maps are scaled up until a tile is at least this big
const FILTER_TILE_PX = 64;
const DEAD_COLOR = '#ff1744';
const ACCENT = '#f57c00';

export const VIEW_NAMES = { activations: 'Activations', filters: 'Filters', dead: 'Dead filters', attribution: 'Where it looks',
  top: 'Top patches', embedding: 'Embedding', performance: 'Where it fails', inversion: 'Inversion',
  class_model: 'Class models', channel_vis: 'Channel images', correspondence: 'Correspondence' };

/* ------------------------------------------------------------------ small helpers */

/**
 * Creates an element. `options`: className, text, title, dataset, attrs, style (an object of CSS
 * properties), hidden; `children`: nodes or strings (strings become text nodes).
 */
export function el(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined && options.text !== null) node.textContent = String(options.text);
  if (options.title) node.title = String(options.title);
  if (options.hidden) node.hidden = true;
  for (const [key, value] of Object.entries(options.dataset || {})) node.dataset[key] = String(value);
  for (const [key, value] of Object.entries(options.attrs || {})) node.setAttribute(key, String(value));
  Object.assign(node.style, options.style || {});
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** JSON numbers may arrive as null or as TensorBoard's "NaN" / "Infinity" strings. */
export function toNumber(value) {
  if (typeof value === 'number') return value;
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  return NaN;
}

/** [lowest, highest] of the finite numbers in `values`, or null when there are none; a loop, since spreading a
 * long array into Math.min overflows the call stack. */
export function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const value of values) {
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    if (value < lo) lo = value;
    if (value > hi) hi = value;
  }
  return lo <= hi ? [lo, hi] : null;
}

export function formatNumber(value) {
  const number = toNumber(value);
  if (!Number.isFinite(number)) return Number.isNaN(number) ? 'NaN' : number > 0 ? '+Inf' : '-Inf';
  if (number === 0) return '0';
  const magnitude = Math.abs(number);
  return magnitude >= 1e4 || magnitude < 1e-3 ? number.toExponential(2) : String(Number(number.toPrecision(3)));
}

function formatShape(shape) {
  return Array.isArray(shape) ? shape.join('×') : '?';
}

function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}

/** A short list of indices: "1, 4, 9" or "1, 4, 9, … (40 in all)". */
function indexList(indices, limit = 24) {
  const shown = indices.slice(0, limit).join(', ');
  return indices.length > limit ? `${shown}, … (${indices.length} in all)` : shown;
}

function asArray(value) {
  return Array.isArray(value) ? value : [];
}

/* ------------------------------------------------------------------ shell */

/**
 * Builds the static frame of the tab into `parent` and returns its parts. Listeners are attached by
 * index.js through event delegation, so re-rendering a list never loses them.
 */
export function buildShell(parent) {
  const status = el('div', { attrs: { id: 'status', role: 'status', 'aria-live': 'polite' } });
  const runList = el('div', { className: 'run-list' });
  const viewButtons = el('div', { className: 'view-buttons', attrs: { role: 'group', 'aria-label': 'View' } },
    Object.entries(VIEW_NAMES).map(([view, name]) =>
      el('button', { className: 'view-button', text: name, dataset: { view }, attrs: { type: 'button' } })));
  const layerList = el('ul', { className: 'layer-list', attrs: { 'aria-label': 'Layers' } });
  const reload = el('button', { className: 'reload-button', text: 'Reload', attrs: { type: 'button', id: 'reload' },
    title: 'Ask the server again for runs, steps and samples logged since the tab opened' });

  const sidebar = el('aside', { className: 'sidebar' }, [
    panel('Runs', runList),
    panel('View', viewButtons),
    panel('Layers', layerList, 'layers-panel'),
    reload,
  ]);

  const deadAlert = el('div', { className: 'dead-alert', hidden: true, attrs: { role: 'alert' } });
  const slider = el('input', { attrs: { id: 'step-slider', type: 'range', min: 0, max: 0, step: 1, value: 0,
    'aria-label': 'Training step' } });
  const stepLabel = el('span', { attrs: { id: 'step-label' } });
  const sortNoise = el('input', { attrs: { id: 'sort-noise', type: 'checkbox' } });
  const sortControl = el('label', { className: 'sort-control', hidden: true }, [sortNoise, 'sort by noise']);
  const stepControl = el('div', { className: 'step-control' }, [
    el('label', { text: 'Step', attrs: { for: 'step-slider' } }), slider, stepLabel]);
  const opacity = el('input', { attrs: { id: 'overlay-opacity', type: 'range', min: 0, max: 100, step: 5, value: 60,
    'aria-label': 'Overlay opacity' } });
  const opacityControl = el('label', { className: 'opacity-control', hidden: true }, ['overlay', opacity]);
  const toolbar = el('div', { className: 'toolbar' }, [stepControl, sortControl, opacityControl]);
  const heading = el('div', { className: 'layer-heading' });
  const columns = el('div', { className: 'run-columns' });
  const main = el('main', { className: 'main' }, [status, deadAlert, toolbar, heading, columns]);

  const tooltip = el('div', { className: 'cnnviz-tooltip', hidden: true, attrs: { role: 'tooltip' } });
  const root = el('div', { attrs: { id: 'cnnviz-root' }, className: 'cnnviz' }, [sidebar, main, tooltip]);
  parent.append(root);
  activeTooltip = tooltip;
  return { root, status, runList, viewButtons, layerList, reload, deadAlert, toolbar, stepControl, slider,
    stepLabel, sortNoise, sortControl, opacity, opacityControl, heading, columns,
    layerTitle: sidebar.querySelector('.layers-panel h2') };
}

function panel(title, content, extraClass = '') {
  return el('section', { className: `panel ${extraClass}`.trim() }, [el('h2', { text: title }), content]);
}

/** Global status line: kind is 'loading' | 'error' | 'empty' | 'ok' (cleared). */
export function setStatus(status, kind, message = '') {
  status.dataset.state = kind;
  status.className = kind === 'ok' ? '' : `status-${kind}`;
  status.textContent = message;
}

/* ------------------------------------------------------------------ sidebar */

export function renderRunList(container, runs, selected, colorOf) {
  container.replaceChildren(...runs.map((name) => {
    const box = el('input', { className: 'run-toggle', dataset: { run: name }, attrs: { type: 'checkbox' } });
    box.checked = selected.has(name);
    const swatch = el('span', { className: 'run-swatch', style: { background: colorOf(name) },
      attrs: { 'aria-hidden': 'true' } });
    return el('label', { className: 'run-row', title: name }, [box, swatch, el('span', { className: 'run-label', text: name })]);
  }));
}

export function markViewButtons(container, view) {
  for (const button of container.querySelectorAll('.view-button')) {
    const active = button.dataset.view === view;
    button.classList.toggle('active', active);
    button.setAttribute('aria-pressed', String(active));
  }
}

/**
 * The layer list (the method list in the attribution view, where `selectedLayer` is the Set shown). `deadByLayer` maps a layer name to [{run, dead, channels, step}] for the runs in which
 * it has dead channels at the latest flush.
 */
export function renderLayerList(container, layers, selectedLayer, deadByLayer, emptyText) {
  // Re-rendering replaces the buttons: keep keyboard focus on the same layer.
  const focused = container.contains(document.activeElement) ? document.activeElement.dataset.layer : undefined;
  if (!layers.length) {
    container.replaceChildren(el('li', { className: 'layer-empty', text: emptyText }));
    return;
  }
  container.replaceChildren(...layers.map((layer) => {
    const item = el('button', { className: 'layer-item', dataset: { layer }, title: layer, attrs: { type: 'button' } },
      [el('span', { className: 'layer-name', text: layer })]);
    const dead = deadByLayer.get(layer);
    if (dead && dead.length) item.append(deadBadge(dead));
    const selected = selectedLayer instanceof Set ? selectedLayer.has(layer) : layer === selectedLayer;
    item.classList.toggle('selected', selected);
    item.setAttribute('aria-current', String(selected));
    return el('li', {}, [item]);
  }));
  if (focused !== undefined) {
    const again = [...container.querySelectorAll('.layer-item')].find((item) => item.dataset.layer === focused);
    if (again) again.focus();
  }
}

// The worst run's count is what the badge says; the tooltip has every run's.
function deadBadge(dead) {
  const worst = Math.max(...dead.map((entry) => entry.dead.length));
  const details = dead.map((entry) =>
    `${entry.run}: ${entry.dead.length} of ${entry.channels ?? '?'} channels dead at step ${entry.step ?? '?'}`);
  return el('span', { className: 'dead-badge', text: `${worst} dead`, title: details.join('\n') });
}

/** The alert line on top: `counts` is [{run, layers}] for runs with at least one layer with dead filters. */
export function renderDeadAlert(container, counts, failures) {
  const parts = counts.map(({ run, layers }) => `${run}: ${plural(layers, 'layer')} with dead filters`);
  const failed = failures.map(({ run, message }) => `${run}: dead-filter summary unavailable (${message})`);
  container.hidden = !parts.length && !failed.length;
  container.classList.toggle('has-dead', parts.length > 0);
  const children = [];
  if (parts.length) {
    children.push(el('span', { className: 'alert-icon', text: '⚠', attrs: { 'aria-hidden': 'true' } }));
    children.push(el('span', { className: 'alert-text', text: parts.join(' · ') }));
    children.push(el('button', { className: 'alert-show', text: 'Show', attrs: { type: 'button' },
      title: 'Open the Dead filters view on the first layer with dead filters' }));
  }
  if (failed.length) children.push(el('span', { className: 'alert-failures', text: failed.join(' · ') }));
  container.replaceChildren(...children);
}

/* ------------------------------------------------------------------ toolbar */

/** Configures the step slider over `steps` (sorted, unique), positioned at `value`. */
export function configureSlider(slider, label, steps, value, followsLatest) {
  if (!steps.length) {
    slider.disabled = true;
    label.textContent = 'no steps';
    return;
  }
  const first = steps[0];
  const last = steps[steps.length - 1];
  slider.min = String(first);
  slider.max = String(Math.max(last, first));
  slider.step = '1'; // any step can be asked for: each column shows its last sample at or before it
  slider.value = String(value);
  slider.disabled = steps.length < 2;
  setStepLabel(label, value, followsLatest);
}

export function setStepLabel(label, value, followsLatest) {
  label.textContent = `step ${value}`;
  label.classList.toggle('latest', followsLatest);
  label.title = followsLatest ? 'Latest step (follows newly logged steps after Reload)' : '';
}

/* ------------------------------------------------------------------ run columns */

/** One run's column: heading, a line saying which step it shows, and a body. */
export function runColumn(run, color) {
  const stepInfo = el('div', { className: 'step-info' });
  const body = el('div', { className: 'run-body' });
  const element = el('section', { className: 'run-column', dataset: { run } }, [
    el('h3', { className: 'run-heading' }, [
      el('span', { className: 'run-swatch', style: { background: color }, attrs: { 'aria-hidden': 'true' } }),
      el('span', { className: 'run-name', text: run }),
    ]),
    stepInfo,
    body,
  ]);
  return { element, stepInfo, body };
}

export function loadingBox(text = 'Loading…') {
  return el('div', { className: 'state-box state-loading', text });
}

export function errorBox(message) {
  return el('div', { className: 'state-box state-error', attrs: { role: 'alert' } }, [
    el('strong', { text: 'Error: ' }), el('span', { className: 'error-message', text: message })]);
}

export function emptyBox(text) {
  return el('div', { className: 'state-box state-empty', text });
}

function note(className, text) {
  return el('div', { className: `note ${className}`, text });
}

/* ------------------------------------------------------------------ activations */

/**
 * One run's activations sample: a mosaic per probe image, with dead/NaN overlays and per-channel
 * tooltips. `imageUrls[n]` is the PNG of image n; `onImageError(url, img)` reports a failed picture.
 * Returns {element, images}.
 */
export function activationsView(sample, imageUrls, onImageError) {
  const meta = sample.meta || {};
  const tile = meta.tile || {};
  const channels = asArray(meta.channels);
  const dead = asArray(meta.dead);
  const nonfinite = asArray(meta.nonfinite);
  const header = [
    note('sample-meta', activationSummary(meta, channels)),
    omittedActivationsNote(meta, channels),
    dead.length ? note('flag-dead', `${plural(dead.length, 'dead channel')} (all zero on every probe image): ${indexList(dead)}`) : null,
    nonfinite.length ? note('flag-nonfinite', `NaN/Inf in ${plural(nonfinite.length, 'channel')}: ${indexList(nonfinite)}`) : null,
  ];
  const marks = markedTiles(channels, dead, nonfinite);
  const images = [];
  const figures = imageUrls.map((url, index) => {
    const figure = mosaicFigure(meta, tile, marks, url, index, onImageError);
    images.push(figure.querySelector('img.mosaic'));
    return figure;
  });
  const list = figures.length ? el('div', { className: 'mosaic-list' }, figures)
    : emptyBox('This sample has no probe images.');
  return { element: el('div', { className: 'activations-view' }, [...header, list]), images };
}

function activationSummary(meta, channels) {
  const parts = [];
  if (meta.module_type) parts.push(meta.call > 1 ? `${meta.module_type} (call ${meta.call})` : String(meta.module_type));
  parts.push(`shape ${formatShape(meta.shape)}`);
  parts.push(`${meta.channels_total ?? channels.length} channels`);
  return parts.join(' · ');
}

function omittedActivationsNote(meta, channels) {
  const omitted = meta.omitted || {};
  const tile = meta.tile || {};
  const parts = [];
  if (omitted.channels > 0) parts.push(`showing ${channels.length} of ${meta.channels_total ?? channels.length + omitted.channels} channels`);
  if (omitted.downsampled) {
    parts.push(`maps downsampled from ${tile.source_height ?? '?'}x${tile.source_width ?? '?'} to ${tile.height}x${tile.width}`);
  }
  return parts.length ? note('omitted-note', parts.join('; ')) : null;
}

/** Tile index -> 'dead' | 'nonfinite' for the tiles to outline. */
function markedTiles(channels, dead, nonfinite) {
  const marks = new Map();
  for (const channel of dead) {
    const tileIndex = channels.indexOf(channel);
    if (tileIndex >= 0) marks.set(tileIndex, 'dead');
  }
  for (const channel of nonfinite) {
    const tileIndex = channels.indexOf(channel);
    if (tileIndex >= 0) marks.set(tileIndex, 'nonfinite');
  }
  return marks;
}

/** Natural pixel size of a rows x cols mosaic with gaps between tiles. */
function mosaicSize(tile) {
  return {
    width: tile.cols * tile.width + Math.max(0, tile.cols - 1) * tile.gap,
    height: tile.rows * tile.height + Math.max(0, tile.rows - 1) * tile.gap,
  };
}

function mosaicFigure(meta, tile, marks, url, index, onImageError) {
  const labels = asArray(meta.labels);
  const label = labels[index];
  const caption = el('figcaption', {},
    [`image ${index}`, label !== null && label !== undefined ? el('span', { className: 'probe-label', text: ` · label ${label}` }) : null]);
  const size = mosaicSize(tile);
  const scale = Math.max(1, Math.ceil(MIN_ACTIVATION_TILE_PX / Math.max(1, Math.min(tile.height, tile.width))));
  const img = el('img', { className: 'mosaic', attrs: { alt: `activations of ${meta.layer ?? 'layer'} for probe image ${index}`,
    width: size.width * scale, height: size.height * scale, draggable: 'false' } });
  const overlay = el('div', { className: 'mosaic-overlay', attrs: { 'aria-hidden': 'true' } });
  const frame = el('div', { className: 'mosaic-frame' }, [img, overlay]);
  placeMarks(overlay, tile, size, marks);
  img.addEventListener('load', () => fitToNaturalSize(img, overlay, tile, marks, scale));
  img.addEventListener('error', () => onImageError(url, frame));
  frame.addEventListener('mousemove', (event) => showChannelTooltip(event, img, meta, tile, index));
  frame.addEventListener('mouseleave', hideTooltip);
  img.src = url;
  return el('figure', { className: 'probe' }, [caption, frame]);
}

// The mosaic's real size wins over the one computed from meta (in case the writer pads it).
function fitToNaturalSize(img, overlay, tile, marks, scale) {
  const size = { width: img.naturalWidth, height: img.naturalHeight };
  const expected = mosaicSize(tile);
  if (size.width === expected.width && size.height === expected.height) return;
  img.width = size.width * scale;
  img.height = size.height * scale;
  placeMarks(overlay, tile, size, marks);
}

function placeMarks(overlay, tile, size, marks) {
  const boxes = [];
  for (const [tileIndex, kind] of marks) {
    const row = Math.floor(tileIndex / tile.cols);
    const col = tileIndex % tile.cols;
    boxes.push(el('div', { className: `tile-mark mark-${kind}`, style: {
      left: `${(100 * col * (tile.width + tile.gap)) / size.width}%`,
      top: `${(100 * row * (tile.height + tile.gap)) / size.height}%`,
      width: `${(100 * tile.width) / size.width}%`,
      height: `${(100 * tile.height) / size.height}%`,
    } }, [crossSvg()]));
  }
  overlay.replaceChildren(...boxes);
}

// A diagonal cross that scales with its box.
function crossSvg() {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 10 10');
  svg.setAttribute('preserveAspectRatio', 'none');
  for (const d of ['M0 0L10 10', 'M10 0L0 10']) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/** Maps a mouse position over a mosaic to its tile index, or -1 outside the tiles. */
function tileAt(event, img, tile) {
  const rect = img.getBoundingClientRect();
  const naturalWidth = img.naturalWidth || mosaicSize(tile).width;
  const naturalHeight = img.naturalHeight || mosaicSize(tile).height;
  const x = ((event.clientX - rect.left) * naturalWidth) / rect.width;
  const y = ((event.clientY - rect.top) * naturalHeight) / rect.height;
  const col = Math.floor(x / (tile.width + tile.gap));
  const row = Math.floor(y / (tile.height + tile.gap));
  if (x < 0 || y < 0 || col >= tile.cols || row >= tile.rows) return -1;
  return row * tile.cols + col;
}

function showChannelTooltip(event, img, meta, tile, imageIndex) {
  const channels = asArray(meta.channels);
  const tileIndex = tileAt(event, img, tile);
  if (tileIndex < 0 || tileIndex >= channels.length) {
    hideTooltip();
    return;
  }
  const channel = channels[tileIndex];
  const stats = meta.stats || {};
  const stat = (name) => formatNumber(asArray(asArray(stats[name])[imageIndex])[tileIndex]);
  const lines = [
    `channel ${channel}`,
    `max ${stat('max')} · mean ${stat('mean')}`,
    `zero fraction ${stat('zero_fraction')}`,
  ];
  const scale = asArray(meta.scale)[tileIndex];
  if (Array.isArray(scale)) lines.push(`grey 0..255 = ${formatNumber(scale[0])}..${formatNumber(scale[1])}`);
  const flags = [];
  if (asArray(meta.dead).includes(channel)) flags.push('dead');
  if (asArray(meta.nonfinite).includes(channel)) flags.push('NaN/Inf');
  showTooltip(event, lines, flags);
}

/* ------------------------------------------------------------------ filters */

/**
 * One run's filters sample. `bitmap` is the decoded mosaic, or an Error shown where the tiles would be.
 */
export function filtersView(sample, bitmap, sortByNoise) {
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
  else grid = filterGrid(meta, filters, bitmap, sortByNoise);
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
  const tile = meta.tile || {};
  const noise = asArray(meta.noise);
  const noisy = new Set(asArray(meta.noisy));
  const scale = Math.max(1, Math.round(FILTER_TILE_PX / Math.max(1, tile.height, tile.width)));
  const tiles = filters.map((filter, index) =>
    filterTile(bitmap, tile, index, filter, noise[index], noisy.has(filter), asArray(meta.scale)[index], scale));
  const grid = el('div', { className: 'filter-grid' }, tiles);
  orderFilterTiles(grid, sortByNoise);
  return grid;
}

/** One filter of a filters sample as a tile, or null when that sample does not show it. */
export function singleFilterTile(sample, bitmap, filter) {
  const meta = sample.meta || {};
  const index = asArray(meta.filters).indexOf(filter);
  if (index < 0 || !bitmap || bitmap instanceof Error) return null;
  const tile = meta.tile || {};
  const scale = Math.max(1, Math.round(FILTER_TILE_PX / Math.max(1, tile.height, tile.width)));
  return filterTile(bitmap, tile, index, filter, asArray(meta.noise)[index], asArray(meta.noisy).includes(filter),
    asArray(meta.scale)[index], scale);
}

function filterTile(bitmap, tile, index, filter, noise, isNoisy, weightScale, scale) {
  const canvas = el('canvas', { className: 'filter-canvas', attrs: { width: tile.width, height: tile.height },
    style: { width: `${tile.width * scale}px`, height: `${tile.height * scale}px` } });
  const row = Math.floor(index / tile.cols);
  const col = index % tile.cols;
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.drawImage(bitmap, col * (tile.width + tile.gap), row * (tile.height + tile.gap), tile.width, tile.height,
    0, 0, tile.width, tile.height);
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

/** Re-orders the tiles of a grid in place: noisiest first, or in filter order. */
export function orderFilterTiles(grid, sortByNoise) {
  const tiles = [...grid.querySelectorAll('.filter-tile')];
  const key = sortByNoise
    ? (a, b) => Number(b.dataset.noise) - Number(a.dataset.noise) || Number(a.dataset.index) - Number(b.dataset.index)
    : (a, b) => Number(a.dataset.index) - Number(b.dataset.index);
  grid.append(...tiles.sort(key));
}

/* ------------------------------------------------------------------ dead filters */

const TIMELINE = { left: 44, top: 8, right: 10, bottom: 34, maxWidth: 640, maxHeight: 420 };

/** One run's dead-filter timeline for a layer; `markStep` is the slider's step (outlined). */
export function deadView(data, markStep) {
  const steps = asArray(data.steps);
  const rates = asArray(data.rates);
  const channels = Number(data.channels) || asArray(rates[0]).length;
  const threshold = toNumber(data.threshold);
  if (!steps.length || !channels) return emptyBox('No dead-filter statistics flushed yet for this layer.');
  const canvas = el('canvas', { className: 'dead-timeline' });
  const layout = drawTimeline(canvas, steps, rates, channels, threshold, markStep);
  canvas.addEventListener('mousemove', (event) => showRateTooltip(event, layout, steps, rates, threshold));
  canvas.addEventListener('mouseleave', hideTooltip);
  const latest = steps.length - 1;
  const marked = steps.indexOf(markStep);
  return el('div', { className: 'dead-view' }, [
    note('sample-meta', `${channels} channels · ${flushesText(data.downsampled, steps.length)} · dead when rate ≥ ${formatNumber(threshold)}`),
    el('div', { className: 'timeline-frame' }, [canvas]),
    timelineLegend(threshold),
    deadAtFlush(rates[latest], threshold, channels, `the latest flush (step ${steps[latest]})`, 'dead-latest'),
    marked >= 0 && marked !== latest
      ? deadAtFlush(rates[marked], threshold, channels, `step ${steps[marked]}`, 'dead-at-step') : null,
  ]);
}

/** A long series comes in buckets (/dead's `downsampled`): say so, and that a column shows its highest rate. */
function flushesText(downsampled, columns) {
  const flushes = downsampled && Number(downsampled.flushes);
  return flushes ? `${plural(flushes, 'flush', 'flushes')} in ${columns} columns (highest rate per column)`
    : plural(columns, 'flush', 'flushes');
}

function deadChannels(row, threshold) {
  const dead = [];
  asArray(row).forEach((rate, channel) => { if (toNumber(rate) >= threshold) dead.push(channel); });
  return dead;
}

function deadAtFlush(row, threshold, channels, when, className) {
  const dead = deadChannels(row, threshold);
  if (!dead.length) return note(className, `No dead channels at ${when}.`);
  return note(`${className} flag-dead`, `Dead at ${when}: ${plural(dead.length, 'channel')} of ${channels}: ${indexList(dead, 64)}`);
}

/** Rate 0..1 -> dark to muted red; a dead cell gets its own, brighter colour. */
function rateColor(rate, threshold) {
  if (!Number.isFinite(rate)) return '#9e9e9e';
  if (rate >= threshold) return DEAD_COLOR;
  const t = Math.min(1, Math.max(0, rate));
  const from = [38, 50, 56];
  const to = [183, 28, 28];
  const mix = from.map((value, i) => Math.round(value + (to[i] - value) * t));
  return `rgb(${mix.join(',')})`;
}

function drawTimeline(canvas, steps, rates, channels, threshold, markStep) {
  const cellW = Math.max(2, Math.min(32, Math.floor(TIMELINE.maxWidth / steps.length)));
  const cellH = Math.max(1, Math.min(16, Math.floor(TIMELINE.maxHeight / channels)));
  const layout = { ...TIMELINE, cellW, cellH, channels, columns: steps.length };
  const width = TIMELINE.left + cellW * steps.length + TIMELINE.right;
  const height = TIMELINE.top + cellH * channels + TIMELINE.bottom;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.ceil(width * ratio);
  canvas.height = Math.ceil(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext('2d');
  context.scale(ratio, ratio);
  drawCells(context, layout, rates, threshold);
  drawStepMark(context, layout, steps.indexOf(markStep));
  drawAxes(context, layout, steps, deadChannels(rates[steps.length - 1], threshold));
  return layout;
}

function drawCells(context, layout, rates, threshold) {
  const { left, top, cellW, cellH, channels, columns } = layout;
  for (let column = 0; column < columns; column++) {
    const row = asArray(rates[column]);
    for (let channel = 0; channel < channels; channel++) {
      const rate = toNumber(row[channel]);
      const x = left + column * cellW;
      const y = top + channel * cellH;
      context.fillStyle = rateColor(rate, threshold);
      context.fillRect(x, y, cellW, cellH);
      // A white core makes a dead cell unmistakable, not just "very red".
      if (rate >= threshold && cellW >= 6 && cellH >= 6) {
        context.fillStyle = '#ffffff';
        context.fillRect(x + cellW / 2 - 1, y + cellH / 2 - 1, 2, 2);
      }
    }
  }
}

function drawStepMark(context, layout, column) {
  if (column < 0) return;
  context.strokeStyle = ACCENT;
  context.lineWidth = 2;
  context.strokeRect(layout.left + column * layout.cellW - 1, layout.top - 1, layout.cellW + 2,
    layout.cellH * layout.channels + 2);
}

function drawAxes(context, layout, steps, deadNow) {
  const { left, top, cellW, cellH, channels, columns } = layout;
  const bottom = top + cellH * channels;
  context.font = '10px Roboto, system-ui, sans-serif';
  context.textBaseline = 'middle';
  context.textAlign = 'right';
  const dead = new Set(deadNow);
  const channelEvery = niceEvery(Math.ceil(12 / cellH));
  for (let channel = 0; channel < channels; channel++) {
    if (channel % channelEvery !== 0 && !(dead.has(channel) && cellH >= 10)) continue;
    context.fillStyle = dead.has(channel) ? '#d32f2f' : '#616161';
    context.fillText(String(channel), left - 4, top + channel * cellH + cellH / 2);
  }
  context.textAlign = 'center';
  context.textBaseline = 'top';
  context.fillStyle = '#616161';
  const widest = Math.max(...steps.map((step) => context.measureText(String(step)).width));
  const stepEvery = niceEvery(Math.ceil((widest + 8) / cellW));
  for (let column = 0; column < columns; column += stepEvery) {
    context.fillText(String(steps[column]), left + column * cellW + cellW / 2, bottom + 4);
  }
  context.textAlign = 'left';
  context.fillStyle = '#9e9e9e';
  context.fillText('step →', left, bottom + 19);
  context.save();
  context.translate(10, top + (cellH * channels) / 2);
  context.rotate(-Math.PI / 2);
  context.textAlign = 'center';
  context.fillText('channel', 0, -6);
  context.restore();
}

/** The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `n`. */
function niceEvery(n) {
  for (let power = 1; ; power *= 10) {
    for (const base of [1, 2, 5]) if (base * power >= n) return base * power;
  }
}

function showRateTooltip(event, layout, steps, rates, threshold) {
  const rect = event.currentTarget.getBoundingClientRect();
  const x = event.clientX - rect.left - layout.left;
  const y = event.clientY - rect.top - layout.top;
  const column = Math.floor(x / layout.cellW);
  const channel = Math.floor(y / layout.cellH);
  if (x < 0 || y < 0 || column >= layout.columns || channel >= layout.channels) {
    hideTooltip();
    return;
  }
  const rate = toNumber(asArray(rates[column])[channel]);
  showTooltip(event, [`channel ${channel}`, `step ${steps[column]}`, `dead rate ${formatNumber(rate)}`],
    rate >= threshold ? ['dead'] : []);
}

function timelineLegend(threshold) {
  const stops = [0, 0.25, 0.5, 0.75, 0.98].map((rate) => rateColor(rate, 2)).join(', ');
  return el('div', { className: 'timeline-legend' }, [
    el('span', { text: 'rate 0' }),
    el('span', { className: 'legend-ramp', style: { backgroundImage: `linear-gradient(to right, ${stops})` } }),
    el('span', { text: '1' }),
    el('span', { className: 'legend-swatch', style: { background: DEAD_COLOR } }),
    el('span', { text: `dead (≥ ${formatNumber(threshold)})` }),
  ]);
}

/* ------------------------------------------------------------------ tooltip */

let activeTooltip = null;

/** Shows `lines` (text) and `flags` (highlighted words) next to the mouse. */
export function showTooltip(event, lines, flags = []) {
  const tooltip = activeTooltip;
  if (!tooltip) return;
  tooltip.replaceChildren(
    ...lines.map((line) => el('div', { text: line })),
    ...flags.map((flag) => el('div', { className: `tooltip-flag flag-${flag === 'dead' ? 'dead' : 'nonfinite'}`, text: flag })));
  tooltip.hidden = false;
  const margin = 12;
  const { offsetWidth: width, offsetHeight: height } = tooltip;
  const x = event.clientX + margin + width > window.innerWidth ? event.clientX - margin - width : event.clientX + margin;
  const y = event.clientY + margin + height > window.innerHeight ? event.clientY - margin - height : event.clientY + margin;
  tooltip.style.left = `${Math.max(0, x)}px`;
  tooltip.style.top = `${Math.max(0, y)}px`;
}

export function hideTooltip() {
  if (activeTooltip) activeTooltip.hidden = true;
}
