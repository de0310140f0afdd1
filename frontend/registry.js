// The tab's views, in the order of their buttons. A view is a module under views/ whose default export is its
// descriptor; adding one is a new file there and one line here.
//
// A descriptor has:
//   kind      the summary kind the server lists per run (/runs) and the button's data-view
//   title     the button's text (and the column's noun in its messages, lower-cased)
//   noun      what the view shows, for messages ("No top patches logged in the selected runs.")
//   logCalls  the Python calls that log it, for the empty-state hints
//   load(ctx) -> data, stepsOf(data) -> [step], column(ctx, data, sliderStep) -> {content, stepText}
//             one run's data, the steps it adds to the slider, and its column at the slider's step; ctx is
//             {entry (the run's /runs entry), run, layer, items}. samples.js's sampleView() supplies all three
//             for a view that shows one sample per run: it then only needs content(ctx) -> element.
// and optionally:
//   listTitle         the sidebar list's heading (default 'Layers')
//   control({root})   an element for the toolbar, built once and shown while the view is
//   pickMany, itemNoun, itemTitle(name)
//                     the list switches items on and off instead of picking one; ctx.items are those on

const NAMES = [
  'activations',
  'filters',
  'dead',
  'attribution',
  'top',
  'embedding',
  'performance',
  'inversion',
  'class_models',
  'channels',
  'correspondence',
];

export const VIEWS = await Promise.all(NAMES.map(async (name) => (await import(`./views/${name}.js`)).default));

/** The descriptor of `kind`, or undefined. */
export function viewOf(kind) {
  return VIEWS.find((view) => view.kind === kind);
}
