// Entry point of the CNNVIZ tab: TensorBoard's plugin iframe imports this module and calls render().
//
// It has no static imports, so that it runs at once: it asks for the runs (through model.js), then for every
// other module of the tab together, where static imports would let the browser find them one import level at
// a time (three round trips through TensorBoard before the first request for data). Then app.js renders.

// Every module under frontend/ but this one and model.js (tests/test_plugin.py checks the list against the
// folder).
const MODULES = [
  'app.js', 'colormap.js', 'dom.js', 'registry.js', 'samples.js',
  'views/activations.js', 'views/attribution.js', 'views/attribution_checks.js', 'views/channels.js',
  'views/class_models.js', 'views/correspondence.js', 'views/dead.js', 'views/embedding.js',
  'views/filters.js', 'views/inversion.js', 'views/performance.js', 'views/top.js',
];
// Waiting for the stylesheet (briefly) avoids a flash of unstyled content.
const STYLESHEET_WAIT_MS = 1000;

export async function render() {
  const styled = new Promise((resolve) => {
    const link = addLink('stylesheet', 'style.css');
    link.addEventListener('load', resolve);
    link.addEventListener('error', resolve);
    setTimeout(resolve, STYLESHEET_WAIT_MS);
  });
  // The runs first, so that their request does not queue behind the modules' (six connections at a time).
  const model = await import('./model.js');
  model.fetchRuns().catch(() => {}); // the app gets the cached reply
  for (const name of MODULES) addLink('modulepreload', name);
  const [app] = await Promise.all([import('./app.js'), styled]);
  await app.render();
}

function addLink(rel, name) {
  const link = document.createElement('link');
  link.rel = rel;
  link.href = new URL(name, import.meta.url).href;
  document.head.append(link);
  return link;
}
