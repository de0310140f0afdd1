// The "Dead filters" view: per layer, each channel's dead rate (share of inputs whose map is all zero) at every
// dead-filter flush, as a channel x step timeline. Its flags on the rest of the tab (layer badges, the alert, a
// channel's rate for other views) are in dead_flags.js. A layer of a smooth activation (SiLU, GELU, ...) has
// dormant channels, never dead ones: its /dead reply's `health` says which.

import { asArray, el, sharpCanvas, emptyBox, errorBox, formatNumber, hideTooltip, indexList, note, plural, showTooltip, toNumber, ACCENT } from '../dom.js';
import { layersOf, notLoggedBox } from '../samples.js';
import { deadColumnAt, fetchDead, flags, offWord, provides, summaryOf } from './dead_flags.js';

const DEAD_COLOR = '#ff1744';
const TIMELINE = { left: 44, top: 8, right: 10, bottom: 34, maxWidth: 640, maxHeight: 420 };

// A column of this view is one run's /dead reply for the layer; the slider runs over its flushes.
const DESCRIPTOR = {
  kind: 'dead',
  title: 'Dead filters',
  noun: 'dead filters',
  logCalls: ['viz.watch_dead_filters(every=100)'],
  load: (ctx) => runDead(ctx),
  stepsOf: (reply) => (reply && !(reply instanceof Error) ? reply.steps.map(Number) : []),
  column,
  flags,
  provides,
};
export default DESCRIPTOR;

/** The run's /dead reply for the layer, with `latestOff`: the off channels /dead_summary lists for its last flush. */
async function runDead(ctx) {
  const { entry, layer, model } = ctx;
  if (!layersOf(entry, 'dead').includes(layer)) return null;
  try {
    const [reply, summary] = await Promise.all([fetchDead(model, entry.run, layer), summaryOf(model, entry.run, layer)]);
    const steps = Array.isArray(reply.steps) ? reply.steps : [];
    const list = summary && summary[offWord(summary.health)];
    const latestOff = Array.isArray(list) && steps.length && Number(summary.step) === Number(steps[steps.length - 1]) ? list : null;
    return { ...reply, steps, latestOff };
  } catch (error) {
    return error;
  }
}

async function column(ctx, reply, sliderStep) {
  if (reply === null) return { content: notLoggedBox(DESCRIPTOR, ctx) };
  if (reply instanceof Error) return { content: errorBox(reply.message) };
  const steps = reply.steps;
  const limit = Number(reply.held_limit) > 0 // the user's --samples_per_plugin bounds the flushes held
    ? ` · TensorBoard holds ${reply.held_limit} flushes of each layer (--samples_per_plugin cnnviz=${reply.held_limit}): more may have been logged`
    : '';
  return { content: deadView(reply, Number(steps[deadColumnAt(reply, sliderStep)])),
    stepText: steps.length ? `steps ${steps[0]}–${steps[steps.length - 1]}${limit}` : '' };
}

/* ------------------------------------------------------------------ the timeline */

/**
 * One run's dead-filter timeline for a layer; `markStep` is the slider's step (outlined). The latest flush's off
 * channels are /dead_summary's list when it has them (`data.latestOff`); an older step's come from its rates.
 */
function deadView(data, markStep) {
  const steps = asArray(data.steps);
  const rates = asArray(data.rates);
  const channels = Number(data.channels) || asArray(rates[0]).length;
  const threshold = toNumber(data.threshold);
  const word = offWord(data.health);
  if (!steps.length || !channels) return emptyBox('No dead-filter statistics flushed yet for this layer.');
  const latest = steps.length - 1;
  const offNow = Array.isArray(data.latestOff) ? data.latestOff : offChannels(rates[latest], threshold);
  const canvas = el('canvas', { className: 'dead-timeline' });
  const layout = drawTimeline(canvas, steps, rates, channels, threshold, markStep, offNow);
  canvas.addEventListener('mousemove', (event) => showRateTooltip(event, layout, steps, rates, threshold, word));
  canvas.addEventListener('mouseleave', hideTooltip);
  const marked = steps.indexOf(markStep);
  return el('div', { className: 'dead-view' }, [
    note('sample-meta', `${channels} channels · ${flushesText(data.downsampled, steps.length)} · ${word} when rate ≥ ${formatNumber(threshold)}`),
    word === 'dormant' ? note('flag-dormant', 'A smooth activation (SiLU, GELU, ...): an off channel is dormant, never positive over the window, but its gradient still flows, so it may recover.') : null,
    showingLatest(el('div', { className: 'timeline-frame' }, [canvas])),
    timelineLegend(threshold, word),
    offAtFlush(offNow, word, channels, `the latest flush (step ${steps[latest]})`, 'dead-latest'),
    marked >= 0 && marked !== latest
      ? offAtFlush(offChannels(rates[marked], threshold), word, channels, `step ${steps[marked]}`, 'dead-at-step') : null,
  ]);
}

/** A long series comes in buckets (/dead's `downsampled`): say so, and that a column shows its highest rate. */
function flushesText(downsampled, columns) {
  const flushes = downsampled && Number(downsampled.flushes);
  return flushes ? `${plural(flushes, 'flush', 'flushes')} in ${columns} columns (highest rate per column)`
    : plural(columns, 'flush', 'flushes');
}

/** The channels of one flush's rates at or above the threshold. */
function offChannels(row, threshold) {
  const off = [];
  asArray(row).forEach((rate, channel) => { if (toNumber(rate) >= threshold) off.push(channel); });
  return off;
}

function offAtFlush(off, word, channels, when, className) {
  if (!off.length) return note(className, `No ${word} channels at ${when}.`);
  const said = `${word[0].toUpperCase()}${word.slice(1)} at ${when}: ${plural(off.length, 'channel')} of ${channels}: ${indexList(off, 64)}`;
  return note(`${className} flag-${word}`, said);
}

/**
 * A heat map wider than its column scrolls, and opens scrolled to its right end: the latest steps are the ones
 * a user watching a run wants, never the ones cut off. Done once the frame is laid out (it is built detached).
 */
function showingLatest(frame) {
  const observer = new ResizeObserver(() => {
    if (!frame.clientWidth) return;
    frame.scrollLeft = frame.scrollWidth;
    observer.disconnect();
  });
  observer.observe(frame);
  return frame;
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

function drawTimeline(canvas, steps, rates, channels, threshold, markStep, offNow) {
  const cellW = Math.max(2, Math.min(32, Math.floor(TIMELINE.maxWidth / steps.length)));
  const cellH = Math.max(1, Math.min(16, Math.floor(TIMELINE.maxHeight / channels)));
  const layout = { ...TIMELINE, cellW, cellH, channels, columns: steps.length };
  const width = TIMELINE.left + cellW * steps.length + TIMELINE.right;
  const height = TIMELINE.top + cellH * channels + TIMELINE.bottom;
  const context = sharpCanvas(canvas, width, height);
  drawCells(context, layout, rates, threshold);
  drawStepMark(context, layout, steps.indexOf(markStep));
  drawAxes(context, layout, steps, offNow);
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

function showRateTooltip(event, layout, steps, rates, threshold, word) {
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
  showTooltip(event, [`channel ${channel}`, `step ${steps[column]}`, `${word} rate ${formatNumber(rate)}`],
    rate >= threshold ? [word] : []);
}

function timelineLegend(threshold, word) {
  const stops = [0, 0.25, 0.5, 0.75, 0.98].map((rate) => rateColor(rate, 2)).join(', ');
  return el('div', { className: 'timeline-legend' }, [
    el('span', { text: 'rate 0' }),
    el('span', { className: 'legend-ramp', style: { backgroundImage: `linear-gradient(to right, ${stops})` } }),
    el('span', { text: '1' }),
    el('span', { className: 'legend-swatch', style: { background: DEAD_COLOR } }),
    el('span', { text: `${word} (≥ ${formatNumber(threshold)})` }),
  ]);
}
