// What the tab learns from the TensorBoard page around its iframe, and TensorBoard's run colours.
//
// TensorBoard's page hosts a dynamic plugin's iframe through its "plugin API host": the iframe posts the message
// 'experimental.bootstrap' to its parent with a MessagePort, and the two then talk over that port in JSON
// ({type, id, payload, error, isReply}; every message is answered by one with isReply). TensorBoard 2.21 answers
// 'experimental.GetRuns' (the run names, in its runs table's order) and 'experimental.GetURLPluginData' (the
// page's URL hash parameters `p.<plugin>.<key>`), and broadcasts 'experimental.RunsChanged' (the new names) and
// 'experimental.DataReloaded' (after each reload: its ⟳ button and its auto-reload timer alike). That is all an
// iframe can observe: no run colours go over it, so runColors() below gives them as TensorBoard's Scalars
// dashboard does, from its run list.

const ANSWER_WAIT_MS = 3000; // outside TensorBoard (the page opened alone) nothing answers

/**
 * The link to TensorBoard's page: `on(type, callback)` subscribes to a broadcast, `ask(type)` is a promise of
 * the answer (null when no TensorBoard page answers).
 */
export function connectHost() {
  const listeners = new Map(); // type -> [callback]
  const waiting = new Map(); // id -> resolve
  let nextId = 0;
  let port = null;
  if (window.parent && window.parent !== window) {
    const channel = new MessageChannel();
    port = channel.port1;
    port.addEventListener('message', (event) => onMessage(event.data));
    port.start();
    window.parent.postMessage('experimental.bootstrap', '*', [channel.port2]);
  }

  function onMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (!message || typeof message.type !== 'string') return;
    if (message.isReply) {
      const resolve = waiting.get(message.id);
      waiting.delete(message.id);
      if (resolve) resolve(message.error ? null : message.payload);
      return;
    }
    for (const callback of listeners.get(message.type) || []) callback(message.payload);
    post({ type: message.type, id: message.id, payload: null, error: null, isReply: true });
  }

  function post(message) {
    port.postMessage(JSON.stringify(message));
  }

  return {
    on(type, callback) {
      if (!listeners.has(type)) listeners.set(type, []);
      listeners.get(type).push(callback);
    },
    ask(type, payload = null) {
      if (!port) return Promise.resolve(null);
      const id = nextId++;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        post({ type, id, payload, error: null, isReply: false });
        setTimeout(() => { if (waiting.delete(id)) resolve(null); }, ANSWER_WAIT_MS);
      });
    },
  };
}

// The palette of TensorBoard's run colours in its Scalars dashboard and every Polymer dashboard
// (tf_color_scale's `standard`, Paul Tol's colour-blind-safe "tensorboardColorBlindAssist").
const PALETTE = ['#ff7043', '#0077bb', '#cc3311', '#33bbee', '#ee3377', '#009988', '#bbbbbb'];

/**
 * TensorBoard's colour of each run, as its Scalars dashboard gives them (tf_color_scale's runsColorScale): the
 * run at position i of TensorBoard's run list (its /data/runs: by start time, then name) takes the palette's
 * colour i modulo its length. A run that starts later than the others comes last, so the colours already given
 * stay as runs appear. `learn(names)` takes TensorBoard's run list each time it comes; `colorOf(name)` gives a
 * run's colour (a run not in that list, or every run outside TensorBoard, comes after it in the order asked).
 */
export function runColors() {
  let domain = [];
  const extra = [];
  return {
    learn(names) {
      if (Array.isArray(names)) domain = names.filter((name) => typeof name === 'string');
    },
    colorOf(name) {
      let index = domain.indexOf(name);
      if (index < 0) {
        if (!extra.includes(name)) extra.push(name);
        index = domain.length + extra.indexOf(name);
      }
      return PALETTE[index % PALETTE.length];
    },
  };
}
