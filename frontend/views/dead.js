// The "Dead filters" view: per layer, each channel's dead rate (share of inputs whose map is all zero) at every
// dead-filter flush, as a channel x step timeline; and the tab's dead-filter flags that every view shows (the
// badges in the layer list, the alert above the columns), from each run's /dead_summary.

import * as model from '../model.js';
import { asArray, el, emptyBox, errorBox, formatNumber, hideTooltip, indexList, note, plural, showTooltip, toNumber, ACCENT } from '../dom.js';
import { atOrBefore, layersOf } from '../samples.js';

const DEAD_COLOR = '#ff1744';
const TIMELINE = { left: 44, top: 8, right: 10, bottom: 34, maxWidth: 640, maxHeight: 420 };

// A column of this view is one run's /dead reply for the layer; the slider runs over its flushes.
export default {
  kind: 'dead',
  title: 'Dead filters',
  noun: 'dead filters',
  logCalls: ['viz.watch_dead_filters(every=100)'],
  load: (ctx) => runDead(ctx.entry, ctx.layer),
  stepsOf: (reply) => (reply && !(reply instanceof Error) ? reply.steps.map(Number) : []),
  column,
};

async function runDead(entry, layer) {
  if (!layersOf(entry, 'dead').includes(layer)) return null;
  try {
    const reply = await model.fetchDead(entry.run, layer);
    if (!Array.isArray(reply.steps)) reply.steps = [];
    return reply;
  } catch (error) {
    return error;
  }
}

async function column(ctx, reply, sliderStep) {
  if (reply === null) return { content: emptyBox(`No dead-filter statistics for layer ${ctx.layer} in this run.`) };
  if (reply instanceof Error) return { content: errorBox(reply.message) };
  const steps = reply.steps;
  const limit = Number(reply.held_limit) > 0 // the user's --samples_per_plugin bounds the flushes held
    ? ` · TensorBoard holds ${reply.held_limit} flushes of each layer (--samples_per_plugin cnnviz=${reply.held_limit}): more may have been logged`
    : '';
  return { content: deadView(reply, Number(steps[deadColumnAt(reply, sliderStep)])),
    stepText: steps.length ? `steps ${steps[0]}–${steps[steps.length - 1]}${limit}` : '' };
}

/**
 * The index of the /dead column that holds `step`: a long series comes in buckets (`downsampled.first_steps`
 * to `steps`), and a step inside a bucket belongs to it, not to the bucket before; else the flush at or before.
 */
function deadColumnAt(reply, step) {
  const steps = (reply.steps || []).map(Number);
  const firsts = reply.downsampled && Array.isArray(reply.downsampled.first_steps) ? reply.downsampled.first_steps.map(Number) : null;
  if (firsts) {
    const inside = steps.findIndex((last, i) => firsts[i] <= step && step <= last);
    if (inside >= 0) return inside;
  }
  return steps.indexOf(atOrBefore(steps, step));
}

/**
 * Channel -> dead rate of a run's layer at the dead-filter flush at or before `step`, as {threshold, rates: Map,
 * step}; null when the layer is not watched or the request failed.
 */
export async function deadRatesAt(entry, layer, step) {
  if (!layersOf(entry, 'dead').includes(layer)) return null;
  try {
    const reply = await model.fetchDead(entry.run, layer);
    const at = deadColumnAt(reply, step);
    if (at < 0) return null;
    const row = (reply.rates || [])[at] || [];
    return { threshold: Number(reply.threshold), rates: new Map(row.map((rate, channel) => [channel, toNumber(rate)])), step: Number(reply.steps[at]) };
  } catch (error) {
    return null;
  }
}

/* ------------------------------------------------------------------ the flags every view shows */

/**
 * Fetches the /dead_summary of each of `entries` (runs) that has dead-filter statistics and is not yet in
 * `summaries` (run -> summary JSON or Error), storing it there; a promise, or null when none is missing.
 */
export function loadSummaries(entries, summaries) {
  const missing = entries.filter((entry) => layersOf(entry, 'dead').length && !summaries.has(entry.run));
  if (!missing.length) return null;
  return Promise.all(missing.map(({ run }) => model.fetchDeadSummary(run)
    .then((summary) => summaries.set(run, summary), (error) => summaries.set(run, error))));
}

/** Layer -> [{run, dead, dormant, channels, step}] over `entries` whose summary has dead or dormant channels
 * (dormant: a smooth activation's channel that never turns positive; its gradient still flows). */
export function deadByLayer(entries, summaries) {
  const result = new Map();
  for (const { run } of entries) {
    const summary = summaries.get(run);
    if (!summary || summary instanceof Error || !summary.layers) continue;
    for (const [layer, info] of Object.entries(summary.layers)) {
      const dead = Array.isArray(info && info.dead) ? info.dead : [];
      const dormant = Array.isArray(info && info.dormant) ? info.dormant : [];  // absent in older files
      if (!dead.length && !dormant.length) continue;
      if (!result.has(layer)) result.set(layer, []);
      result.get(layer).push({ run, dead, dormant, channels: info.channels, step: info.step });
    }
  }
  return result;
}

/** A layer's badge in the layer list (`dead`: its deadByLayer entry): the worst run's count, red for dead and
 * amber for dormant; the tooltip has every run's. */
export function deadBadge(dead) {
  if (!dead || !dead.length) return null;
  const kind = dead.some((entry) => entry.dead.length) ? 'dead' : 'dormant';
  const worst = Math.max(...dead.map((entry) => entry[kind].length));
  const details = dead.map((entry) =>
    `${entry.run}: ${entry[kind].length} of ${entry.channels ?? '?'} channels ${kind} at step ${entry.step ?? '?'}`);
  if (kind === 'dormant') details.push('dormant: never positive over the window, yet the gradient flows (it may recover)');
  return el('span', { className: `${kind}-badge`, text: `${worst} ${kind}`, title: details.join('\n') });
}

/**
 * A block's badge in the layer tree, rolled up from its layers (`flagged`: [[layer, its deadByLayer entry]] for
 * the flagged ones): how many of them have dead channels (red) and, apart, how many only dormant ones (amber);
 * the tooltip names them. Null when none is flagged.
 */
export function blockBadges(flagged) {
  const withDead = flagged.filter(([, dead]) => dead.some((entry) => entry.dead.length));
  const dormantOnly = flagged.filter(([, dead]) => !dead.some((entry) => entry.dead.length));
  const badge = (kind, layers) => {
    if (!layers.length) return null;
    const worst = (dead) => Math.max(...dead.map((entry) => entry[kind].length));
    const details = layers.map(([layer, dead]) => `${layer}: up to ${worst(dead)} ${kind} channels (${dead.map((entry) => entry.run).join(', ')})`);
    return el('span', { className: `${kind}-badge block-badge`, dataset: { layers: layers.length },
      text: `${plural(layers.length, 'layer')} ${kind}`, title: `${plural(layers.length, 'layer')} in this block with ${kind} channels:\n${details.join('\n')}` });
  };
  const badges = [badge('dead', withDead), badge('dormant', dormantOnly)].filter(Boolean);
  return badges.length ? el('span', { className: 'block-badges' }, badges) : null;
}

/** The alert line on top: the runs with layers with dead filters, and the summaries that failed. */
export function renderAlert(container, entries, summaries) {
  const parts = [];
  const failed = [];
  for (const { run } of entries) {
    const summary = summaries.get(run);
    if (summary instanceof Error) failed.push(`${run}: dead-filter summary unavailable (${summary.message})`);
    else if (summary && summary.layers) {
      const count = (key) => Object.values(summary.layers).filter((info) => info && Array.isArray(info[key]) && info[key].length).length;
      const dead = count('dead');
      const dormant = count('dormant');
      const said = [dead ? `${plural(dead, 'layer')} with dead filters` : null,
        dormant ? `${plural(dormant, 'layer')} with dormant channels` : null].filter(Boolean);
      if (said.length) parts.push(`${run}: ${said.join(', ')}`);
    }
  }
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

/* ------------------------------------------------------------------ the timeline */

/** One run's dead-filter timeline for a layer; `markStep` is the slider's step (outlined). */
function deadView(data, markStep) {
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
    note('sample-meta', `${channels} channels · ${flushesText(data.downsampled, steps.length)} · ${data.health === 'dormant' ? 'dormant' : 'dead'} when rate ≥ ${formatNumber(threshold)}`),
    data.health === 'dormant' ? note('flag-dormant', 'A smooth activation (SiLU, GELU, ...): an off channel is dormant, never positive over the window, but its gradient still flows, so it may recover.') : null,
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
