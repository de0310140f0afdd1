// Entry point of the CNNVIZ tab: TensorBoard's plugin iframe imports this module and calls render().
// This module holds the tab's state and wires events to the data (model.js) and the DOM (views.js).

import * as model from './model.js';
import * as attribution from './attribution.js';
import * as correspondence from './correspondence.js';
import * as embedding from './embedding.js';
import * as performance from './performance.js';
import * as synthesis from './synthesis.js';
import * as top from './top.js';
import * as views from './views.js';

const EMPTY_TEXT = 'No CNNVIZ data yet: log with tb_cnnviz.CNNViz(model, writer, probe_images=...) '
  + '(viz.log_activations, viz.log_filters, viz.watch_dead_filters, viz.log_saliency, viz.log_occlusion, viz.log_performance, viz.log_top_activations, viz.log_embedding, viz.log_inversion, viz.log_class_models, viz.log_channel_visualizations, viz.log_correspondence), then press Reload.';
const RUN_COLORS = ['#f57c00', '#1976d2', '#388e3c', '#7b1fa2', '#c2185b', '#0097a7', '#5d4037', '#455a64'];
const STYLESHEET_WAIT_MS = 1000;
const IMAGE_WAIT_MS = 1500; // how long new mosaics may decode before they replace the old ones anyway

const state = {
  runs: [], // [{run, activations: [...], filters: [...], dead: [...]}] as /runs gives them
  known: new Set(), // runs seen so far: a run appearing on Reload starts checked
  selected: new Set(),
  view: 'activations',
  layer: null,
  step: null, // null follows the latest step
  steps: [], // the slider's steps: union over the selected runs
  sortNoise: false,
  deadSummaries: new Map(), // run -> summary JSON or Error
  hiddenMethods: new Set(), // attribution methods switched off in the method list
};

let ui = null;
let generation = 0; // bumps on every update; async work from an older one is dropped
let columns = new Map(); // run -> {element, stepInfo, body}, reused so that the slider does not flicker
let pendingFrame = 0;

/** Builds the whole tab into document.body. */
export async function render() {
  const styled = installHead();
  model.fetchRuns().catch(() => {}); // starts while the stylesheet loads; loadRuns() gets the cached reply
  await styled;
  ui = views.buildShell(document.body);
  ui.root.dataset.pending = String(model.pendingCount());
  model.onActivity((count) => { ui.root.dataset.pending = String(count); });
  wireEvents();
  await loadRuns();
}

// The stylesheet sits beside this module; waiting for it (briefly) avoids a flash of unstyled content.
function installHead() {
  const href = new URL('./style.css', import.meta.url).href;
  if ([...document.querySelectorAll('link[rel=stylesheet]')].some((link) => link.href === href)) return null;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = href;
  const loaded = new Promise((resolve) => {
    link.addEventListener('load', resolve);
    link.addEventListener('error', resolve);
    setTimeout(resolve, STYLESHEET_WAIT_MS);
  });
  document.head.append(link);
  return loaded;
}

/* ------------------------------------------------------------------ events */

function wireEvents() {
  ui.runList.addEventListener('change', (event) => {
    const box = event.target.closest('input.run-toggle');
    if (!box) return;
    if (box.checked) state.selected.add(box.dataset.run);
    else state.selected.delete(box.dataset.run);
    update();
  });
  ui.viewButtons.addEventListener('click', (event) => {
    const button = event.target.closest('button.view-button');
    if (button) selectView(button.dataset.view);
  });
  ui.layerList.addEventListener('click', (event) => {
    const item = event.target.closest('.layer-item');
    if (item && state.view === 'attribution') {
      const method = item.dataset.layer;
      if (state.hiddenMethods.has(method)) state.hiddenMethods.delete(method);
      else state.hiddenMethods.add(method);
      update();
      return;
    }
    if (!item || item.dataset.layer === state.layer) return;
    state.layer = item.dataset.layer;
    update();
  });
  ui.slider.addEventListener('input', onSlider);
  ui.slider.addEventListener('keydown', onSliderKey);
  ui.sortNoise.addEventListener('change', () => {
    state.sortNoise = ui.sortNoise.checked;
    for (const grid of ui.columns.querySelectorAll('.filter-grid')) views.orderFilterTiles(grid, state.sortNoise);
  });
  ui.opacity.addEventListener('input', () => {
    ui.root.style.setProperty('--overlay-opacity', String(Number(ui.opacity.value) / 100));
  });
  ui.reload.addEventListener('click', () => {
    model.clearCache();
    state.deadSummaries.clear();
    loadRuns();
  });
  ui.deadAlert.addEventListener('click', (event) => {
    if (event.target.closest('.alert-show')) showFirstDeadLayer();
  });
}

function selectView(view) {
  if (!(view in views.VIEW_NAMES) || view === state.view) return;
  state.view = view;
  update();
}

// The slider's value is a training step; each column shows its run's last sample at or before it.
// Reaching the last step means "follow the latest".
function onSlider() {
  const steps = state.steps;
  if (!steps.length) return;
  const step = Math.round(Number(ui.slider.value));
  const latest = step >= steps[steps.length - 1];
  state.step = latest ? null : step;
  views.setStepLabel(ui.stepLabel, step, latest);
  // Dragging fires many events: draw once per frame.
  cancelAnimationFrame(pendingFrame);
  pendingFrame = requestAnimationFrame(() => update({ keepSlider: true }));
}

// Arrow keys jump between logged steps: irregular steps (0, 20, ..., 220, 239) give the range a step
// of 1, and twenty presses to reach the next picture would be useless.
function onSliderKey(event) {
  const steps = state.steps;
  const forward = event.key === 'ArrowRight' || event.key === 'ArrowUp';
  const backward = event.key === 'ArrowLeft' || event.key === 'ArrowDown';
  if (!steps.length || (!forward && !backward)) return;
  event.preventDefault();
  const value = Number(ui.slider.value);
  const next = forward ? steps.find((step) => step > value) ?? steps[steps.length - 1]
    : [...steps].reverse().find((step) => step < value) ?? steps[0];
  ui.slider.value = String(next);
  onSlider();
}

function showFirstDeadLayer() {
  const dead = deadByLayer();
  const layer = layerUnion('dead').find((name) => dead.has(name)) ?? [...dead.keys()][0];
  if (!layer) return;
  state.view = 'dead';
  state.layer = layer;
  update();
}

/* ------------------------------------------------------------------ loading runs */

async function loadRuns() {
  views.setStatus(ui.status, 'loading', 'Loading runs…');
  let reply;
  try {
    reply = await model.fetchRuns();
  } catch (error) {
    views.setStatus(ui.status, 'error', `Could not load the runs: ${error.message}`);
    return;
  }
  state.runs = Array.isArray(reply && reply.runs) ? reply.runs.filter((entry) => entry && typeof entry.run === 'string') : [];
  for (const { run } of state.runs) {
    if (!state.known.has(run)) state.selected.add(run);
    state.known.add(run);
  }
  const names = new Set(state.runs.map((entry) => entry.run));
  for (const run of [...state.selected]) if (!names.has(run)) state.selected.delete(run);
  views.renderRunList(ui.runList, state.runs.map((entry) => entry.run), state.selected, colorOf);
  if (state.runs.length) views.setStatus(ui.status, 'ok');
  else views.setStatus(ui.status, 'empty', EMPTY_TEXT);
  update();
}

/* ------------------------------------------------------------------ state helpers */

function viewNoun(view) {
  if (view === 'attribution') return 'attribution maps';
  if (view === 'performance') return 'accuracy views';
  if (view === 'top') return 'top patches';
  if (view === 'embedding') return 'embeddings';
  if (view === 'inversion') return 'inversions';
  if (view === 'channel_vis') return 'channel visualisations';
  if (view === 'correspondence') return 'correspondences';
  return views.VIEW_NAMES[view].toLowerCase();
}

function selectedRuns() {
  return state.runs.filter((entry) => state.selected.has(entry.run));
}

function layersOf(entry, kind) {
  return Array.isArray(entry[kind]) ? entry[kind].filter((name) => typeof name === 'string') : [];
}

/**
 * The layers of one kind over the selected runs, in model order: a layer missing from the first run is
 * inserted after the layer that precedes it in the run that has it.
 */
function layerUnion(kind) {
  const union = [];
  for (const entry of selectedRuns()) {
    let position = 0;
    for (const layer of layersOf(entry, kind)) {
      const found = union.indexOf(layer);
      if (found >= 0) position = found + 1;
      else union.splice(position++, 0, layer);
    }
  }
  return union;
}

/** Layer -> [{run, dead, channels, step}] over the selected runs whose summary has dead channels. */
function deadByLayer() {
  const result = new Map();
  for (const { run } of selectedRuns()) {
    const summary = state.deadSummaries.get(run);
    if (!summary || summary instanceof Error || !summary.layers) continue;
    for (const [layer, info] of Object.entries(summary.layers)) {
      const dead = Array.isArray(info && info.dead) ? info.dead : [];
      if (!dead.length) continue;
      if (!result.has(layer)) result.set(layer, []);
      result.get(layer).push({ run, dead, channels: info.channels, step: info.step });
    }
  }
  return result;
}

/** The largest of `steps` (sorted) that is <= `step`, or undefined. */
function atOrBefore(steps, step) {
  let found;
  for (const candidate of steps) {
    if (candidate <= step) found = candidate;
    else break;
  }
  return found;
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

function colorOf(run) {
  const index = state.runs.findIndex((entry) => entry.run === run);
  return RUN_COLORS[Math.max(0, index) % RUN_COLORS.length];
}

/* ------------------------------------------------------------------ rendering */

/** Re-renders everything from the state; cached data makes this cheap. */
function update({ keepSlider = false } = {}) {
  const current = ++generation;
  const kind = state.view;
  const layers = layerUnion(kind);
  if (!layers.includes(state.layer)) state.layer = layers[0] ?? null;
  views.markViewButtons(ui.viewButtons, state.view);
  ui.sortControl.hidden = state.view !== 'filters';
  ui.opacityControl.hidden = state.view !== 'attribution';
  ui.layerTitle.textContent = { attribution: 'Methods', performance: 'Data sets', inversion: 'Images', class_model: 'Sets' }[state.view] ?? 'Layers';
  renderSidebarFlags(layers);
  loadDeadSummaries();
  renderHeading();
  if (!state.runs.length) {
    showMessage(null); // #status already says there is no data, and how to log some
    return;
  }
  if (!state.selected.size) {
    showMessage(views.emptyBox('Select at least one run.'));
    return;
  }
  if (!state.layer) {
    showMessage(views.emptyBox(`No ${viewNoun(kind)} logged in the selected runs.${kind === 'attribution'
      ? ' Log them with viz.log_saliency(step, method=...) and viz.log_occlusion(step).'
      : kind === 'performance' ? ' Log them with viz.log_performance(data, step).'
        : kind === 'top' ? ' Log them with viz.log_top_activations(data, layer, step).'
          : kind === 'embedding' ? ' Log them with viz.log_embedding(data, layer, step).'
            : kind === 'inversion' ? ' Log them with viz.log_inversion(step).'
              : kind === 'class_model' ? ' Log them with viz.log_class_models(step).'
                : kind === 'channel_vis' ? ' Log them with viz.log_channel_visualizations(step, layer).'
                  : kind === 'correspondence' ? ' Log them with viz.log_correspondence(step, image_a, image_b, layer).' : ''}`));
    return;
  }
  if (kind === 'dead') renderDead(current, keepSlider);
  else if (kind === 'attribution') renderAttribution(current, keepSlider);
  else renderSamples(current, kind, keepSlider);
}

function renderSidebarFlags(layers = layerUnion(state.view)) {
  const dead = deadByLayer();
  const selected = state.view === 'attribution' ? new Set(shownMethods(layers)) : state.layer;
  views.renderLayerList(ui.layerList, layers, selected, dead,
    state.selected.size ? `No ${viewNoun(state.view)} in the selected runs` : 'No run selected');
  const counts = [];
  const failures = [];
  for (const { run } of selectedRuns()) {
    const summary = state.deadSummaries.get(run);
    if (summary instanceof Error) failures.push({ run, message: summary.message });
    else if (summary && summary.layers) {
      const layersWithDead = Object.values(summary.layers).filter((info) => info && Array.isArray(info.dead) && info.dead.length).length;
      if (layersWithDead) counts.push({ run, layers: layersWithDead });
    }
  }
  views.renderDeadAlert(ui.deadAlert, counts, failures);
}

// Dead summaries feed the badges and the alert; they arrive after the first paint, then stay cached.
function loadDeadSummaries() {
  const missing = selectedRuns().filter((entry) => layersOf(entry, 'dead').length && !state.deadSummaries.has(entry.run));
  if (!missing.length) return;
  Promise.all(missing.map(({ run }) => model.fetchDeadSummary(run)
    .then((summary) => state.deadSummaries.set(run, summary), (error) => state.deadSummaries.set(run, error))))
    .then(() => renderSidebarFlags());
}

function renderHeading() {
  if (state.view === 'attribution') {
    const shown = shownMethods(layerUnion('attribution'));
    ui.heading.replaceChildren(views.el('span', { className: 'heading-view',
      text: `${views.VIEW_NAMES.attribution} · ${shown.map(attribution.methodTitle).join(', ') || 'no method selected'}` }));
    return;
  }
  const parts = state.layer ? [views.el('span', { className: 'heading-layer', text: state.layer }),
    views.el('span', { className: 'heading-view', text: ` · ${views.VIEW_NAMES[state.view]}` })] : [];
  ui.heading.replaceChildren(...parts);
}

/** Replaces the columns with one message (nothing to show). */
function showMessage(box) {
  columns = new Map();
  ui.columns.replaceChildren(...(box ? [box] : []));
  ui.stepControl.hidden = true;
}

/** One column per selected run, reusing the ones already on screen. */
function ensureColumns() {
  const next = new Map();
  for (const { run } of selectedRuns()) next.set(run, columns.get(run) || views.runColumn(run, colorOf(run)));
  columns = next;
  ui.columns.replaceChildren(...[...next.values()].map((column) => column.element));
  for (const column of next.values()) {
    if (!column.body.firstChild) column.body.append(views.loadingBox());
  }
  return next;
}

/** Puts `content` into a column unless a newer update has started meanwhile. */
function fill(current, column, content, stepText = '') {
  if (current !== generation) return;
  column.stepInfo.textContent = stepText;
  column.body.replaceChildren(content);
  column.body.classList.remove('stale');
}

function markStale() {
  for (const column of columns.values()) column.body.classList.add('stale');
}

/** Sets the slider over `steps` and returns the step it points at. */
function setSlider(steps, keepSlider) {
  state.steps = steps;
  ui.stepControl.hidden = false;
  if (!steps.length) {
    views.configureSlider(ui.slider, ui.stepLabel, steps);
    return undefined;
  }
  const latest = steps[steps.length - 1];
  // A pinned step stays where it is (within the range) when the layer changes, so layers compare at one step.
  const step = state.step === null ? latest : Math.min(Math.max(state.step, steps[0]), latest);
  if (!keepSlider || !steps.length) views.configureSlider(ui.slider, ui.stepLabel, steps, step, state.step === null);
  else views.setStepLabel(ui.stepLabel, step, step === latest);
  return step;
}

/* ------------------------------------------------------------------ activations and filters */

async function renderSamples(current, kind, keepSlider) {
  const layer = state.layer;
  const runs = selectedRuns();
  const shown = ensureColumns();
  markStale();
  const stepLists = await Promise.all(runs.map((entry) => runSteps(entry, kind, layer)));
  if (current !== generation) return;
  const union = [...new Set(stepLists.filter(Array.isArray).flat())].sort((a, b) => a - b);
  const sliderStep = setSlider(union, keepSlider);
  runs.forEach((entry, i) => fillSampleColumn(current, shown.get(entry.run), entry, kind, layer, stepLists[i], sliderStep));
}

/** A run's logged steps of a layer, [] when the run does not have it, or the Error. */
async function runSteps(entry, kind, layer) {
  if (!layersOf(entry, kind).includes(layer)) return null;
  try {
    const reply = await model.fetchSteps(entry.run, kind, layer);
    return (Array.isArray(reply.steps) ? reply.steps : []).map((item) => Number(item.step))
      .filter(Number.isFinite).sort((a, b) => a - b);
  } catch (error) {
    return error;
  }
}

async function fillSampleColumn(current, column, entry, kind, layer, steps, sliderStep) {
  const noun = views.VIEW_NAMES[kind].toLowerCase();
  if (steps === null) return fill(current, column, views.emptyBox(`No ${noun} logged for layer ${layer} in this run.`));
  if (steps instanceof Error) return fill(current, column, views.errorBox(steps.message));
  if (!steps.length) return fill(current, column, views.emptyBox(`No ${noun} steps logged for layer ${layer} yet.`));
  const step = atOrBefore(steps, sliderStep);
  if (step === undefined) {
    return fill(current, column, views.emptyBox(`Nothing logged at or before step ${sliderStep}; the first step is ${steps[0]}.`));
  }
  const stepText = step === sliderStep ? `step ${step}` : `step ${step} (latest at or before ${sliderStep})`;
  try {
    const sample = await model.fetchSample(entry.run, kind, layer, step);
    const content = kind === 'activations' ? await activationsContent(entry.run, layer, step, sample)
      : kind === 'performance' ? await performanceContent(entry.run, layer, step, sample)
        : kind === 'top' ? await topContent(entry.run, layer, step, sample)
          : kind === 'embedding' ? await embeddingContent(entry.run, layer, step, sample)
            : kind === 'inversion' ? synthesis.inversionView(sample, sampleUrls(entry.run, kind, layer, step, sample))
              : kind === 'class_model' ? synthesis.classModelsView(sample, sampleUrls(entry.run, kind, layer, step, sample))
                : kind === 'channel_vis' ? await channelVisContent(entry, layer, step, sample)
                  : kind === 'correspondence' ? await correspondenceContent(entry.run, layer, step, sample)
                    : await filtersContent(entry.run, layer, step, sample);
    fill(current, column, content, stepText);
  } catch (error) {
    fill(current, column, views.errorBox(error.message), stepText);
  }
}

async function activationsContent(run, layer, step, sample) {
  const urls = sampleUrls(run, 'activations', layer, step, sample);
  const { element, images } = views.activationsView(sample, urls, showImageError);
  // Let the new mosaics decode before they replace the old ones, so that moving the slider does not blink.
  await Promise.race([
    Promise.allSettled(images.map((img) => img.decode())),
    new Promise((resolve) => { setTimeout(resolve, IMAGE_WAIT_MS); }),
  ]);
  return element;
}

/** The URL of every picture of a sample, in order. */
function sampleUrls(run, kind, layer, step, sample) {
  const count = Math.max(0, Number(sample.images) || 0);
  return Array.from({ length: count }, (_, index) => pictureUrl(run, kind, layer, step, sample, index));
}

/** Channel visualisations, beside each channel's filter and top patches where those are logged. */
async function channelVisContent(entry, layer, step, sample) {
  const top = await topPatchesAt(entry, layer, step);
  return synthesis.channelVisView(sample, sampleUrls(entry.run, 'channel_vis', layer, step, sample), {
    top, loadFilter: (filterLayer, filter) => filterTileAt(entry.run, filterLayer, step, filter) });
}

/** The layer's top patches at or before `step` ({sample, sprite, step}), or null when none are logged. */
async function topPatchesAt(entry, layer, step) {
  const steps = await runSteps(entry, 'top', layer);
  if (!Array.isArray(steps)) return null;
  const at = atOrBefore(steps, step);
  if (at === undefined) return null;
  try {
    const sample = await model.fetchSample(entry.run, 'top', layer, at);
    const sprite = await bitmapOrError(entry.run, 'top', layer, at, sample, 0);
    return sprite instanceof Error ? null : { sample, sprite, step: at };
  } catch (error) {
    return null;
  }
}

function pictureUrl(run, kind, layer, step, sample, index) {
  const key = Array.isArray(sample.blobs) ? sample.blobs[index] : undefined;
  return typeof key === 'string' ? model.blobUrl(run, key) : model.imageUrl(run, kind, layer, step, index);
}

// A broken picture shows the server's reason where the picture would have been.
async function showImageError(url, frame) {
  const message = await model.explainImageError(url);
  frame.replaceChildren(views.errorBox(message));
}

/** A sample's picture, or the Error that kept it away: views show the error in place of the picture. */
async function bitmapOrError(run, kind, layer, step, sample, index) {
  try {
    return await model.fetchBitmap(pictureUrl(run, kind, layer, step, sample, index));
  } catch (error) {
    return error;
  }
}

async function filtersContent(run, layer, step, sample) {
  const bitmap = await bitmapOrError(run, 'filters', layer, step, sample, 0);
  return views.filtersView(sample, bitmap, state.sortNoise);
}

async function embeddingContent(run, layer, step, sample) {
  const sprite = await bitmapOrError(run, 'embedding', layer, step, sample, 0);
  return embedding.embeddingView(sample, sprite);
}

async function correspondenceContent(run, layer, step, sample) {
  const bitmaps = await Promise.all([0, 1].map((index) => bitmapOrError(run, 'correspondence', layer, step, sample, index)));
  return correspondence.correspondenceView(sample, bitmaps);
}

async function topContent(run, layer, step, sample) {
  const sprite = await bitmapOrError(run, 'top', layer, step, sample, 0);
  let whole = null;
  if (Number(sample.images) > 1) {
    whole = await bitmapOrError(run, 'top', layer, step, sample, 1);
    if (whole instanceof Error) whole = null;  // the whole images are an extra: the patches still show
  }
  const source = sample.meta && sample.meta.source_layer;
  const rates = await deadRatesAt(run, source, step);
  return top.topView(sample, sprite, rates, whole, (filterLayer, filter) => filterTileAt(run, filterLayer, step, filter));
}

/** Channel -> dead rate at the dead-filter flush at or before `step` (null when the layer is not watched). */
async function deadRatesAt(run, layer, step) {
  const entry = state.runs.find((item) => item.run === run);
  if (!entry || !layersOf(entry, 'dead').includes(layer)) return null;
  try {
    const reply = await model.fetchDead(run, layer);
    const at = deadColumnAt(reply, step);
    if (at < 0) return null;
    const row = (reply.rates || [])[at] || [];
    return { threshold: Number(reply.threshold), rates: new Map(row.map((rate, channel) => [channel, views.toNumber(rate)])), step: Number(reply.steps[at]) };
  } catch (error) {
    return null;
  }
}

/** The tile of one filter of a conv layer, from the Filters view's latest sample at or before `step`. */
async function filterTileAt(run, layer, step, filter) {
  try {
    const reply = await model.fetchSteps(run, 'filters', layer);
    const steps = (reply.steps || []).map((item) => Number(item.step)).sort((a, b) => a - b);
    const at = atOrBefore(steps, step);
    if (at === undefined) return null;
    const sample = await model.fetchSample(run, 'filters', layer, at);
    const bitmap = await model.fetchBitmap(pictureUrl(run, 'filters', layer, at, sample, 0));
    return views.singleFilterTile(sample, bitmap, filter);
  } catch (error) {
    return null;
  }
}

async function performanceContent(run, layer, step, sample) {
  const load = async (index) => {
    if (Number(sample.images) <= index) return null;
    return bitmapOrError(run, 'performance', layer, step, sample, index);
  };
  const [thumbnails, saliency] = await Promise.all([load(0), load(1)]);
  return performance.performanceView(sample, { thumbnails, saliency });
}

/* ------------------------------------------------------------------ dead filters */

async function renderDead(current, keepSlider) {
  const layer = state.layer;
  const runs = selectedRuns();
  const shown = ensureColumns();
  markStale();
  const replies = await Promise.all(runs.map((entry) => runDead(entry, layer)));
  if (current !== generation) return;
  const union = [...new Set(replies.flatMap((reply) => (reply && !(reply instanceof Error) && Array.isArray(reply.steps)
    ? reply.steps.map(Number) : [])))].sort((a, b) => a - b);
  const sliderStep = setSlider(union, keepSlider);
  runs.forEach((entry, i) => {
    const column = shown.get(entry.run);
    const reply = replies[i];
    if (reply === null) fill(current, column, views.emptyBox(`No dead-filter statistics for layer ${layer} in this run.`));
    else if (reply instanceof Error) fill(current, column, views.errorBox(reply.message));
    else fill(current, column, views.deadView(reply, Number(reply.steps[deadColumnAt(reply, sliderStep)])), deadStepText(reply));
  });
}

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

function deadStepText(reply) {
  const steps = reply.steps;
  return steps.length ? `steps ${steps[0]}–${steps[steps.length - 1]}` : '';
}

/* ------------------------------------------------------------------ where it looks */

function shownMethods(methods) {
  return methods.filter((method) => !state.hiddenMethods.has(method));
}

// Every shown method side by side, each at its latest step at or before the slider's.
async function renderAttribution(current, keepSlider) {
  const methods = shownMethods(layerUnion('attribution'));
  const runs = selectedRuns();
  const shown = ensureColumns();
  if (!methods.length) {
    for (const column of shown.values()) fill(current, column, views.emptyBox('Select at least one method in the list.'));
    return;
  }
  markStale();
  const stepLists = await Promise.all(runs.map((entry) => Promise.all(methods.map((method) => runSteps(entry, 'attribution', method)))));
  if (current !== generation) return;
  const union = [...new Set(stepLists.flat().filter(Array.isArray).flat())].sort((a, b) => a - b);
  const sliderStep = setSlider(union, keepSlider);
  runs.forEach((entry, i) => fillAttributionColumn(current, shown.get(entry.run), entry, methods, stepLists[i], sliderStep));
}

async function fillAttributionColumn(current, column, entry, methods, stepLists, sliderStep) {
  const entries = await Promise.all(methods.map(async (method, i) => {
    const steps = stepLists[i];
    if (steps === null) return { method };
    if (steps instanceof Error) return { method, error: steps.message };
    const step = atOrBefore(steps, sliderStep);
    if (step === undefined) return { method };
    try {
      const sample = await model.fetchSample(entry.run, 'attribution', method, step);
      const count = Number(sample.meta && sample.meta.images) || 0;
      const urls = {
        input: (n) => pictureUrl(entry.run, 'attribution', method, step, sample, n),
        map: (n) => pictureUrl(entry.run, 'attribution', method, step, sample, count + n),
      };
      return { method, sample, urls, stepText: `step ${step}` };
    } catch (error) {
      return { method, error: error.message };
    }
  }));
  const steps = [...new Set(entries.filter((e) => e.sample).map((e) => e.sample.step))].sort((a, b) => a - b);
  const stepText = steps.length ? `step ${steps.join(', ')}` : '';
  fill(current, column, attribution.attributionView(entries), stepText);
}
