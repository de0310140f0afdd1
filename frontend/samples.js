// What views read, through the tab's model (ctx.model, from model.js): a run's logged steps of a layer, its
// samples and their pictures; and sampleView(), the descriptor of a view whose column shows one sample per run,
// the latest at or before the slider's step (most views are one).
// `ctx` below is a view's context (registry.js): at least {model, entry}.

import { explainImageError } from './model.js';
import { el, emptyBox, errorBox } from './dom.js';

/** The names a /runs entry lists for `kind` (layers, methods, data sets...). */
export function layersOf(entry, kind) {
  return Array.isArray(entry[kind]) ? entry[kind].filter((name) => typeof name === 'string') : [];
}

/**
 * The union of name lists in model order: a name missing from the first list is inserted after the name that
 * precedes it in the list that has it.
 */
export function unionInOrder(lists) {
  const union = [];
  for (const list of lists) {
    let position = 0;
    for (const name of list) {
      const found = union.indexOf(name);
      if (found >= 0) position = found + 1;
      else union.splice(position++, 0, name);
    }
  }
  return union;
}

/** The largest of `steps` (sorted) that is <= `step`, or undefined. */
export function atOrBefore(steps, step) {
  let found;
  for (const candidate of steps) {
    if (candidate <= step) found = candidate;
    else break;
  }
  return found;
}

/**
 * A run's logged steps of a layer (sorted), null when the run does not have the layer, or the Error. The
 * array's `written` is how many calls were logged: more than it holds when a long run was thinned.
 */
export async function runSteps(ctx, kind, layer) {
  const { entry, model } = ctx;
  if (!layersOf(entry, kind).includes(layer)) return null;
  try {
    const reply = await model.fetchSteps(entry.run, kind, layer);
    const steps = (Array.isArray(reply.steps) ? reply.steps : []).map((item) => Number(item.step))
      .filter(Number.isFinite).sort((a, b) => a - b);
    steps.written = Math.max(Number(reply.written) || 0, steps.length); // calls logged; TensorBoard may hold fewer
    return steps;
  } catch (error) {
    return error;
  }
}

/**
 * The run's sample of `kind` and `layer` at its latest step at or before `step`, as `{model, run, kind, layer,
 * step, sample}` (what pictureUrl and picture take), or null when there is none; a failed request is null too.
 */
export async function sampleAtOrBefore(ctx, kind, layer, step) {
  const { entry, model } = ctx;
  const steps = await runSteps(ctx, kind, layer);
  if (!Array.isArray(steps)) return null;
  const at = atOrBefore(steps, step);
  if (at === undefined) return null;
  try {
    return { model, run: entry.run, kind, layer, step: at, sample: await model.fetchSample(entry.run, kind, layer, at) };
  } catch (error) {
    return null;
  }
}

/**
 * ' · showing 17 of 900 logged steps' when TensorBoard holds fewer steps than were logged, else '' (also
 * for a run without the layer, null, or a failed request, an Error).
 */
export function thinnedNote(steps) {
  if (!Array.isArray(steps) || !(steps.written > steps.length)) return '';
  const { written } = steps;
  return ` · showing ${steps.length} of ${written} logged steps (thinned evenly over the run)`;
}

/** The URL of picture `index` of a sample; `at` = {model, run, kind, layer, step, sample}. */
export function pictureUrl(at, index) {
  const { model, run, kind, layer, step, sample } = at;
  const key = Array.isArray(sample.blobs) ? sample.blobs[index] : undefined;
  return typeof key === 'string' ? model.blobUrl(run, key) : model.imageUrl(run, kind, layer, step, index);
}

/** The URL of every picture of a sample, in order. */
export function pictureUrls(at) {
  const count = Math.max(0, Number(at.sample.images) || 0);
  return Array.from({ length: count }, (_, index) => pictureUrl(at, index));
}

/** A sample's decoded picture, or the Error that kept it away: views show the error in place of the picture. */
export async function picture(at, index) {
  try {
    return await at.model.fetchBitmap(pictureUrl(at, index));
  } catch (error) {
    return error;
  }
}

/** A broken <img> shows the server's reason in `frame`, where the picture would have been. */
export async function showImageError(url, frame) {
  const message = await explainImageError(url);
  frame.replaceChildren(errorBox(message));
}

/**
 * Completes a descriptor whose `content(ctx)` draws one sample: `ctx` is {entry, run, kind, layer, step,
 * sample}, and content returns (a promise of) the column's element. Adds load, stepsOf and column (see
 * registry.js).
 */
export function sampleView(descriptor) {
  return {
    ...descriptor,
    load: (ctx) => runSteps(ctx, descriptor.kind, ctx.layer),
    stepsOf: (steps) => (Array.isArray(steps) ? steps : []),
    column: (ctx, steps, sliderStep) => sampleColumn(descriptor, ctx, steps, sliderStep),
  };
}

/** 'This run never watched for dead filters: viz.watch_dead_filters(every=100) does.' and the like. */
export function neverLoggedText(view, who) {
  const what = view.kind === 'dead' ? 'watched for dead filters (nothing was measured, none were found)' : `logged ${view.noun}`;
  return `${who[0].toUpperCase()}${who.slice(1)} never ${what}: ${view.logCalls.join(' or ')} does.`;
}

/**
 * Why a run's column of a view is empty when the run has no series for the layer: the view was never logged in
 * this run (and the call that logs it), or it was, for other layers.
 */
export function notLoggedBox(view, ctx) {
  const logged = layersOf(ctx.entry, view.kind);
  if (!logged.length) return emptyBox(neverLoggedText(view, 'this run'));
  return emptyBox(`Layer ${ctx.layer} has no ${view.noun} in this run; it has them for ${logged.length === 1 ? 'layer' : 'layers'} `
    + `${logged.slice(0, 6).join(', ')}${logged.length > 6 ? `, … (${logged.length} in all)` : ''}.`);
}

async function sampleColumn(view, ctx, steps, sliderStep) {
  const { model, run, layer } = ctx;
  const noun = view.title.toLowerCase();
  if (steps === null) return { content: notLoggedBox(view, ctx) };
  if (steps instanceof Error) return { content: errorBox(steps.message) };
  if (!steps.length) return { content: emptyBox(`No ${noun} steps logged for layer ${layer} yet.`) };
  const step = atOrBefore(steps, sliderStep);
  if (step === undefined) {
    return { content: emptyBox(`Nothing logged at or before step ${sliderStep}; the first step is ${steps[0]}.`) };
  }
  const stepText = (step === sliderStep ? `step ${step}` : `step ${step} (latest at or before ${sliderStep})`)
    + thinnedNote(steps);
  try {
    const sample = await model.fetchSample(run, view.kind, layer, step);
    return { content: await view.content({ ...ctx, kind: view.kind, step, sample }), stepText };
  } catch (error) {
    return { content: errorBox(error.message), stepText };
  }
}

// A squeeze-and-excitation (or ECA) gate multiplies a layer's maps by one number per channel computed from the
// whole image: say so beside a receptive field, which follows the feature path the gate does not widen.
export function gatesNote(gates) {
  if (!Array.isArray(gates) || !gates.length) return null;
  const which = gates.length === 1 ? 'a whole-image gate' : `${gates.length} whole-image gates`;
  return el('div', { className: 'note gates-note', text: `Also scaled by ${which} (${gates.join(', ')}): each multiplies `
    + 'these maps by one number per channel computed from the whole image. The field shown is that of the feature '
    + 'path, which a gate does not widen.' });
}
