// The CNNVIZ tab, rendered by index.js once its modules and stylesheets are in.
// render() makes one tab: its state, its data access (model.js's createModel) and the wiring of events to the
// data, the DOM (dom.js) and the views (registry.js). It knows no view by name: views mark the rest of the tab
// through their `flags` hooks and answer each other through `provides` (see registry.js).

import { createModel } from './model.js';
import * as dom from './dom.js';
import * as shell from './shell.js';
import { VIEWS, ask, flagHooks, viewOf } from './registry.js';
import { layersOf, neverLoggedText, unionInOrder } from './samples.js';
import { startLive } from './live.js';

const EMPTY_TEXT = 'No CNNVIZ data yet: log with tb_cnnviz.CNNViz(model, writer, probe_images=...) '
  + `(${VIEWS.flatMap((view) => view.logCalls.map((call) => call.split('(')[0])).join(', ')}); the tab shows them as they come.`;

/** Builds the whole tab into document.body (index.js has loaded the stylesheets). */
export async function render() {
  await createTab(document.body);
}

async function createTab(parent) {
  const model = createModel();
  const state = {
    runs: [], // [{run, <kind>: [layer names...], ...}] as /runs gives them
    known: new Set(), // runs seen so far: a run appearing later starts checked
    selected: new Set(),
    view: VIEWS[0].kind,
    layer: null,
    step: null, // null follows the latest step
    steps: [], // the slider's steps: union over the selected runs
    stores: new Map(), // kind -> the view's own state for the tab's life (ctx.store)
    flagData: new Map(), // kind -> the data of the view's flags (tab.data), until the next refresh
    hidden: new Map(), // kind -> the items switched off in the list of a view that picks many
    layerFilter: '', // the layer tree's filter box (long lists only: see shell.renderLayerList)
    openBlocks: new Map(), // block key -> open: the user's choices in the layer tree, without a filter
    filterBlocks: new Map(), // the same while a filter is on; forgotten when the filter changes
  };

  const ui = shell.buildShell(parent, VIEWS);
  const controls = new Map(VIEWS.filter((view) => view.control) // kind -> the view's toolbar control
    .map((view) => [view.kind, view.control({ root: ui.root, store: storeOf(view.kind) })]));
  let generation = 0; // bumps on every update; async work from an older one is dropped
  let columns = new Map(); // run -> {element, stepInfo, body}, reused so that the slider does not flicker
  let pendingFrame = 0;
  let listedLayer = null; // the selected layer when the list was last drawn
  let drawnKey = ''; // what the columns show (view, layer, runs, steps): a refresh that changes none redraws nothing
  const live = startLive(refresh); // TensorBoard's reloads, its run colours, and a timer at its reload period

  ui.toolbar.append(...controls.values());
  ui.root.dataset.pending = String(model.pendingCount());
  model.onActivity((count) => { ui.root.dataset.pending = String(count); });
  wireEvents();
  const firstRuns = model.fetchRuns().catch(() => null); // asked for at once; the run colours come meanwhile
  await live.ready;
  await firstRuns;
  await loadRuns();

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
      const toggle = event.target.closest('.layer-block-toggle');
      if (toggle) {
        const blocks = state.layerFilter.trim() ? state.filterBlocks : state.openBlocks;
        blocks.set(toggle.dataset.block, toggle.getAttribute('aria-expanded') !== 'true');
        renderSidebarFlags();
        return;
      }
      const item = event.target.closest('.layer-item');
      if (item && viewOf(state.view).pickMany) {
        const hidden = hiddenItems(state.view);
        if (hidden.has(item.dataset.layer)) hidden.delete(item.dataset.layer);
        else hidden.add(item.dataset.layer);
        update();
        return;
      }
      if (!item || item.dataset.layer === state.layer) return;
      state.layer = item.dataset.layer;
      update();
    });
    ui.layerFilter.addEventListener('input', () => {
      state.layerFilter = ui.layerFilter.value;
      state.filterBlocks.clear();
      renderSidebarFlags();
    });
    ui.slider.addEventListener('input', onSlider);
    ui.slider.addEventListener('keydown', onSliderKey);
    ui.reload.addEventListener('click', () => live.refreshNow());
  }

  function selectView(kind) {
    if (kind !== state.view) show(kind, state.layer);
  }

  // The slider's value is a step; each column shows its run's last sample at or before it. The last: "latest".
  function onSlider() {
    const steps = state.steps;
    if (!steps.length) return;
    const step = Math.round(Number(ui.slider.value));
    const latest = step >= steps[steps.length - 1];
    state.step = latest ? null : step;
    shell.setStepLabel(ui.stepLabel, step, latest);
    // Dragging fires many events: draw once per frame.
    cancelAnimationFrame(pendingFrame);
    pendingFrame = requestAnimationFrame(() => update({ keepSlider: true }));
  }

  // Arrow keys jump between logged steps (irregular steps give the range a step of 1: presses would be wasted).
  function onSliderKey(event) {
    const steps = state.steps;
    const forward = event.key === 'ArrowRight' || event.key === 'ArrowUp';
    const backward = event.key === 'ArrowLeft' || event.key === 'ArrowDown';
    if (!steps.length || (!forward && !backward)) return;
    event.preventDefault();
    ui.slider.value = String(shell.nextStep(steps, Number(ui.slider.value), forward));
    onSlider();
  }

  /** Opens view `kind` on `layer` (an alert's Show button, a view's click asks for it), at `step` when given. */
  function show(kind, layer, step) {
    if (!viewOf(kind)) return;
    state.view = kind;
    state.layer = layer;
    if (Number.isFinite(step)) state.step = step;
    update();
  }

  /* ------------------------------------------------------------------ loading runs */

  async function loadRuns() {
    shell.setStatus(ui.status, 'loading', 'Loading runs…');
    let reply;
    try {
      reply = await model.fetchRuns();
    } catch (error) {
      shell.setStatus(ui.status, 'error', `Could not load the runs: ${error.message}`);
      return;
    }
    applyRuns(reply);
    update();
  }

  /** Takes a /runs reply: new runs start selected; the run list is drawn again only when it changed. */
  function applyRuns(reply) {
    const before = JSON.stringify([state.runs.map((entry) => entry.run), [...state.selected]]);
    state.runs = Array.isArray(reply && reply.runs) ? reply.runs.filter((entry) => entry && typeof entry.run === 'string') : [];
    for (const { run } of state.runs) {
      if (!state.known.has(run)) state.selected.add(run);
      state.known.add(run);
    }
    const names = new Set(state.runs.map((entry) => entry.run));
    for (const run of [...state.selected]) if (!names.has(run)) state.selected.delete(run);
    const after = JSON.stringify([state.runs.map((entry) => entry.run), [...state.selected]]);
    if (after !== before || !ui.runList.firstChild) {
      shell.renderRunList(ui.runList, state.runs.map((entry) => entry.run), state.selected, colorOf);
    }
    // TensorBoard's run list may have changed its colours: every swatch (sidebar, columns) takes its run's again.
    for (const swatch of ui.root.querySelectorAll('[data-color-run]')) swatch.style.background = colorOf(swatch.dataset.colorRun);
    if (state.runs.length) shell.setStatus(ui.status, 'ok');
    else shell.setStatus(ui.status, 'empty', EMPTY_TEXT);
  }

  /**
   * Live: asks again for what may have changed (the runs, the shown series' steps, the flags' summaries; a
   * step's sample and pictures never change) and redraws only what did, in place, once its pictures are decoded.
   */
  async function refresh() {
    model.forgetChanging();
    let reply;
    try {
      reply = await model.fetchRuns();
    } catch (error) {
      return; // a failed refresh keeps what is drawn; the next one tries again
    }
    applyRuns(reply);
    const fresh = new Map();
    await Promise.all(flagHooks('load').map(([view, load]) => {
      fresh.set(view.kind, {});
      return load({ ...flagTab(view), data: fresh.get(view.kind) });
    }));
    state.flagData = fresh;
    await update({ quiet: true });
  }

  /* ------------------------------------------------------------------ state helpers */

  function selectedRuns() {
    return state.runs.filter((entry) => state.selected.has(entry.run));
  }

  /**
   * The layers of one kind over the selected runs, in model order: a layer missing from the first run is
   * inserted after the layer that precedes it in the run that has it.
   */
  function layerUnion(kind) {
    return unionInOrder(selectedRuns().map((entry) => layersOf(entry, kind)));
  }

  /** The items of a view that picks many (such as methods) that are switched off, by kind. */
  function hiddenItems(kind) {
    if (!state.hidden.has(kind)) state.hidden.set(kind, new Set());
    return state.hidden.get(kind);
  }

  /** The items of the list that are on: every layer of a view that picks many, except those switched off. */
  function shownItems(view, layers = layerUnion(view.kind)) {
    return view.pickMany ? layers.filter((item) => !hiddenItems(view.kind).has(item)) : [];
  }

  /** The view's own state for the tab's life (ctx.store). */
  function storeOf(kind) {
    if (!state.stores.has(kind)) state.stores.set(kind, {});
    return state.stores.get(kind);
  }

  /** What a view's flag hooks get (registry.js). */
  function flagTab(view) {
    if (!state.flagData.has(view.kind)) state.flagData.set(view.kind, {});
    return { model, runs: selectedRuns(), data: state.flagData.get(view.kind), layersOf: layerUnion, show };
  }

  /** The flag hooks' marks of one kind (`name`), for every view that has that hook, drawn in registry order. */
  function marks(name, ...args) {
    return flagHooks(name).map(([view, hook]) => hook(flagTab(view), ...args)).filter(Boolean);
  }

  /** TensorBoard's colour of the run (of the run holding it, for a model shown as a run of its own). */
  function colorOf(run) {
    return live.colors.colorOf(model.runOf(run));
  }

  /* ------------------------------------------------------------------ rendering */

  /** Re-renders everything from the state; cached data makes this cheap. `quiet`: a live refresh (no dimming). */
  function update({ keepSlider = false, quiet = false } = {}) {
    const current = ++generation;
    delete ui.root.dataset.drawn;
    const view = viewOf(state.view);
    const layers = layerUnion(view.kind);
    if (!layers.includes(state.layer)) state.layer = layers[0] ?? null;
    const who = state.selected.size > 1 ? 'the selected runs' : 'the selected run';
    shell.markViewButtons(ui.viewButtons, view.kind, new Map(VIEWS.filter((each) => state.selected.size
      && !selectedRuns().some((entry) => layersOf(entry, each.kind).length)).map((each) => [each.kind, neverLoggedText(each, who)])));
    for (const [kind, control] of controls) control.hidden = kind !== view.kind;
    ui.layerTitle.textContent = view.listTitle ?? 'Layers';
    renderSidebarFlags(layers);
    loadFlags();
    renderHeading(view, layers);
    if (!state.runs.length) {
      showMessage(null); // #status already says there is no data, and how to log some
      return;
    }
    if (!state.selected.size) {
      showMessage(dom.emptyBox('Select at least one run.'));
      return;
    }
    if (!state.layer) {
      showMessage(dom.emptyBox(neverLoggedText(view, who)));
      return;
    }
    return renderView(current, view, layers, keepSlider, quiet);
  }

  function renderSidebarFlags(layers = layerUnion(state.view)) {
    const view = viewOf(state.view);
    if (state.layer !== listedLayer) {
      // A newly selected layer shows: the blocks holding it open again, even if they were closed by hand.
      for (const key of shell.layerPrefixes(state.layer ?? '')) if (state.openBlocks.get(key) === false) state.openBlocks.delete(key);
      listedLayer = state.layer;
    }
    const filter = state.layerFilter.trim();
    shell.renderLayerList(ui.layerList, layers, view.pickMany ? new Set(shownItems(view, layers)) : state.layer,
      (layer) => shell.badgeGroup(marks('layerBadge', layer)), state.selected.size ? `No ${view.noun} in the selected runs` : 'No run selected', {
        filter,
        open: filter ? state.filterBlocks : state.openBlocks,
        blockBadgeOf: (names) => shell.badgeGroup(marks('blockBadge', names)),
        filterBox: ui.layerFilter,
      });
    ui.alerts.replaceChildren(...marks('alert'));
  }

  // The views' flags (badges and alerts) load their data after the first paint, then stay cached.
  function loadFlags() {
    for (const [view, load] of flagHooks('load')) {
      const loading = load(flagTab(view));
      if (loading) loading.then(() => renderSidebarFlags());
    }
  }

  function renderHeading(view, layers) {
    shell.renderHeading(ui.heading, view, state.layer, view.pickMany ? shownItems(view, layers).map(view.itemTitle ?? String) : null);
  }

  /** Replaces the columns with one message (nothing to show). */
  function showMessage(box) {
    columns = new Map();
    drawnKey = '';
    ui.columns.replaceChildren(...(box ? [box] : []));
    ui.stepControl.hidden = true;
  }

  /** One column per selected run, reusing the ones already on screen. */
  function ensureColumns() {
    const next = new Map();
    for (const { run } of selectedRuns()) next.set(run, columns.get(run) || dom.runColumn(run, colorOf(run)));
    columns = next;
    ui.columns.replaceChildren(...[...next.values()].map((column) => column.element));
    for (const column of next.values()) {
      if (!column.body.firstChild) column.body.append(dom.loadingBox());
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

  /** Waits until the pictures in `content` (not yet on the page) are decoded. */
  function decoded(content) {
    const images = content && content.querySelectorAll ? [...content.querySelectorAll('img')] : [];
    return Promise.all(images.map((img) => img.decode().catch(() => {})));
  }

  function markStale() {
    for (const column of columns.values()) column.body.classList.add('stale');
  }

  /** Sets the slider over `steps` and returns the step it points at. */
  function setSlider(steps, keepSlider) {
    state.steps = steps;
    ui.stepControl.hidden = false;
    if (!steps.length) {
      shell.configureSlider(ui.slider, ui.stepLabel, steps);
      return undefined;
    }
    const latest = steps[steps.length - 1];
    // A pinned step stays where it is (within the range) when the layer changes, so layers compare at one step.
    const step = state.step === null ? latest : Math.min(Math.max(state.step, steps[0]), latest);
    if (!keepSlider || !steps.length) shell.configureSlider(ui.slider, ui.stepLabel, steps, step, state.step === null);
    else shell.setStepLabel(ui.stepLabel, step, step === latest);
    return step;
  }

  /* ------------------------------------------------------------------ the selected view's columns */

  /**
   * One column per selected run: each run's data for the view is loaded, the slider spans the steps of them
   * all, and each column shows its run at the slider's step (see registry.js for the view's part).
   */
  async function renderView(current, view, layers, keepSlider, quiet) {
    const shown = ensureColumns();
    const items = shownItems(view, layers);
    if (view.pickMany && !items.length) {
      for (const column of shown.values()) fill(current, column, dom.emptyBox(`Select at least one ${view.itemNoun} in the list.`));
      return;
    }
    if (!quiet) markStale();
    const store = storeOf(view.kind);
    const contexts = selectedRuns().map((entry) => {
      const ctx = { entry, run: entry.run, layer: state.layer, items, model, store, show };
      ctx.ask = (name, ...args) => ask(name, ctx, ...args);
      return ctx;
    });
    const loaded = await Promise.all(contexts.map((ctx) => view.load(ctx)));
    if (current !== generation) return;
    const union = [...new Set(loaded.flatMap((data) => view.stepsOf(data)))].sort((a, b) => a - b);
    const sliderStep = setSlider(union, keepSlider);
    const key = JSON.stringify([view.kind, state.layer, items, sliderStep, contexts.map((ctx) => ctx.run),
      loaded.map((data) => view.stepsOf(data))]);
    if (quiet && key === drawnKey && ui.root.querySelector('.run-body:not(.stale)')) {
      ui.root.dataset.drawn = view.kind; // nothing new: what is drawn stays, untouched
      return;
    }
    await Promise.all(contexts.map(async (ctx, i) => {
      const { content, stepText } = await view.column(ctx, loaded[i], sliderStep);
      if (quiet) await decoded(content); // a live redraw swaps in finished pictures: no blank frame
      fill(current, shown.get(ctx.run), content, stepText);
    }));
    drawnKey = key;
    // Every column drawn: said on the root for tests and benchmarks (pictures may still be decoding).
    if (current === generation) ui.root.dataset.drawn = view.kind;
  }
}
