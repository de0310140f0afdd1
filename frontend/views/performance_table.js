// The per-class figures of the "Where it fails" view (performance.js): a bar per class over few classes, and
// over many a table sorted by any column and searched by name. DOM only; class names are text, never markup.

import { asArray, classLabel as className, el, percent } from '../dom.js';

/** Table rows drawn at once (a button draws more); sorting and searching always cover every class. */
const TABLE_ROWS = 100;

/* ------------------------------------------------------------------ per class */

/** How many classes the per-class figures cover. */
export function classCount(meta) {
  return asArray(meta.per_class && meta.per_class.support).length;
}

/**
 * Sort and search of the per-class tables, shared by every run's column and kept as the step changes, and the
 * refresh functions of the tables on screen: both kept in the view's store for the tab.
 */
function tablesOf(store) {
  if (!store.table) store.table = { key: 'accuracy', descending: false, query: '', limit: TABLE_ROWS };
  if (!store.liveTables) store.liveTables = new Set();
  const { table: tableState, liveTables } = store;
  const refreshTables = () => {
    for (const refresh of [...liveTables]) if (!refresh()) liveTables.delete(refresh);
  };
  return { tableState, liveTables, refreshTables };
}

/**
 * The table's columns: `value(i)` is class i's number (or name), null where undefined (accuracy of a class with
 * no example, precision of a class never predicted), which sorts last either way; `first` is the direction of
 * a column's first click.
 */
function classColumns(meta) {
  const perClass = meta.per_class;
  const support = asArray(perClass.support);
  const predicted = Array.isArray(meta.predicted_count) ? meta.predicted_count : null;
  const number = (list, i) => (typeof asArray(list)[i] === 'number' ? list[i] : null);
  const columns = [
    { key: 'index', title: '#', first: 'ascending', value: (i) => i, show: (i) => String(i) },
    { key: 'name', title: 'class', first: 'ascending', value: (i) => className(meta, i), show: (i) => className(meta, i) },
    { key: 'accuracy', title: 'accuracy (recall)', first: 'ascending',
      value: (i) => (support[i] > 0 ? number(perClass.accuracy, i) : null), show: (i) => (support[i] > 0 ? percent(perClass.accuracy[i]) : '–') },
    { key: 'precision', title: 'precision', first: 'ascending',
      value: (i) => (predicted && !(predicted[i] > 0) ? null : number(perClass.precision, i)),
      show: (i) => (predicted && !(predicted[i] > 0) ? '–' : percent(perClass.precision[i])) },
    { key: 'support', title: 'examples', first: 'descending', value: (i) => number(support, i), show: (i) => String(support[i] ?? '–') },
  ];
  if (predicted) {
    columns.push({ key: 'predicted', title: 'predicted as', first: 'descending', value: (i) => number(predicted, i),
      show: (i) => String(predicted[i] ?? '–') });
  }
  return columns;
}

/** Sorts classes by `column`, undefined values last; ties go to the class with more examples (as the PR-curve
 * choice of the worst does: 0% of 60 is worse news than 0% of 1), then the lower index. */
function compareBy(column, descending, support) {
  const tie = (a, b) => (support[b] ?? 0) - (support[a] ?? 0) || a - b;
  return (a, b) => {
    const [x, y] = [column.value(a), column.value(b)];
    if (x === null || y === null) return x === y ? tie(a, b) : x === null ? 1 : -1;
    const order = typeof x === 'string' ? x.localeCompare(y, undefined, { numeric: true, sensitivity: 'base' }) : x - y;
    return (descending ? -order : order) || tie(a, b);
  };
}

/**
 * Every class's figures as a table: a click on a column's header sorts by it (again: the other way), the box
 * keeps the classes whose name holds its text (any case). At most `tableState.limit` rows are drawn.
 */
export function classTable(meta, store) {
  const { tableState, liveTables, refreshTables } = tablesOf(store);
  const columns = classColumns(meta);
  const chosen = meta.pr_curves || {};
  const why = new Map([...asArray(chosen.worst).map((c) => [c, 'worst by accuracy']),
    ...asArray(chosen.most_frequent).map((c) => [c, 'most frequent'])]);
  const classes = classCount(meta);
  const search = el('input', { className: 'class-search', attrs: { type: 'search', placeholder: 'Find a class by name',
    'aria-label': 'Find a class by name', autocomplete: 'off', spellcheck: 'false' } });
  const count = el('span', { className: 'class-table-count', attrs: { 'aria-live': 'polite' } });
  const headers = columns.map((column) => {
    const button = el('button', { className: 'sort-button', text: column.title, dataset: { key: column.key }, attrs: { type: 'button' },
      title: `sort by ${column.title}` });
    button.addEventListener('click', () => {
      tableState.descending = tableState.key === column.key ? !tableState.descending : column.first === 'descending';
      tableState.key = column.key;
      refreshTables();
    });
    return el('th', { dataset: { key: column.key }, attrs: { scope: 'col' } }, [button]);
  });
  const body = el('tbody');
  const more = el('button', { className: 'class-table-more', attrs: { type: 'button' } });
  more.addEventListener('click', () => {
    tableState.limit += TABLE_ROWS * 5;
    refreshTables();
  });
  search.addEventListener('input', () => {
    tableState.query = search.value;
    tableState.limit = TABLE_ROWS;
    refreshTables();
  });
  const table = el('table', { className: 'class-table', attrs: { 'aria-label': 'Per-class figures' } }, [
    el('thead', {}, [el('tr', {}, headers)]), body]);
  const element = el('div', { className: 'class-table-frame' }, [
    el('div', { className: 'class-table-tools' }, [search, count]), el('div', { className: 'class-table-scroll' }, [table]), more]);

  const refresh = () => {
    if (element.dataset.drawn && !element.isConnected) return false; // its column was redrawn: forget it
    const column = columns.find((candidate) => candidate.key === tableState.key) || columns[2];
    const needle = tableState.query.trim().toLowerCase();
    const order = [...Array(classes).keys()].filter((i) => !needle || className(meta, i).toLowerCase().includes(needle))
      .sort(compareBy(column, tableState.descending, asArray(meta.per_class.support)));
    const shown = order.slice(0, tableState.limit);
    body.replaceChildren(...shown.map((i) => el('tr', { dataset: { class: i } }, columns.map((c) => {
      const cell = el('td', { className: `cell-${c.key}`, text: c.show(i) });
      if (c.key === 'name') {
        cell.title = c.show(i);
        if (why.has(i)) cell.append(el('span', { className: 'pr-mark', text: 'PR', title: `has a PR curve (${why.get(i)})` }));
      }
      return cell;
    }))));
    for (const th of headers) {
      th.setAttribute('aria-sort', th.dataset.key === column.key ? (tableState.descending ? 'descending' : 'ascending') : 'none');
    }
    if (document.activeElement !== search) search.value = tableState.query;
    count.textContent = needle ? `${order.length} of ${classes} classes match` : `${classes} classes`;
    if (shown.length < order.length) count.textContent += `, ${shown.length} shown`;
    more.hidden = shown.length >= order.length;
    more.textContent = `Show ${Math.min(TABLE_ROWS * 5, order.length - shown.length)} more`;
    element.dataset.drawn = 'true';
    return true;
  };
  refresh();
  liveTables.add(refresh);
  return element;
}

export function classBars(meta) {
  const perClass = meta.per_class;
  const order = perClass.accuracy.map((value, index) => index)
    .filter((index) => perClass.support[index] > 0)
    .sort((a, b) => perClass.accuracy[a] - perClass.accuracy[b]);
  return el('div', { className: 'class-bars' }, order.map((index) => el('div', { className: 'class-bar-row', dataset: { class: index } }, [
    el('span', { className: 'class-bar-name', text: className(meta, index), title: className(meta, index) }),
    el('span', { className: 'class-bar-track' }, [el('span', { className: 'class-bar-fill', style: { width: `${100 * perClass.accuracy[index]}%` } })]),
    el('span', { className: 'class-bar-value', text: `${percent(perClass.accuracy[index])} of ${perClass.support[index]}`,
      title: `precision ${percent(perClass.precision[index])}, recall ${percent(perClass.recall[index])}` }),
  ])));
}

