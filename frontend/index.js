// Entry point of the CNNVIZ tab: TensorBoard's plugin iframe imports this module and calls render().
//
// It has no static imports, so that it runs at once: it asks for the runs and for every module of the tab
// together, where static imports would let the browser find the modules one import level at a time (three
// round trips through TensorBoard), and the runs only after them. Then app.js renders.

// Every module under frontend/ but this one (tests/test_plugin.py checks the list against the folder).
const MODULES = [
  'app.js', 'colormap.js', 'dom.js', 'model.js', 'registry.js', 'samples.js',
  'views/activations.js', 'views/attribution.js', 'views/attribution_checks.js', 'views/channels.js',
  'views/class_models.js', 'views/correspondence.js', 'views/dead.js', 'views/embedding.js',
  'views/filters.js', 'views/inversion.js', 'views/performance.js', 'views/top.js',
];
// Waiting for the stylesheet (briefly) avoids a flash of unstyled content.
const STYLESHEET_WAIT_MS = 1000;

export async function render() {
  // model.js's first request, for the runs: the same URL and mode, so the browser hands its fetch() this
  // response. Routes live before static/ (see model.js).
  const routes = import.meta.url.slice(0, import.meta.url.lastIndexOf('/static/') + 1);
  addLink('preload', `${routes}runs`, { as: 'fetch', crossOrigin: 'anonymous' });
  const styled = new Promise((resolve) => {
    const link = addLink('stylesheet', 'style.css');
    link.addEventListener('load', resolve);
    link.addEventListener('error', resolve);
    setTimeout(resolve, STYLESHEET_WAIT_MS);
  });
  for (const name of MODULES) addLink('modulepreload', name);
  const [app] = await Promise.all([import('./app.js'), styled]);
  await app.render();
}

function addLink(rel, name, properties = {}) {
  const link = Object.assign(document.createElement('link'), properties);
  link.rel = rel;
  link.href = new URL(name, import.meta.url).href;
  document.head.append(link);
  return link;
}
