// The "Embedding" view: CNN codes laid out by t-SNE, as a scatter coloured by label (or by prediction, with
// mistakes ringed) that pans and zooms, thumbnails appearing once zoomed in, and as a grid of thumbnails
// snapped to the layout. Canvas drawing: fast with 10,000 points.

import { classLabel as className, drawSpriteCell, el, hideTooltip, showTooltip } from '../dom.js';
import { picture, sampleView } from '../samples.js';

export default sampleView({
  kind: 'embedding',
  title: 'Embedding',
  noun: 'embeddings',
  logCalls: ['viz.log_embedding(data, layer, step)'],
  content: async (ctx) => embeddingView(withClassNames(ctx.sample, await ctx.ask('classNames')), await picture(ctx, 0)),
});

const SIZE = 440; // canvas side, CSS pixels
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const THUMBNAIL_ZOOM = 3; // from this zoom on, points are drawn as their thumbnails
const THUMBNAIL_PX = 28;
const MARGIN = 12;

function classColor(value) {
  if (typeof value !== 'number' || value < 0) return '#9e9e9e';
  return value < PALETTE.length ? PALETTE[value] : `hsl(${(value * 137.5) % 360}, 60%, 45%)`;
}

/** One run's embedding at one step; `sprite` is the decoded thumbnail sprite or an Error. */
function embeddingView(sample, sprite) {
  const meta = sample.meta || {};
  const xy = Array.isArray(meta.xy) ? meta.xy : [];
  const state = { mode: 'scatter', colorBy: 'label', scale: 1, tx: 0, ty: 0 };
  const canvas = el('canvas', { className: 'embedding-canvas', attrs: { width: SIZE, height: SIZE, 'aria-label': 'embedding' } });
  const buttons = el('div', { className: 'embedding-controls' }, [
    ...[['scatter', 'Scatter'], ['grid', 'Grid']].map(([mode, text]) => el('button', {
      className: `embedding-mode${mode === 'scatter' ? ' active' : ''}`, text, dataset: { mode }, attrs: { type: 'button' } })),
    el('label', { className: 'embedding-color' }, [el('input', { attrs: { type: 'checkbox', class: 'color-by-prediction' } }), 'colour by prediction']),
  ]);
  const note = el('div', { className: 'note sample-meta', text: `${meta.count ?? xy.length} images · ${meta.dimensions ?? '?'}-D codes of `
    + `${meta.layer ?? '?'}${typeof meta.pooled === 'string' ? ` (${meta.pooled})` : ''} laid out by `
    + `${meta.method === 'pca' ? 'PCA' : 't-SNE'} · scroll to zoom, drag to pan` });
  const legend = legendOf(meta);
  const constant = meta.constant ? el('div', { className: 'note flag-dead',
    text: 'Every image has the same code at this layer (all its units dead?): the layout is one point.' }) : null;
  const draw = () => (state.mode === 'grid' ? drawGrid(canvas, meta, sprite) : drawScatter(canvas, meta, sprite, state));
  buttons.addEventListener('click', (event) => {
    const button = event.target.closest('.embedding-mode');
    if (!button) return;
    state.mode = button.dataset.mode;
    for (const other of buttons.querySelectorAll('.embedding-mode')) other.classList.toggle('active', other === button);
    draw();
  });
  buttons.querySelector('.color-by-prediction').addEventListener('change', (event) => {
    state.colorBy = event.target.checked ? 'predicted' : 'label';
    draw();
  });
  wireScatterEvents(canvas, meta, state, draw);
  draw();
  return el('div', { className: 'embedding-view' }, [note, constant, buttons, canvas, legend]);
}

function legendOf(meta) {
  const classes = [...new Set([...(meta.labels || []), ...(meta.predicted || [])].filter((v) => typeof v === 'number' && v >= 0))]
    .sort((a, b) => a - b).slice(0, 30);
  return el('div', { className: 'embedding-legend' }, classes.map((value) => el('span', { className: 'legend-item' }, [
    el('span', { className: 'legend-swatch', style: { background: classColor(value) } }), className(meta, value)])));
}

function toScreen(point, state) {
  const inner = SIZE - 2 * MARGIN;
  return [MARGIN + (point[0] * inner) * state.scale + state.tx, MARGIN + (point[1] * inner) * state.scale + state.ty];
}

function drawScatter(canvas, meta, sprite, state) {
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, SIZE, SIZE);
  const xy = meta.xy || [];
  const colors = state.colorBy === 'label' ? meta.labels || [] : meta.predicted || [];
  const thumbnails = state.scale >= THUMBNAIL_ZOOM && sprite && !(sprite instanceof Error) && meta.tile;
  let drawnThumbnails = 0;
  xy.forEach((point, i) => {
    const [x, y] = toScreen(point, state);
    if (x < -THUMBNAIL_PX || y < -THUMBNAIL_PX || x > SIZE + THUMBNAIL_PX || y > SIZE + THUMBNAIL_PX) return;
    if (thumbnails) {
      const tile = meta.tile;
      drawSpriteCell(context, sprite, tile, Math.floor(i / tile.cols), i % tile.cols,
        x - THUMBNAIL_PX / 2, y - THUMBNAIL_PX / 2, THUMBNAIL_PX, THUMBNAIL_PX);
      context.strokeStyle = classColor(colors[i]);
      context.lineWidth = 2;
      context.strokeRect(x - THUMBNAIL_PX / 2, y - THUMBNAIL_PX / 2, THUMBNAIL_PX, THUMBNAIL_PX);
      drawnThumbnails += 1;
      return;
    }
    context.fillStyle = classColor(colors[i]);
    context.beginPath();
    context.arc(x, y, 2.5, 0, 2 * Math.PI);
    context.fill();
    const label = (meta.labels || [])[i];
    if (state.colorBy === 'predicted' && typeof label === 'number' && label >= 0 && label !== (meta.predicted || [])[i]) {
      context.strokeStyle = '#000';
      context.lineWidth = 1;
      context.beginPath();
      context.arc(x, y, 4.5, 0, 2 * Math.PI);
      context.stroke();
    }
  });
  canvas.dataset.points = String(xy.length);
  canvas.dataset.thumbnails = String(drawnThumbnails);
  canvas.dataset.mode = 'scatter';
}

function drawGrid(canvas, meta, sprite) {
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, SIZE, SIZE);
  const grid = meta.grid || {};
  const cols = grid.cols || 1;
  const rows = grid.rows || 1;
  const cell = Math.floor(Math.min(SIZE / cols, SIZE / rows));
  let drawn = 0;
  if (sprite && !(sprite instanceof Error) && meta.tile) {
    const tile = meta.tile;
    context.imageSmoothingEnabled = cell < tile.width;
    (grid.cells || []).forEach((cellIndex, i) => {
      const x = (cellIndex % cols) * cell;
      const y = Math.floor(cellIndex / cols) * cell;
      drawSpriteCell(context, sprite, tile, Math.floor(i / tile.cols), i % tile.cols, x, y, cell, cell);
      drawn += 1;
    });
  }
  canvas.dataset.mode = 'grid';
  canvas.dataset.thumbnails = String(drawn);
}

function wireScatterEvents(canvas, meta, state, draw) {
  let drag = null;
  canvas.addEventListener('wheel', (event) => {
    if (state.mode !== 'scatter') return;
    event.preventDefault();
    const [mx, my] = canvasPoint(canvas, event);
    const factor = event.deltaY < 0 ? 1.25 : 0.8;
    const scale = Math.min(64, Math.max(1, state.scale * factor));
    const applied = scale / state.scale;
    state.tx = mx - (mx - state.tx) * applied;
    state.ty = my - (my - state.ty) * applied;
    state.scale = scale;
    draw();
  }, { passive: false });
  canvas.addEventListener('mousedown', (event) => { drag = { x: event.clientX, y: event.clientY }; });
  window.addEventListener('mouseup', () => { drag = null; });
  canvas.addEventListener('mousemove', (event) => {
    if (state.mode !== 'scatter') return;
    if (drag) {
      const ratio = SIZE / canvas.getBoundingClientRect().width;
      state.tx += (event.clientX - drag.x) * ratio;
      state.ty += (event.clientY - drag.y) * ratio;
      drag = { x: event.clientX, y: event.clientY };
      draw();
      return;
    }
    const [px, py] = canvasPoint(canvas, event);
    const i = nearest(meta.xy || [], px, py, state);
    if (i < 0) {
      hideTooltip();
      return;
    }
    const label = (meta.labels || [])[i];
    const predicted = (meta.predicted || [])[i];
    showTooltip(event, [`image ${(meta.index || [])[i] ?? i}`, `label ${className(meta, label)}`, `predicted ${className(meta, predicted)}`],
      typeof label === 'number' && label >= 0 && predicted >= 0 && label !== predicted ? ['wrong'] : []);
  });
  canvas.addEventListener('mouseleave', hideTooltip);
}

/** The mouse position in canvas pixels (the canvas may be drawn smaller than its pixel size). */
function canvasPoint(canvas, event) {
  const box = canvas.getBoundingClientRect();
  const ratio = SIZE / box.width;
  return [(event.clientX - box.left) * ratio, (event.clientY - box.top) * ratio];
}

/** The point nearest to (x, y) on screen within 10 px, or -1. */
function nearest(xy, x, y, state) {
  let best = -1;
  let bestDistance = state.scale >= THUMBNAIL_ZOOM ? (THUMBNAIL_PX / 2) ** 2 : 100;
  xy.forEach((point, i) => {
    const [px, py] = toScreen(point, state);
    const distance = (px - x) ** 2 + (py - y) ** 2;
    if (distance < bestDistance) {
      bestDistance = distance;
      best = i;
    }
  });
  return best;
}

/** The sample with the run's class names when the call logged none (a copy: the cache keeps its own). */
function withClassNames(sample, names) {
  const meta = sample.meta || {};
  return Array.isArray(names) && !meta.class_names ? { ...sample, meta: { ...meta, class_names: names } } : sample;
}
