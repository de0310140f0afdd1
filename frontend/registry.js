// The tab's views, in the order of their buttons: the one list of them. A view is a module views/<stem>.js whose
// default export is its descriptor; its stem is its kind on disk, its Python module and log_<stem> call, its
// button's data-view. Adding one is a new file there and one line here.
//
// A descriptor has:
//   kind      the summary kind the server lists per run (/runs) and the button's data-view
//   title     the button's text (and the column's noun in its messages, lower-cased)
//   noun      what the view shows, for messages ("No top patches logged in the selected runs.")
//   logCalls  the Python calls that log it, for the empty-state hints
//   load(ctx) -> data, stepsOf(data) -> [step], column(ctx, data, sliderStep) -> {content, stepText}
//             one run's data, the steps it adds to the slider, and its column at the slider's step. ctx is
//             {entry (the run's /runs entry), run, layer, items, model (the tab's data access, model.js),
//             store (an object the view keeps its own state in, for the tab's life), ask (below),
//             show(kind, layer, step) (opens another view, on a layer, at a step)}.
//             samples.js's sampleView() supplies all three for a view that shows one sample per run: it then
//             only needs content(ctx) -> element.
// and optionally:
//   listTitle         the sidebar list's heading (default 'Layers')
//   control({root, store})
//                     an element for the toolbar, built once and shown while the view is
//   pickMany, itemNoun, itemTitle(name)
//                     the list switches items on and off instead of picking one; ctx.items are those on
//   provides          {name: (ctx, ...args) -> answer}: what the view answers other views, which ask with
//                     ctx.ask(name, ...args) (a promise of the first provider's answer, null when none):
//                       filterTile(ctx, layer, step, filter) -> element | null    a conv filter's tile
//                       topPatches(ctx, layer, step) -> {step, patchesOf(channel, size) -> element | null} | null
//                       channelFlags(ctx, layer, step) -> Map channel -> {rate, off, health, step} | null
//                                           a channel's off rate at the flush at or before `step`, whether it is
//                                           off, and what an off channel is called there ('dead' or 'dormant')
//   flags             marks the view puts on the rest of the tab, each a function of `tab` = {model, runs (the
//                     selected /runs entries), data (an object kept until Reload), layersOf(kind) (its layers
//                     over the selected runs, in model order), show(kind, layer) (opens a view on a layer)}:
//                       load(tab) -> a promise while its data is on its way (the flags are drawn again when it
//                                    settles), else null
//                       layerBadge(tab, layer) -> element | null    beside a layer's name in the list
//                       blockBadge(tab, layers) -> element | null   beside a block of the layer tree
//                       alert(tab) -> element | null                a line above the columns

const NAMES = [
  'activations',
  'filters',
  'dead',
  'distribution',
  'attribution',
  'top_activations',
  'embedding',
  'performance',
  'inversion',
  'class_models',
  'channel_images',
  'correspondence',
  'schedule',
];

export const VIEWS = await Promise.all(NAMES.map(async (name) => (await import(`./views/${name}.js`)).default));

/** The descriptor of `kind`, or undefined. */
export function viewOf(kind) {
  return VIEWS.find((view) => view.kind === kind);
}

/** The views with a flag hook `name`, as [view, hook]. */
export function flagHooks(name) {
  return VIEWS.filter((view) => view.flags && typeof view.flags[name] === 'function').map((view) => [view, view.flags[name]]);
}

/** The first answer to `name` from a view that provides it (see `provides`), or null. */
export async function ask(name, ctx, ...args) {
  const view = VIEWS.find((candidate) => candidate.provides && typeof candidate.provides[name] === 'function');
  return view ? view.provides[name](ctx, ...args) : null;
}
