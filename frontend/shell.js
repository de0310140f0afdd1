// The tab's frame, built once by app.js: the sidebar (runs, view buttons, the layer list or tree), the toolbar
// (the step slider) and the heading above the columns. Views never import it (they build columns with dom.js).

import { el, plural } from './dom.js';

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
    const swatch = el('span', { className: 'run-swatch', style: { background: colorOf(name) }, dataset: { colorRun: name },
      attrs: { 'aria-hidden': 'true' } });
    return el('label', { className: 'run-row', title: name }, [box, swatch, el('span', { className: 'run-label', text: name })]);
  }));
}

/**
 * Marks the shown view's button, and greys those of views no selected run logged (`notLogged`: kind -> the
 * text saying which call logs it): they stay clickable, and say why they are empty.
 */
export function markViewButtons(container, view, notLogged = new Map()) {
  for (const button of container.querySelectorAll('.view-button')) {
    const active = button.dataset.view === view;
    button.classList.toggle('active', active);
    button.setAttribute('aria-pressed', String(active));
    const why = notLogged.get(button.dataset.view);
    button.classList.toggle('not-logged', Boolean(why));
    button.title = why || '';
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
    slider.hidden = true;
    label.textContent = 'no steps';
    return;
  }
  const first = steps[0];
  const last = steps[steps.length - 1];
  slider.min = String(first);
  slider.max = String(Math.max(last, first));
  slider.step = '1'; // any step can be asked for: each column shows its last sample at or before it
  slider.value = String(value);
  // One logged step: no knob to move, and none left at the far left of an empty range beside "latest".
  slider.disabled = steps.length < 2;
  slider.hidden = steps.length < 2;
  setStepLabel(label, value, followsLatest);
  if (steps.length < 2) label.textContent = `step ${value} (the only step logged)`;
}

export function setStepLabel(label, value, followsLatest) {
  label.textContent = `step ${value}`;
  label.classList.toggle('latest', followsLatest);
  label.title = followsLatest ? 'Latest step (follows newly logged steps)' : '';
}

/** The logged step after (`forward`) or before `value`: arrow keys jump between pictures. */
export function nextStep(steps, value, forward) {
  return forward ? steps.find((step) => step > value) ?? steps[steps.length - 1]
    : [...steps].reverse().find((step) => step < value) ?? steps[0];
}

/** The heading above the columns: the layer and the view, or the view and the items shown (`shown`, a list). */
export function renderHeading(heading, view, layer, shown) {
  if (shown) {
    heading.replaceChildren(el('span', { className: 'heading-view',
      text: `${view.title} · ${shown.join(', ') || `no ${view.itemNoun} selected`}` }));
    return;
  }
  heading.replaceChildren(...(layer ? [el('span', { className: 'heading-layer', text: layer }),
    el('span', { className: 'heading-view', text: ` · ${view.title}` })] : []));
}

/** One badge node from the views' badges (most often none or one). */
export function badgeGroup(nodes) {
  if (nodes.length < 2) return nodes[0] ?? null;
  return el('span', { className: 'layer-badges' }, nodes);
}
