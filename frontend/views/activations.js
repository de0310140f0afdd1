// The "Activations" view: a layer's output maps for the fixed probe images, one mosaic per image with a tile
// per channel, dead and NaN/Inf channels outlined, each channel's statistics on hover.

import { asArray, classLabel, el, emptyBox, formatNumber, formatShape, hideTooltip, indexList, note, plural, showTooltip, svg } from '../dom.js';
import { pictureUrls, sampleView, showImageError } from '../samples.js';

const MIN_ACTIVATION_TILE_PX = 48; // small maps are scaled up until a tile is at least this big
const IMAGE_WAIT_MS = 1500; // how long new mosaics may decode before they replace the old ones anyway

export default sampleView({
  kind: 'activations',
  title: 'Activations',
  noun: 'activations',
  logCalls: ['viz.log_activations(step)'],
  content,
});

async function content(ctx) {
  const names = await ctx.ask('classNames'); // the run's class names, when it logged them (performance view)
  const { element, images } = activationsView(ctx.sample, pictureUrls(ctx), names);
  // Let the new mosaics decode before they replace the old ones, so that moving the slider does not blink.
  await Promise.race([
    Promise.allSettled(images.map((img) => img.decode())),
    new Promise((resolve) => { setTimeout(resolve, IMAGE_WAIT_MS); }),
  ]);
  return element;
}

/**
 * One run's activations sample: a mosaic per probe image, with dead/NaN overlays and per-channel
 * tooltips. `imageUrls[n]` is the PNG of image n; a failed picture shows the server's reason in its place.
 * Returns {element, images}.
 */
function activationsView(sample, imageUrls, classNames = null) {
  const meta = { ...(sample.meta || {}), class_names: (sample.meta || {}).class_names ?? classNames };
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
    const figure = mosaicFigure(meta, tile, marks, url, index);
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

function mosaicFigure(meta, tile, marks, url, index) {
  const labels = asArray(meta.labels);
  const label = labels[index];
  const caption = el('figcaption', {},
    [`image ${index}`, label !== null && label !== undefined
      ? el('span', { className: 'probe-label', text: ` · label ${typeof label === 'number' ? classLabel(meta, label) : label}` }) : null]);
  const size = mosaicSize(tile);
  const scale = Math.max(1, Math.ceil(MIN_ACTIVATION_TILE_PX / Math.max(1, Math.min(tile.height, tile.width))));
  const img = el('img', { className: 'mosaic', attrs: { alt: `activations of ${meta.layer ?? 'layer'} for probe image ${index}`,
    width: size.width * scale, height: size.height * scale, draggable: 'false' } });
  const overlay = el('div', { className: 'mosaic-overlay', attrs: { 'aria-hidden': 'true' } });
  const frame = el('div', { className: 'mosaic-frame' }, [img, overlay]);
  placeMarks(overlay, tile, size, marks);
  img.addEventListener('load', () => fitToNaturalSize(img, overlay, tile, marks, scale));
  img.addEventListener('error', () => showImageError(url, frame));
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
  return svg('svg', { viewBox: '0 0 10 10', preserveAspectRatio: 'none' },
    ['M0 0L10 10', 'M10 0L0 10'].map((d) => svg('path', { d })));
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

