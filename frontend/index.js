// Entry point of the CNNVIZ tab: TensorBoard's plugin iframe imports this module and calls render().
//
// It has no static imports, so that it runs at once: it asks for the runs, for the list of the tab's modules and
// stylesheets (modules.json, which the plugin makes from the files it serves) and for app.js together; each module
// listed is preloaded as soon as the list is in, where static imports alone would let the browser find them one
// import level at a time (three round trips through TensorBoard), and the runs only after them. Then app.js
// renders.

// Waiting for the stylesheets (briefly) avoids a flash of unstyled content.
const STYLESHEET_WAIT_MS = 1000;
// What the tab loads if modules.json cannot be had: app.js still imports every module, one level at a time.
const FALLBACK = { modules: [], stylesheets: ['style.css'] };

export async function render() {
  // model.js's first request, for the runs: the same URL and mode, so the browser hands its fetch() this
  // response. Routes live before static/ (see model.js).
  const routes = import.meta.url.slice(0, import.meta.url.lastIndexOf('/static/') + 1);
  addLink('preload', `${routes}runs`, { as: 'fetch', crossOrigin: 'anonymous' });
  const app = import('./app.js');
  const styled = listing().then(({ modules, stylesheets }) => {
    for (const name of modules) addLink('modulepreload', name);
    return Promise.all(stylesheets.map((name) => new Promise((resolve) => {
      const link = addLink('stylesheet', name);
      link.addEventListener('load', resolve);
      link.addEventListener('error', resolve);
      setTimeout(resolve, STYLESHEET_WAIT_MS);
    })));
  });
  const [loaded] = await Promise.all([app, styled]);
  await loaded.render();
}

/** modules.json beside this module (the same versioned folder): {modules: [path], stylesheets: [path]}. */
async function listing() {
  try {
    const response = await fetch(new URL('modules.json', import.meta.url).href, { credentials: 'same-origin' });
    if (!response.ok) return FALLBACK;
    const reply = await response.json();
    const names = (list) => (Array.isArray(list) ? list.filter((name) => typeof name === 'string') : []);
    return { modules: names(reply.modules), stylesheets: names(reply.stylesheets) };
  } catch (error) {
    return FALLBACK;
  }
}

function addLink(rel, name, properties = {}) {
  const link = Object.assign(document.createElement('link'), properties);
  link.rel = rel;
  link.href = new URL(name, import.meta.url).href;
  document.head.append(link);
  return link;
}
