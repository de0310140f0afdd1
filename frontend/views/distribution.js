// The "Distribution" view: per watched layer, how its activation values are spread at every health flush, as a
// step x value heat map (fixed signed log-spaced bins, so steps compare; colour: the log of each bin's share of
// the step's values), the layer's dead (or dormant) fraction drawn over it, and NaN / infinite values in rows of
// their own, flagged. A click on a step opens that step's activations. Data: /distribution (see http_api.md).

import { asArray, el, sharpCanvas, emptyBox, errorBox, formatNumber, hideTooltip, note, percent, plural, showTooltip, toNumber, ACCENT } from '../dom.js';
import { inferno } from '../colormap.js';
import { layersOf, notLoggedBox } from '../samples.js';
import { deadColumnAt, offWord } from './dead_flags.js';

const KIND = 'distribution';
const OFF_COLOR = '#ff1744';
const MAP = { left: 58, top: 8, right: 44, bottom: 34, maxWidth: 640, maxHeight: 360, gap: 6 };
const DECADES = 5; // the colour spans shares 1e-5..1: a bin holding one value in 100,000 is still seen
const SPECIAL = [['nan', 'NaN'], ['+inf', '+Inf'], ['-inf', '−Inf']];

const DESCRIPTOR = {
  kind: 'distribution',
  title: 'Distribution',
  noun: 'activation distributions',
  logCalls: ['viz.watch_dead_filters(every=100)'],
  load: (ctx) => runDistribution(ctx),
  stepsOf: (reply) => (reply && !(reply instanceof Error) ? asArray(reply.steps).map(Number) : []),
  column,
};
export default DESCRIPTOR;

async function runDistribution(ctx) {
  const { entry, layer, model } = ctx;
  if (!layersOf(entry, KIND).includes(layer)) return null;
  try {
    return await model.getJson(model.routeUrl(KIND, { run: entry.run, layer }));
  } catch (error) {
    return error;
  }
}

async function column(ctx, reply, sliderStep) {
  if (reply === null) return { content: notLoggedBox(DESCRIPTOR, ctx) };
  if (reply instanceof Error) return { content: errorBox(reply.message) };
  const steps = asArray(reply.steps).map(Number);
  if (!steps.length) return { content: emptyBox('No activation values flushed yet for this layer.') };
  const marked = deadColumnAt(reply, sliderStep);
  const canOpen = layersOf(ctx.entry, 'activations').includes(ctx.layer);
  return { content: distributionView(reply, marked, canOpen ? (step) => ctx.show('activations', ctx.layer, step) : null),
    stepText: `steps ${steps[0]}–${steps[steps.length - 1]}` };
}

/* ------------------------------------------------------------------ the heat map */

/** The rows drawn: the finite bins from the lowest to the highest holding a value, then a non-finite slot that holds one. */
function rowsOf(reply) {
  const counts = asArray(reply.counts);
  const slots = asArray(reply.slots);
  const used = (slot) => counts.some((row) => toNumber(asArray(row)[slot]) > 0);
  const finite = slots.map((name, slot) => slot).filter((slot) => slots[slot] === 'bin' && used(slot));
  const low = finite.length ? finite[0] : 1;
  const high = finite.length ? finite[finite.length - 1] : 1;
  const bins = [];
  for (let slot = high; slot >= low; slot -= 1) bins.push(slot); // high values on top
  const special = SPECIAL.map(([name, label]) => ({ slot: slots.indexOf(name), label })).filter(({ slot }) => slot >= 0 && used(slot));
  return { bins, special };
}

function distributionView(reply, marked, open) {
  const steps = asArray(reply.steps).map(Number);
  const word = offWord(reply.health);
  const rows = rowsOf(reply);
  const canvas = el('canvas', { className: 'distribution-map' });
  const layout = drawMap(canvas, reply, rows, marked);
  canvas.dataset.layout = JSON.stringify({ left: layout.left, cellW: layout.cellW, cellH: layout.cellH, binsTop: layout.binsTop, bins: rows.bins });
  canvas.addEventListener('mousemove', (event) => showCellTooltip(event, layout, reply, word, open));
  canvas.addEventListener('mouseleave', hideTooltip);
  if (open) canvas.addEventListener('click', (event) => {
    const { column } = cellAt(event, layout);
    if (column >= 0) open(steps[column]);
  });
  const flushes = reply.downsampled ? `${plural(Number(reply.downsampled.flushes), 'flush', 'flushes')} in ${steps.length} columns (counts summed)`
    : plural(steps.length, 'flush', 'flushes');
  return el('div', { className: 'distribution-view' }, [
    note('sample-meta', `${flushes} · the first image of each measured batch, at most 1,024 values a layer per forward · colour: log share of the step's values`),
    reply.health === 'dormant' ? note('distribution-site', 'A smooth activation (SiLU, GELU, ...): its input, the pre-activation, is binned; a channel never positive there is dormant.') : null,
    nonfiniteNote(reply, rows),
    el('div', { className: 'timeline-frame' }, [canvas]),
    legend(word),
    stepSummary(reply, marked, word),
    open ? note('distribution-hint', 'Click a step to open its activations.') : null,
  ]);
}

function drawMap(canvas, reply, rows, marked) {
  const columns = asArray(reply.steps).length;
  const count = rows.bins.length + rows.special.length;
  const cellW = Math.max(2, Math.min(24, Math.floor(MAP.maxWidth / columns)));
  const cellH = Math.max(3, Math.min(10, Math.floor(MAP.maxHeight / count)));
  const specialTop = MAP.top;
  const binsTop = MAP.top + rows.special.length * cellH + (rows.special.length ? MAP.gap : 0);
  const layout = { ...MAP, cellW, cellH, columns, rows, specialTop, binsTop, binsBottom: binsTop + rows.bins.length * cellH };
  const width = MAP.left + cellW * columns + MAP.right;
  const height = layout.binsBottom + MAP.bottom;
  const context = sharpCanvas(canvas, width, height);
  const counts = asArray(reply.counts).map((row) => asArray(row).map(toNumber));
  counts.forEach((row, column) => {
    const total = row.reduce((sum, value) => sum + (value > 0 ? value : 0), 0);
    const paint = (slot, y) => {
      const share = total > 0 ? row[slot] / total : 0;
      context.fillStyle = share > 0 ? inferno.css(1 + Math.log10(share) / DECADES) : '#f5f5f5';
      context.fillRect(MAP.left + column * cellW, y, cellW, cellH);
    };
    rows.special.forEach(({ slot }, i) => paint(slot, specialTop + i * cellH));
    rows.bins.forEach((slot, i) => paint(slot, binsTop + i * cellH));
  });
  drawOffLine(context, layout, asArray(reply.off_fraction));
  if (marked >= 0) {
    context.strokeStyle = ACCENT;
    context.lineWidth = 2;
    context.strokeRect(MAP.left + marked * cellW - 1, MAP.top - 1, cellW + 2, layout.binsBottom - MAP.top + 2);
  }
  drawAxes(context, layout, reply);
  return layout;
}

/** The dead / dormant fraction (0 at the bottom of the bins, 1 at their top), a red line with dots. */
function drawOffLine(context, layout, fractions) {
  const { left, cellW, binsTop, binsBottom } = layout;
  const y = (f) => binsBottom - f * (binsBottom - binsTop);
  context.strokeStyle = OFF_COLOR;
  context.fillStyle = OFF_COLOR;
  context.lineWidth = 2;
  context.beginPath();
  let drawing = false;
  fractions.forEach((value, column) => {
    const f = toNumber(value);
    if (!Number.isFinite(f)) { drawing = false; return; }
    const x = left + column * cellW + cellW / 2;
    if (drawing) context.lineTo(x, y(f)); else context.moveTo(x, y(f));
    drawing = true;
  });
  context.stroke();
}

/** Value labels at 0 and at every other decade the rows show; the off fraction's scale on the right. */
function drawAxes(context, layout, reply) {
  const { left, cellW, cellH, columns, rows, specialTop, binsTop, binsBottom } = layout;
  const edges = asArray(reply.edges).map(toNumber);
  context.font = '10px Roboto, system-ui, sans-serif';
  context.textBaseline = 'middle';
  context.textAlign = 'right';
  context.fillStyle = '#d32f2f';
  rows.special.forEach(({ label }, i) => context.fillText(label, left - 4, specialTop + i * cellH + cellH / 2));
  context.fillStyle = '#616161';
  let lastY = -Infinity;
  rows.bins.forEach((slot, i) => {
    const lower = edges[slot - 1]; // slot s is the bin [edges[s - 1], edges[s])
    const y = binsTop + (i + 1) * cellH;
    const decade = lower === 0 ? 0 : Math.log10(Math.abs(lower));
    const nice = lower === 0 || (Math.abs(decade - Math.round(decade)) < 1e-6 && Math.round(decade) % 2 === 0);
    if (!nice || Math.abs(decade) > 4 || y - lastY < 12) return;
    context.fillText(formatNumber(lower), left - 4, y);
    context.fillRect(left - 3, y, 3, 1);
    lastY = y;
  });
  context.textAlign = 'left';
  context.fillStyle = OFF_COLOR;
  const right = left + cellW * columns + 4;
  context.fillText('1', right, binsTop + 4);
  context.fillText('0', right, binsBottom - 4);
  context.textAlign = 'center';
  context.textBaseline = 'top';
  context.fillStyle = '#616161';
  const steps = asArray(reply.steps);
  const widest = Math.max(...steps.map((step) => context.measureText(String(step)).width));
  const every = Math.max(1, Math.ceil((widest + 8) / cellW));
  for (let column = 0; column < columns; column += every) context.fillText(String(steps[column]), left + column * cellW + cellW / 2, binsBottom + 4);
  context.textAlign = 'left';
  context.fillStyle = '#9e9e9e';
  context.fillText('step →', left, binsBottom + 19);
}

function cellAt(event, layout) {
  const rect = event.currentTarget.getBoundingClientRect();
  const x = event.clientX - rect.left - layout.left;
  const y = event.clientY - rect.top;
  const column = x >= 0 ? Math.floor(x / layout.cellW) : -1;
  if (column >= layout.columns) return { column: -1 };
  const special = Math.floor((y - layout.specialTop) / layout.cellH);
  const bin = Math.floor((y - layout.binsTop) / layout.cellH);
  if (y >= layout.binsTop && bin < layout.rows.bins.length) return { column, slot: layout.rows.bins[bin] };
  if (special >= 0 && special < layout.rows.special.length) return { column, slot: layout.rows.special[special].slot, label: layout.rows.special[special].label };
  return { column };
}

function showCellTooltip(event, layout, reply, word, open) {
  const { column, slot, label } = cellAt(event, layout);
  if (column < 0 || slot === undefined) { hideTooltip(); return; }
  const row = asArray(asArray(reply.counts)[column]).map(toNumber);
  const total = row.reduce((sum, value) => sum + value, 0);
  const edges = asArray(reply.edges).map(toNumber);
  const range = label ?? `[${formatNumber(edges[slot - 1])}, ${formatNumber(edges[slot])})`;
  const off = toNumber(asArray(reply.off_fraction)[column]);
  showTooltip(event, [`step ${asArray(reply.steps)[column]}`, `values in ${range}: ${percent(total ? row[slot] / total : NaN)} (${row[slot]} of ${total})`,
    Number.isFinite(off) ? `${word} channels: ${percent(off)}` : `${word} fraction not flushed`, open ? 'click: open its activations' : ''].filter(Boolean),
  label ? ['NaN/Inf'] : []);
}

/** The steps whose values hold NaN or infinities, flagged above the map. */
function nonfiniteNote(reply, rows) {
  if (!rows.special.length) return null;
  const steps = asArray(reply.steps);
  const bad = asArray(reply.counts).map((row, i) => [steps[i], rows.special.reduce((sum, { slot }) => sum + toNumber(asArray(row)[slot]), 0)])
    .filter(([, n]) => n > 0);
  const listed = bad.slice(0, 8).map(([step, n]) => `${step} (${n})`).join(', ') + (bad.length > 8 ? ', …' : '');
  return note('distribution-nonfinite flag-nonfinite', `NaN or infinite values at ${plural(bad.length, 'step')}: ${listed}. They are counted in rows of their own.`);
}

/** At the slider's step: where the middle half and the middle 98% of the values lie, and the off fraction. */
function stepSummary(reply, marked, word) {
  if (marked < 0) return null;
  const row = asArray(asArray(reply.counts)[marked]).map(toNumber);
  const edges = asArray(reply.edges).map(toNumber);
  const finite = row.slice(1, edges.length);
  const total = finite.reduce((sum, value) => sum + value, 0);
  if (!total) return note('distribution-at-step', `Step ${asArray(reply.steps)[marked]}: no finite values.`);
  const quantile = (q) => {
    let seen = 0;
    for (let i = 0; i < finite.length; i += 1) {
      seen += finite[i];
      if (seen >= q * total) return Math.abs(edges[i]) < Math.abs(edges[i + 1]) ? edges[i] : edges[i + 1]; // the bin's edge nearer 0
    }
    return edges[edges.length - 1];
  };
  const off = toNumber(asArray(reply.off_fraction)[marked]);
  return note('distribution-at-step', `Step ${asArray(reply.steps)[marked]}: half the values within about [${formatNumber(quantile(0.25))}, ${formatNumber(quantile(0.75))}], `
    + `98% within [${formatNumber(quantile(0.01))}, ${formatNumber(quantile(0.99))}]${Number.isFinite(off) ? ` · ${word} channels ${percent(off)}` : ''}.`);
}

function legend(word) {
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => inferno.css(t)).join(', ');
  return el('div', { className: 'timeline-legend' }, [
    el('span', { text: `share 1e-${DECADES}` }),
    el('span', { className: 'legend-ramp', style: { backgroundImage: `linear-gradient(to right, ${stops})` } }),
    el('span', { text: '1' }),
    el('span', { className: 'legend-swatch', style: { background: OFF_COLOR } }),
    el('span', { text: `${word} fraction (right axis, 0–1)` }),
  ]);
}
