// Data access for the CNNVIZ tab: the only module that talks to the server.
//
// createModel() makes one tab's data access (app.js makes it; views reach it as ctx.model). Every JSON reply and
// every decoded picture is cached by URL in it, so moving the step slider back, switching views or re-rendering
// never asks the server twice for the same thing. `forgetChanging()` (a live refresh, live.js) drops what newly
// logged data can change. A view with routes of its own asks them with `getJson(routeUrl(route, params))`.

// Routes live beside /static/, whatever URL prefix TensorBoard runs under. Relative URLs in fetch()
// would resolve against the iframe document, so the base comes from this module's own URL
// (.../cnnviz/static/<version>/model.js: the part before static/).
const BASE = new URL(import.meta.url.slice(0, import.meta.url.lastIndexOf('/static/') + 1));

/** A failed request, carrying the server's own message when it sent one. */
export class ApiError extends Error {
  constructor(message, status, url) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.url = url;
  }
}

/**
 * One tab's data access: its caches, its requests in flight and the runs' model names (below). Views reach it
 * as `ctx.model`.
 */
export function createModel() {
  const jsonCache = new Map(); // url -> Promise<object>
  const bitmapCache = new Map(); // url -> Promise<ImageBitmap>
  const activityListeners = new Set();
  // Several models in one run (CNNViz(..., name=...)): /runs lists each as an entry of its own, with the run's
  // name and the model's. The tab shows each as a run named "run · model" (pick one, or put them side by side,
  // alerts name them); this map turns that name back into the run and model the routes take.
  const models = new Map(); // shown name -> {run, model}
  let pending = 0;

  /** Absolute URL of a route with its query parameters (a shown "run · model" name becomes run and model). */
  function routeUrl(route, params = {}) {
    const url = new URL(route, BASE);
    const source = typeof params.run === 'string' ? models.get(params.run) : undefined;
    for (const [key, value] of Object.entries(source ? { ...params, ...source } : params)) {
      url.searchParams.set(key, String(value));
    }
    return url.href;
  }

  /** /runs with each named model of a run shown as a run of its own. */
  function modelsAsRuns(reply) {
    if (!reply || !Array.isArray(reply.runs)) return reply;
    const real = new Set(reply.runs.filter((entry) => entry && !entry.model).map((entry) => entry.run));
    models.clear();
    const runs = reply.runs.map((entry) => {
      if (!entry || typeof entry.run !== 'string' || typeof entry.model !== 'string' || !entry.model) return entry;
      let shown = `${entry.run} · ${entry.model}`;
      while (real.has(shown) || models.has(shown)) shown += ' ·';
      models.set(shown, { run: entry.run, model: entry.model });
      return { ...entry, run: shown };
    });
    return { ...reply, runs };
  }

  /** The JSON reply at `url`, cached. */
  function getJson(url) {
    return cached(jsonCache, url, async () => {
      const response = await request(url);
      try {
        return await response.json();
      } catch (error) {
        throw new ApiError(`malformed JSON from ${shortRoute(url)}: ${error.message}`, response.status, url);
      }
    });
  }

  // Failures stay cached too, so that a broken layer is not re-requested on every slider move; Reload
  // clears them with everything else.
  function cached(cache, url, load) {
    if (!cache.has(url)) cache.set(url, track(load()));
    return cache.get(url);
  }

  async function track(promise) {
    setPending(pending + 1);
    try {
      return await promise;
    } finally {
      setPending(pending - 1);
    }
  }

  function setPending(count) {
    pending = count;
    for (const listener of activityListeners) listener(pending);
  }

  return {
    routeUrl,
    getJson,
    /** Calls `listener(pendingCount)` whenever a request starts or ends (for a busy indicator). */
    onActivity: (listener) => { activityListeners.add(listener); },
    /** How many requests are in flight now. */
    pendingCount: () => pending,
    /**
     * Forgets the cached replies that newly logged data can change (the runs, steps, dead-filter series and
     * summaries...), so that the next calls ask again: a step's sample, and every picture, never change.
     */
    forgetChanging() {
      for (const url of [...jsonCache.keys()]) if (new URL(url).pathname.split('/').pop() !== 'sample') jsonCache.delete(url);
    },
    /** The run a shown name stands for ("run · model" is a model of run `run`), else the name itself. */
    runOf: (shown) => (models.has(shown) ? models.get(shown).run : shown),
    fetchRuns: () => getJson(routeUrl('runs')).then(modelsAsRuns),
    /**
     * /steps of one series. Its `latest` (a picture series' latest sample, as /sample answers it) goes into the
     * cache, so the tab, which opens on the latest step, paints without asking for it again.
     */
    fetchSteps(run, kind, layer) {
      const reply = getJson(routeUrl('steps', { run, kind, layer }));
      reply.then((steps) => {
        const latest = steps && steps.latest;
        if (latest && Number.isInteger(latest.step)) {
          const sampleUrl = routeUrl('sample', { run, kind, layer, step: latest.step });
          if (!jsonCache.has(sampleUrl)) jsonCache.set(sampleUrl, Promise.resolve(latest));
        }
      }, () => {});
      return reply;
    },
    fetchSample: (run, kind, layer, step) => getJson(routeUrl('sample', { run, kind, layer, step })),
    /** URL of one PNG of a sample, for an <img> (the browser caches it: the server says it never changes). */
    imageUrl: (run, kind, layer, step, index) => routeUrl('image', { run, kind, layer, step, index }),
    /** URL of one PNG by the blob key that `/sample` lists: one read, no lookup of the series (the fast path). */
    blobUrl: (run, key) => routeUrl('blob', { run, key }),
    /** The decoded PNG at `url`, for drawing sub-rectangles of it on canvases. */
    fetchBitmap: (url) => cached(bitmapCache, url, async () => createImageBitmap(await (await request(url)).blob())),
  };
}

/**
 * Why the picture at `url` failed to load. An <img> only says "error"; asking again with fetch() gets
 * the server's message.
 */
export async function explainImageError(url) {
  try {
    await request(url);
    return 'the picture could not be decoded';
  } catch (error) {
    return error.message;
  }
}

/** fetch() that turns network failures and non-2xx replies into ApiErrors with a readable message. */
async function request(url) {
  let response;
  try {
    response = await fetch(url, { credentials: 'same-origin' });
  } catch (error) {
    throw new ApiError(`${shortRoute(url)}: network error (${error.message})`, 0, url);
  }
  if (!response.ok) throw new ApiError(await errorMessage(response), response.status, url);
  return response;
}

// The plugin answers errors as {"error": "..."}; TensorBoard's own error handler answers plain text.
async function errorMessage(response) {
  const fallback = `${response.status} ${response.statusText || 'error'} from ${shortRoute(response.url)}`;
  let text;
  try {
    text = await response.text();
  } catch {
    return fallback;
  }
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === 'string' && body.error) return body.error;
  } catch {
    // Not JSON: fall through to the text itself.
  }
  const plain = text.trim();
  return plain && plain.length < 500 && !plain.startsWith('<') ? plain : fallback;
}

function shortRoute(url) {
  try {
    const parsed = new URL(url);
    return parsed.pathname.split('/').pop() || parsed.pathname;
  } catch {
    return String(url);
  }
}
