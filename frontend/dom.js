// DOM helpers every view uses, and the tab's frame (shell, sidebar, slider, run columns, state boxes, tooltip).
// No fetching and no state here: app.js and the views pass data in.
//
// Every string that came from data (run, layer and tag names, labels) goes through textContent or a
// dataset/attribute setter, never through innerHTML: names are text, even when they look like markup.

export const SVG_NS = 'http://www.w3.org/2000/svg';
export const ACCENT = '#f57c00';

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

/** An SVG element with `attrs`; `children`: nodes or strings (strings become text nodes). */
export function svg(tag, attrs = {}, children = []) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) node.append(child);
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

/** A share as "12.3%", or `missing` when it is not a finite number. */
export function percent(value, missing = '–') {
  return typeof value === 'number' && Number.isFinite(value) ? `${(100 * value).toFixed(1)}%` : missing;
}

export function formatShape(shape) {
  return Array.isArray(shape) ? shape.join('×') : '?';
}

export function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}

/** A short list of indices: "1, 4, 9" or "1, 4, 9, … (40 in all)". */
export function indexList(indices, limit = 24) {
  const shown = indices.slice(0, limit).join(', ');
  return indices.length > limit ? `${shown}, … (${indices.length} in all)` : shown;
}

export function asArray(value) {
  return Array.isArray(value) ? value : [];
}

/** The name of class `value` from a sample's `class_names`, else the number; '?' for no class (-1, null). */
export function classLabel(meta, value) {
  if (typeof value !== 'number' || value < 0) return '?';
  return Array.isArray(meta.class_names) && typeof meta.class_names[value] === 'string' ? meta.class_names[value] : String(value);
}

/**
 * Draws cell (row, col) of a sprite (a grid of `layout.width` x `layout.height` pictures `layout.gap` apart)
 * onto `context` at (x, y), `width` x `height`.
 */
export function drawSpriteCell(context, sprite, layout, row, col, x, y, width, height) {
  const gap = layout.gap || 0;
  context.drawImage(sprite, col * (layout.width + gap), row * (layout.height + gap), layout.width, layout.height,
    x, y, width, height);
}

/** A picture with a caption: the first line as its name, the others as details; `extra` goes below. */
export function pictureFigure(url, title, captionLines, extra = null, size = 96) {
  return el('figure', { className: 'synth-figure' }, [
    el('img', { className: 'synth-picture', title, attrs: { src: url, alt: title, width: size, height: size, decoding: 'async' } }),
    el('figcaption', {}, captionLines.map((line, i) => el('div', { className: i ? 'synth-detail' : 'synth-name', text: line }))),
    extra,
  ]);
}

/* ------------------------------------------------------------------ shell */

/**
 * Builds the static frame of the tab into `parent` and returns its parts; `views` ([{kind, title}]) gives the
 * view buttons; `alerts` is where views' alerts go (registry.js's flag hooks). app.js attaches the listeners
 * through event delegation, so re-rendering a list never loses them.
 */
export function buildShell(parent, views) {
  const status = el('div', { attrs: { id: 'status', role: 'status', 'aria-live': 'polite' } });
  const runList = el('div', { className: 'run-list' });
  const viewButtons = el('div', { className: 'view-buttons', attrs: { role: 'group', 'aria-label': 'View' } },
    views.map(({ kind, title }) =>
      el('button', { className: 'view-button', text: title, dataset: { view: kind }, attrs: { type: 'button' } })));
  const layerList = el('ul', { className: 'layer-list', attrs: { 'aria-label': 'Layers' } });
  const layerFilter = el('input', { className: 'layer-filter', hidden: true, attrs: { id: 'layer-filter', type: 'search',
    placeholder: 'Filter by name', 'aria-label': 'Filter the list by name', autocomplete: 'off', spellcheck: 'false' } });
  const reload = el('button', { className: 'reload-button', text: 'Reload', attrs: { type: 'button', id: 'reload' },
    title: 'Ask the server again for runs, steps and samples logged since the tab opened' });

  const sidebar = el('aside', { className: 'sidebar' }, [
    panel('Runs', runList),
    panel('View', viewButtons),
    panel('Layers', [layerFilter, layerList], 'layers-panel'),
    reload,
  ]);

  const alerts = el('div', { className: 'tab-alerts' });
  const slider = el('input', { attrs: { id: 'step-slider', type: 'range', min: 0, max: 0, step: 1, value: 0,
    'aria-label': 'Training step' } });
  const stepLabel = el('span', { attrs: { id: 'step-label' } });
  const stepControl = el('div', { className: 'step-control' }, [
    el('label', { text: 'Step', attrs: { for: 'step-slider' } }), slider, stepLabel]);
  const toolbar = el('div', { className: 'toolbar' }, [stepControl]); // views add their own controls after the slider
  const heading = el('div', { className: 'layer-heading' });
  const columns = el('div', { className: 'run-columns' });
  const main = el('main', { className: 'main' }, [status, alerts, toolbar, heading, columns]);

  const tooltip = el('div', { className: 'cnnviz-tooltip', hidden: true, attrs: { role: 'tooltip' } });
  const root = el('div', { attrs: { id: 'cnnviz-root' }, className: 'cnnviz' }, [sidebar, main, tooltip]);
  parent.append(root);
  return { root, status, runList, viewButtons, layerList, layerFilter, reload, alerts, toolbar, stepControl, slider,
    stepLabel, heading, columns, layerTitle: sidebar.querySelector('.layers-panel h2') };
}

function panel(title, content, extraClass = '') {
  return el('section', { className: `panel ${extraClass}`.trim() }, [el('h2', { text: title }), ...[content].flat()]);
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

/** Lists of more than this many items are grouped by module path into collapsible blocks and get a filter box;
 * shorter ones stay flat (a few names read best as they are). */
export const TREE_ABOVE = 20;

/**
 * The layer list (in a view that picks many, such as one listing methods, `selected` is the Set shown).
 * `badgeOf(layer)` gives a node to show beside a layer's name, or null.
 *
 * A list longer than TREE_ABOVE is a tree (`options`): layers are grouped by module path (`layer1.0.relu#2`
 * sits in block `layer1`, then `0`) into blocks with a toggle (aria-expanded), keeping the order given;
 * `blockBadgeOf(layers)` gives a block's rolled-up badge (its layers, in order), `filter` keeps the layers whose
 * name holds it (any case) with their blocks, and `open` (Map block key -> bool) holds the user's choices;
 * without one a block is open while it holds the selected layer, or while a filter is on. `filterBox` (an input)
 * is shown with a tree and hidden with a flat list, which ignores the filter.
 */
export function renderLayerList(container, layers, selected, badgeOf, emptyText, options = {}) {
  const { blockBadgeOf = () => null, filter = '', open = new Map(), filterBox = null } = options;
  // Re-rendering replaces the buttons: keep keyboard focus on the same layer (or block toggle).
  const active = container.contains(document.activeElement) ? document.activeElement : null;
  const tree = layers.length > TREE_ABOVE;
  if (filterBox) filterBox.hidden = !tree;
  container.classList.toggle('layer-tree', tree);
  if (!layers.length) {
    container.replaceChildren(el('li', { className: 'layer-empty', text: emptyText }));
    return;
  }
  const isSelected = (layer) => (selected instanceof Set ? selected.has(layer) : layer === selected);
  const item = (layer, label) => {
    const button = el('button', { className: 'layer-item', dataset: { layer }, title: layer, attrs: { type: 'button' } },
      [el('span', { className: 'layer-name', text: label }), badgeOf(layer)]);
    button.classList.toggle('selected', isSelected(layer));
    button.setAttribute('aria-current', String(isSelected(layer)));
    return el('li', {}, [button]);
  };
  if (!tree) {
    container.replaceChildren(...layers.map((layer) => item(layer, layer)));
  } else {
    const needle = filter.trim().toLowerCase();
    const shown = needle ? layers.filter((layer) => layer.toLowerCase().includes(needle)) : layers;
    const block = (node) => {
      const expanded = open.has(node.key) ? open.get(node.key)
        : Boolean(needle) || (!(selected instanceof Set) && node.layers.includes(selected));
      const toggle = el('button', { className: 'layer-block-toggle', dataset: { block: node.key },
        title: `${node.key}: ${plural(node.layers.length, 'layer')}`, attrs: { type: 'button', 'aria-expanded': expanded } }, [
        el('span', { className: 'block-caret', text: expanded ? '▾' : '▸', attrs: { 'aria-hidden': 'true' } }),
        el('span', { className: 'layer-name', text: node.label }),
        el('span', { className: 'block-size', text: String(node.layers.length) }),
        blockBadgeOf(node.layers)]);
      const children = el('ul', { className: 'layer-block-children', hidden: !expanded,
        attrs: { role: 'group', 'aria-label': node.key } }, node.children.map(nodeItem));
      return el('li', { className: 'layer-block', dataset: { block: node.key } }, [toggle, children]);
    };
    const nodeItem = (node) => (node.children ? block(node) : item(node.layer, node.label));
    const rows = layerTree(shown.map((name) => ({ name, parts: name.split('.') }))).map(nodeItem);
    if (needle) {
      rows.unshift(el('li', { className: 'layer-filter-count', text: shown.length
        ? `${shown.length} of ${layers.length} match` : `Nothing matches “${filter.trim()}”` }));
    }
    container.replaceChildren(...rows);
  }
  if (active && (active.dataset.layer !== undefined || active.dataset.block !== undefined)) {
    const selector = active.dataset.layer !== undefined ? '.layer-item' : '.layer-block-toggle';
    const key = active.dataset.layer ?? active.dataset.block;
    const again = [...container.querySelectorAll(selector)].find((node) => (node.dataset.layer ?? node.dataset.block) === key);
    if (again) again.focus();
  }
}

/** The blocks (module-path prefixes) that hold a layer: `layer1` and `layer1.0` for `layer1.0.relu#2`. */
export function layerPrefixes(layer) {
  const parts = String(layer).split('.');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
}

/**
 * Layers ({name, parts: the name split at dots}, in order) as a tree at path depth `depth`: a run of consecutive
 * layers sharing their next path component becomes a block {key, label, layers, children}; a layer alone in
 * its block stays a leaf {layer, label} (label: its path below the enclosing block, `downsample.0`), and a block
 * whose only child is a block merges with it (`model.backbone`). Nothing is reordered: a prefix that comes back
 * after other layers opens a second block of the same key.
 */
function layerTree(layers, depth = 0, parentKey = '') {
  const nodes = [];
  for (let i = 0; i < layers.length;) {
    const { name, parts } = layers[i];
    let end = i + 1;
    if (parts.length > depth + 1) {
      while (end < layers.length && layers[end].parts.length > depth + 1 && layers[end].parts[depth] === parts[depth]) end += 1;
    }
    if (end - i === 1) {
      nodes.push({ layer: name, label: parts.slice(depth).join('.') });
    } else {
      const key = parentKey ? `${parentKey}.${parts[depth]}` : parts[depth];
      const group = layers.slice(i, end);
      let node = { key, label: parts[depth], layers: group.map((layer) => layer.name), children: layerTree(group, depth + 1, key) };
      while (node.children.length === 1 && node.children[0].children) {
        const only = node.children[0];
        node = { ...only, label: `${node.label}.${only.label}` };
      }
      nodes.push(node);
    }
    i = end;
  }
  return nodes;
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

export function errorBox(message, label = 'Error: ') {
  return el('div', { className: 'state-box state-error', attrs: { role: 'alert' } }, [
    el('strong', { text: label }), el('span', { className: 'error-message', text: message })]);
}

export function emptyBox(text) {
  return el('div', { className: 'state-box state-empty', text });
}

export function note(className, text) {
  return el('div', { className: `note ${className}`, text });
}

/* ------------------------------------------------------------------ tooltip */

/** The tab's one tooltip (buildShell made it). */
function tooltipElement() {
  return document.querySelector('.cnnviz-tooltip');
}

/**
 * Shows `lines` (text) and `flags` (highlighted words) next to the mouse. A flag that is one lower-case word
 * is styled as .flag-<word>; any other (`NaN/Inf`) as .flag-nonfinite.
 */
export function showTooltip(event, lines, flags = []) {
  const tooltip = tooltipElement();
  if (!tooltip) return;
  tooltip.replaceChildren(
    ...lines.map((line) => el('div', { text: line })),
    ...flags.map((flag) => el('div', { className: `tooltip-flag flag-${/^[a-z]+$/.test(flag) ? flag : 'nonfinite'}`, text: flag })));
  tooltip.hidden = false;
  const margin = 12;
  const { offsetWidth: width, offsetHeight: height } = tooltip;
  const x = event.clientX + margin + width > window.innerWidth ? event.clientX - margin - width : event.clientX + margin;
  const y = event.clientY + margin + height > window.innerHeight ? event.clientY - margin - height : event.clientY + margin;
  tooltip.style.left = `${Math.max(0, x)}px`;
  tooltip.style.top = `${Math.max(0, y)}px`;
}

export function hideTooltip() {
  const tooltip = tooltipElement();
  if (tooltip) tooltip.hidden = true;
}
