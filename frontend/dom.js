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

/** Sizes `canvas` to `width` x `height` CSS pixels at the screen's pixel density; its 2-D context, in CSS pixels. */
export function sharpCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.ceil(width * ratio);
  canvas.height = Math.ceil(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext('2d');
  context.scale(ratio, ratio);
  return context;
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

/* ------------------------------------------------------------------ run columns */

/** One run's column: heading, a line saying which step it shows, and a body. */
export function runColumn(run, color) {
  const stepInfo = el('div', { className: 'step-info' });
  const body = el('div', { className: 'run-body' });
  const element = el('section', { className: 'run-column', dataset: { run } }, [
    el('h3', { className: 'run-heading' }, [
      el('span', { className: 'run-swatch', style: { background: color }, dataset: { colorRun: run }, attrs: { 'aria-hidden': 'true' } }),
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
