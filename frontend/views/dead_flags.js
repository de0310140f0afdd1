// The dead-filter view's marks on the rest of the tab (its `flags` and `provides` hooks, see registry.js): the
// badges in the layer list, the alert above the columns, both from each run's /dead_summary, and a channel's
// rate at a step for other views (top activations). A layer's `health` says what its off channels are: dead
// (ReLU: no gradient) or dormant (a smooth activation: never positive, yet its gradient flows); a dormant
// channel is never called dead. A layer whose `role` is 'gate' (a squeeze-and-excitation gate: its channels scale
// a feature map's) is shown apart: its off channels close a feature channel, they are not dead filters.

import { el, plural, toNumber } from '../dom.js';
import { atOrBefore, layersOf } from '../samples.js';

const KIND = 'dead';

/** /dead of a run's layer (cached by the model). */
export function fetchDead(model, run, layer) {
  return model.getJson(model.routeUrl('dead', { run, layer }));
}

/** /dead_summary of a run (cached by the model): each watched layer's latest flush and its off channels. */
export function fetchDeadSummary(model, run) {
  return model.getJson(model.routeUrl('dead_summary', { run }));
}

/** The summary's entry for a run's layer ({step, channels, threshold, health, dead, dormant}), or null. */
export async function summaryOf(model, run, layer) {
  try {
    const summary = await fetchDeadSummary(model, run);
    const info = summary && summary.layers && summary.layers[layer];
    return info && typeof info === 'object' ? info : null;
  } catch (error) {
    return null;
  }
}

/** 'dormant' or 'dead': what an off channel of a layer with this health is called. */
export function offWord(health) {
  return health === 'dormant' ? 'dormant' : 'dead';
}

/**
 * The index of the /dead column that holds `step`: a long series comes in buckets (`downsampled.first_steps`
 * to `steps`), and a step inside a bucket belongs to it, not to the bucket before; else the flush at or before.
 */
export function deadColumnAt(reply, step) {
  const steps = (reply.steps || []).map(Number);
  const firsts = reply.downsampled && Array.isArray(reply.downsampled.first_steps) ? reply.downsampled.first_steps.map(Number) : null;
  if (firsts) {
    const inside = steps.findIndex((last, i) => firsts[i] <= step && step <= last);
    if (inside >= 0) return inside;
  }
  return steps.indexOf(atOrBefore(steps, step));
}

/**
 * Channel -> {rate, off, health, step} of a run's layer at the flush at or before `step` (/dead's series: the
 * summary has the latest flush only); null when the layer is not watched or the request failed.
 */
async function channelFlags(ctx, layer, step) {
  if (!layersOf(ctx.entry, KIND).includes(layer)) return null;
  try {
    const reply = await fetchDead(ctx.model, ctx.entry.run, layer);
    const at = deadColumnAt(reply, step);
    if (at < 0) return null;
    const threshold = Number(reply.threshold);
    const health = offWord(reply.health);
    const flushStep = Number(reply.steps[at]);
    const row = (reply.rates || [])[at] || [];
    return new Map(row.map((value, channel) => {
      const rate = toNumber(value);
      return [channel, { rate, off: rate >= threshold, health, step: flushStep }];
    }));
  } catch (error) {
    return null;
  }
}

/* ------------------------------------------------------------------ badges and alert */

// tab.data (kept until Reload): summaries, run -> summary JSON or Error.
function summaries(tab) {
  if (!tab.data.summaries) tab.data.summaries = new Map();
  return tab.data.summaries;
}

/** Fetches the /dead_summary of each selected run with dead-filter statistics that is not in yet; null when none. */
function load(tab) {
  const known = summaries(tab);
  const missing = tab.runs.filter((entry) => layersOf(entry, KIND).length && !known.has(entry.run));
  if (!missing.length) return null;
  return Promise.all(missing.map(({ run }) => fetchDeadSummary(tab.model, run)
    .then((summary) => known.set(run, summary), (error) => known.set(run, error))));
}

/** Layer -> [{run, off, word, channels, step}] over the selected runs whose summary lists off channels. */
function flaggedLayers(tab) {
  const result = new Map();
  for (const { run } of tab.runs) {
    const summary = summaries(tab).get(run);
    if (!summary || summary instanceof Error || !summary.layers) continue;
    for (const [layer, info] of Object.entries(summary.layers)) {
      if (!info) continue;
      const dead = Array.isArray(info.dead) ? info.dead : [];
      const dormant = Array.isArray(info.dormant) ? info.dormant : []; // absent in older files
      for (const [word, off] of [['dead', dead], ['dormant', dormant]]) {
        if (!off.length) continue;
        if (!result.has(layer)) result.set(layer, []);
        result.get(layer).push({ run, off, word, channels: info.channels, step: info.step, gate: info.role === 'gate' });
      }
    }
  }
  return result;
}

// The badges are asked for layer by layer: the flagged layers are worked out once per drawing of the list.
function flagged(tab) {
  const key = `${tab.runs.map((entry) => entry.run).join('\n')}\n${summaries(tab).size}`;
  if (tab.data.flaggedKey !== key) {
    tab.data.flagged = flaggedLayers(tab);
    tab.data.flaggedKey = key;
  }
  return tab.data.flagged;
}

/** A layer's badge: the worst run's count, red when any run has dead channels there, else amber (dormant). */
function layerBadge(tab, layer) {
  const runs = flagged(tab).get(layer);
  if (!runs) return null;
  if (runs.every((item) => item.gate)) {
    const worst = Math.max(...runs.map((item) => item.off.length));
    return el('span', { className: 'gate-badge', text: `${worst} gate off`,
      title: `${runs.map((item) => `${item.run}: ${item.off.length} of ${item.channels ?? '?'} gate channels off at step ${item.step ?? '?'}`).join('\n')}\n`
        + 'a squeeze-and-excitation gate: an off channel closes the feature channel it scales; not a dead filter' });
  }
  const word = runs.some((item) => item.word === 'dead') ? 'dead' : 'dormant';
  const ofWord = runs.filter((item) => item.word === word);
  const worst = Math.max(...ofWord.map((item) => item.off.length));
  const details = ofWord.map((item) => `${item.run}: ${item.off.length} of ${item.channels ?? '?'} channels ${word} at step ${item.step ?? '?'}`);
  if (word === 'dormant') details.push('dormant: never positive over the window, yet the gradient flows (it may recover)');
  return el('span', { className: `${word}-badge`, text: `${worst} ${word}`, title: details.join('\n') });
}

/**
 * A block's badge in the layer tree, rolled up from its layers: how many of them have dead channels (red) and,
 * apart, how many only dormant ones (amber); the tooltip names them. Null when none is flagged.
 */
function blockBadge(tab, layers) {
  const all = flagged(tab);
  const runsOf = layers.filter((layer) => all.has(layer) && all.get(layer).some((item) => !item.gate))
    .map((layer) => [layer, all.get(layer)]);
  const hasDead = ([, runs]) => runs.some((item) => item.word === 'dead');
  const badge = (word, group) => {
    if (!group.length) return null;
    const worst = (runs) => Math.max(...runs.filter((item) => item.word === word).map((item) => item.off.length));
    const details = group.map(([layer, runs]) => `${layer}: up to ${worst(runs)} ${word} channels (${runs.map((item) => item.run).join(', ')})`);
    return el('span', { className: `${word}-badge block-badge`, dataset: { layers: group.length },
      text: `${plural(group.length, 'layer')} ${word}`, title: `${plural(group.length, 'layer')} in this block with ${word} channels:\n${details.join('\n')}` });
  };
  const badges = [badge('dead', runsOf.filter(hasDead)), badge('dormant', runsOf.filter((item) => !hasDead(item)))].filter(Boolean);
  return badges.length ? el('span', { className: 'block-badges' }, badges) : null;
}

/** The alert line: the runs with layers with dead or dormant channels, and the summaries that failed. */
function alert(tab) {
  const parts = [];
  const failed = [];
  for (const { run } of tab.runs) {
    const summary = summaries(tab).get(run);
    if (summary instanceof Error) failed.push(`${run}: dead-filter summary unavailable (${summary.message})`);
    else if (summary && summary.layers) {
      const count = (key) => Object.values(summary.layers)
        .filter((info) => info && info.role !== 'gate' && Array.isArray(info[key]) && info[key].length).length;
      const dead = count('dead');
      const dormant = count('dormant');
      const said = [dead ? `${plural(dead, 'layer')} with dead filters` : null,
        dormant ? `${plural(dormant, 'layer')} with dormant channels` : null].filter(Boolean);
      if (said.length) parts.push(`${run}: ${said.join(', ')}`);
    }
  }
  if (!parts.length && !failed.length) return null;
  const children = [];
  if (parts.length) {
    const show = el('button', { className: 'alert-show', text: 'Show', attrs: { type: 'button' },
      title: 'Open the Dead filters view on the first flagged layer' });
    show.addEventListener('click', () => {
      const all = flagged(tab);
      const features = (name) => all.has(name) && all.get(name).some((item) => !item.gate);
      const layer = tab.layersOf(KIND).find(features) ?? [...all.keys()].find(features);
      if (layer) tab.show(KIND, layer);
    });
    children.push(el('span', { className: 'alert-icon', text: '⚠', attrs: { 'aria-hidden': 'true' } }),
      el('span', { className: 'alert-text', text: parts.join(' · ') }), show);
  }
  if (failed.length) children.push(el('span', { className: 'alert-failures', text: failed.join(' · ') }));
  const element = el('div', { className: 'dead-alert', attrs: { role: 'alert' } }, children);
  element.classList.toggle('has-dead', parts.length > 0);
  return element;
}

export const flags = { load, layerBadge, blockBadge, alert };
export const provides = { channelFlags };
