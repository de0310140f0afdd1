// The "Correspondence" view (Long et al., "Do ConvNets learn correspondence?"): two images side by side
// with a line from each keypoint of the left image to its nearest neighbour, in the layer's features, in
// the right one. Lines are coloured by score (cosine similarity), from the lowest to the highest score of the
// logged matches (ReLU features' cosines crowd near 1: a fixed 0..1 scale would paint them all one colour);
// the legend gives the numbers. Mutual matches are solid, the others dashed. Best first: mutual, then by score.
// A slider sets how many of the best are drawn.
// DOM and canvas only.

import { viridis } from '../colormap.js';
import { el, emptyBox, errorBox, extent, formatNumber } from '../dom.js';
import { gatesNote, picture, sampleView } from '../samples.js';

const IMAGE_PX = 240; // the longer side of each image on screen
const GAP_PX = 24;
const DEFAULT_SHOWN = 40;

export default sampleView({
  kind: 'correspondence',
  title: 'Correspondence',
  noun: 'correspondences',
  logCalls: ['viz.log_correspondence(step, image_a, image_b, layer)'],
  content: async (ctx) => correspondenceView(ctx.sample, await Promise.all([0, 1].map((index) => picture(ctx, index))), ctx.store),
});

/**
 * One run's matches at one step; `bitmaps` are the decoded pictures of image a and b (or Errors). The user's
 * choices (how many matches, mutual only) are kept in `store` across steps and layers.
 */
function correspondenceView(sample, bitmaps, store) {
  if (!store.preferred) store.preferred = { shown: DEFAULT_SHOWN, mutualOnly: false };
  const { preferred } = store;
  const meta = sample.meta || {};
  const matches = matchesOf(meta);
  if (!matches.length) return emptyBox('No matches in this sample.');
  const field = meta.field || {};
  const note = el('div', { className: 'note sample-meta', text: `${meta.keypoints ?? matches.length} keypoints of `
    + `${meta.source_layer ?? meta.layer} (stride ${(field.stride || []).join('×')} px, field ${(field.size || []).join('×')} px) · `
    + `${meta.mutual_total ?? '?'} mutual · the ${matches.length} best logged` });
  const slider = el('input', { className: 'match-count', attrs: { type: 'range', min: 1, max: matches.length, step: 1,
    value: Math.min(preferred.shown, matches.length), 'aria-label': 'Matches shown' } });
  const count = el('span', { className: 'match-count-label' });
  const mutualOnly = el('input', { className: 'mutual-only', attrs: { type: 'checkbox' } });
  mutualOnly.checked = preferred.mutualOnly;
  const controls = el('div', { className: 'correspondence-controls' }, [
    el('label', {}, ['matches ', slider]), count, el('label', {}, [mutualOnly, 'mutual only'])]);
  const range = extent(matches.map((match) => match.score)) || [0, 1];
  const colorOf = (score) => viridis.css(range[1] > range[0] ? (score - range[0]) / (range[1] - range[0]) : 1);
  const canvas = el('canvas', { className: 'correspondence-canvas', attrs: { 'aria-label': 'matches' } });
  const problems = bitmaps.filter((bitmap) => bitmap instanceof Error).map((error) => error.message);
  const draw = () => {
    const shown = Number(slider.value);
    const drawn = drawMatches(canvas, meta, bitmaps, matches.slice(0, shown), mutualOnly.checked, colorOf);
    count.textContent = `best ${shown} of ${matches.length}: ${drawn} drawn`;
  };
  slider.addEventListener('input', () => { preferred.shown = Number(slider.value); draw(); });
  mutualOnly.addEventListener('change', () => { preferred.mutualOnly = mutualOnly.checked; draw(); });
  draw();
  return el('div', { className: 'correspondence-view' }, [note, gatesNote(meta.gates), controls, canvas, legend(range),
    problems.length ? errorBox(problems.join('; ')) : null]);
}

function matchesOf(meta) {
  const a = Array.isArray(meta.points_a) ? meta.points_a : [];
  const b = Array.isArray(meta.points_b) ? meta.points_b : [];
  const scores = Array.isArray(meta.scores) ? meta.scores : [];
  const mutual = Array.isArray(meta.mutual) ? meta.mutual : [];
  return a.map((point, i) => ({ a: point, b: b[i], score: Number(scores[i]), mutual: mutual[i] === true }))
    .filter((match) => Array.isArray(match.a) && Array.isArray(match.b));
}

/** Draws both images and the lines; returns how many lines were drawn. */
function drawMatches(canvas, meta, bitmaps, matches, mutualOnly, colorOf) {
  const height = Number(meta.height) || 1;
  const width = Number(meta.width) || 1;
  const scale = IMAGE_PX / Math.max(height, width);
  const w = Math.round(width * scale);
  const h = Math.round(height * scale);
  canvas.width = 2 * w + GAP_PX;
  canvas.height = h;
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.imageSmoothingEnabled = scale < 1;
  bitmaps.forEach((bitmap, side) => {
    const left = side * (w + GAP_PX);
    if (bitmap && !(bitmap instanceof Error)) context.drawImage(bitmap, left, 0, w, h);
    else {
      context.fillStyle = '#eee';
      context.fillRect(left, 0, w, h);
    }
  });
  // Pixel (row, column) -> canvas point at that pixel's centre.
  const at = ([row, column], left) => [left + (Number(column) + 0.5) * scale, (Number(row) + 0.5) * scale];
  let drawn = 0;
  let mutualDrawn = 0;
  for (const match of [...matches].reverse()) { // the best last, on top
    if (mutualOnly && !match.mutual) continue;
    const [x0, y0] = at(match.a, 0);
    const [x1, y1] = at(match.b, w + GAP_PX);
    context.strokeStyle = colorOf(match.score);
    context.lineWidth = match.mutual ? 1.6 : 1;
    context.setLineDash(match.mutual ? [] : [4, 3]);
    context.beginPath();
    context.moveTo(x0, y0);
    context.lineTo(x1, y1);
    context.stroke();
    context.setLineDash([]);
    context.fillStyle = colorOf(match.score);
    for (const [x, y] of [[x0, y0], [x1, y1]]) {
      context.beginPath();
      context.arc(x, y, 2, 0, 2 * Math.PI);
      context.fill();
    }
    drawn += 1;
    if (match.mutual) mutualDrawn += 1;
  }
  canvas.dataset.lines = String(drawn);
  canvas.dataset.mutual = String(mutualDrawn);
  return drawn;
}

function legend([low, high]) {
  const stops = Array.from({ length: 11 }, (_, i) => `${viridis.css(i / 10)} ${i * 10}%`).join(', ');
  return el('div', { className: 'correspondence-legend' }, [
    el('span', { className: 'score-low', text: `score (cosine similarity) ${formatNumber(low)}` }),
    el('span', { className: 'score-ramp', style: { background: `linear-gradient(to right, ${stops})` } }),
    el('span', { className: 'score-high', text: formatNumber(high) }),
    el('span', { className: 'legend-line solid', text: 'mutual' }),
    el('span', { className: 'legend-line dashed', text: 'one-way' }),
  ]);
}
