// The metrics tables (README.md's "## Health, metrics and logs", docs/operations.md's
// "## Metrics") and the registry in src/ops/metrics.ts agree, label for label, and
// no label can carry a conversation, a tenant or any other per-client id: a
// label value becomes a time series of its own, so an id there would grow the
// scrape without bound and put client identifiers into the monitoring system.
//
// A row names one metric with its labels in braces (`contextd_requests_total{kind,api,route,status}`,
// `contextd_pending_writes`), or a prefix ending in `*` (`contextd_process_*`)
// standing for the Node process metrics prom-client's collectDefaultMetrics registers.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Counter, Gauge, Histogram, Registry, Summary, collectDefaultMetrics } from 'prom-client';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import { Metrics } from '../src/ops/metrics.js';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/** Label names and label values that identify a client or a conversation. */
const IDENTIFYING_WORD = /conversation|tenant|user|session|key|principal|account/i;
const IDENTIFYING_ID = /(?:^|[^A-Za-z])[iI][dD]s?(?:$|[^A-Za-z])|[a-z]Ids?(?:$|[^a-z])/; // `id`, `request_id`, `requestId`; not `valid`
const isIdentifying = (text: string): boolean => IDENTIFYING_WORD.test(text) || IDENTIFYING_ID.test(text);

interface RegisteredMetric {
  name: string;
  labels: string[]; // sorted
}

/**
 * prom-client keeps a metric's label names on the metric object (`labelNames`),
 * which its types do not declare; a metric without labels has `[]`. If a
 * prom-client upgrade moves them, this fails here rather than reading every
 * metric as label-less.
 */
function labelNamesOf(metric: unknown, name: string): string[] {
  const labelNames = (metric as { labelNames?: unknown }).labelNames;
  expect(Array.isArray(labelNames) && labelNames.every((label) => typeof label === 'string'), `${name}: prom-client's labelNames is an array of strings`).toBe(true);
  return [...(labelNames as string[])].sort();
}

const metrics = new Metrics();
const registered: RegisteredMetric[] = metrics.registry.getMetricsAsArray().map((metric) => ({ name: metric.name, labels: labelNamesOf(metric, metric.name) }));

/** The metrics Metrics declares as fields, by field name: contextd's own, as opposed to the process metrics. */
const fields = new Map(
  Object.entries(metrics).filter((entry): entry is [string, Counter | Gauge | Histogram | Summary] =>
    [Counter, Gauge, Histogram, Summary].some((kind) => entry[1] instanceof kind),
  ),
);
const ownNames = new Set([...fields.values()].map((metric) => (metric as unknown as { name: string }).name));
const own = registered.filter((metric) => ownNames.has(metric.name));
const processMetrics = registered.filter((metric) => !ownNames.has(metric.name));

/** How many metrics collectDefaultMetrics registers on this Node, counted on a registry of its own. */
function defaultMetricCount(): number {
  const scratch = new Registry();
  collectDefaultMetrics({ register: scratch });
  return scratch.getMetricsAsArray().length;
}

type Row = { kind: 'metric'; name: string; labels: string[]; at: string } | { kind: 'prefix'; prefix: string; at: string };

/** The rows of the `| metric | meaning |` table under `heading` in `file`. */
function tableRows(file: string, heading: RegExp): Row[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const start = lines.findIndex((line) => heading.test(line));
  expect(start, `${file} has a section ${heading}`).toBeGreaterThanOrEqual(0);
  const next = lines.findIndex((line, i) => i > start && /^#{1,2}\s/.test(line));
  const section = lines.slice(start + 1, next === -1 ? undefined : next);
  const header = section.findIndex((line) => /^\|\s*metric\s*\|\s*meaning\s*\|\s*$/.test(line));
  expect(header, `${file}: the section has a table | metric | meaning |`).toBeGreaterThanOrEqual(0);
  expect(section[header + 1], `${file}: the table header is followed by its separator row`).toMatch(/^\|(\s*:?-+:?\s*\|){2}\s*$/);

  const rows: Row[] = [];
  for (let i = header + 2; i < section.length && section[i]!.startsWith('|'); i++) {
    const line = section[i]!;
    const at = `${file} line ${start + 2 + i}`;
    const cell = line.split(/(?<!\\)\|/)[1]!.trim();
    const metric = /^`([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([a-zA-Z0-9_,]+)\})?`$/.exec(cell);
    const prefix = /^`([a-zA-Z_:][a-zA-Z0-9_:]*)\*`$/.exec(cell);
    if (metric !== null) rows.push({ kind: 'metric', name: metric[1]!, labels: (metric[2]?.split(',') ?? []).sort(), at });
    else if (prefix !== null) rows.push({ kind: 'prefix', prefix: prefix[1]!, at });
    else expect.fail(`${at}: the first cell is \`name\`, \`name{label,…}\` or \`prefix*\`: ${cell}`);
  }
  expect(rows.length, `${file}: the metrics table has rows`).toBeGreaterThan(0);
  return rows;
}

const asWritten = (metric: { name: string; labels: readonly string[] }): string =>
  metric.labels.length === 0 ? metric.name : `${metric.name}{${metric.labels.join(',')}}`;

describe('the registry', () => {
  test('every metric Metrics declares is in its registry, and the rest are the default process metrics', () => {
    expect(own.length, 'metrics found on Metrics').toBeGreaterThan(0);
    expect(own.length, 'each field is a metric of its own, registered').toBe(fields.size);
    expect(processMetrics.length, 'registered metrics that are not fields of Metrics').toBe(defaultMetricCount());
  });

  test('no label is named for a conversation, a tenant or an id', () => {
    expect(registered.some((metric) => metric.labels.length > 0), 'some metric has labels (labelNames was read)').toBe(true);
    const offending = registered.flatMap((metric) => metric.labels.filter(isIdentifying).map((label) => `${metric.name}{${label}}`));
    expect(offending).toEqual([]);
  });
});

describe.each([
  { file: 'README.md', heading: /^##\s+Health, metrics and logs\s*$/ },
  { file: 'docs/operations.md', heading: /^##\s+Metrics\s*$/ },
])('the metrics table of $file', ({ file, heading }) => {
  const rows = tableRows(file, heading);
  const metricRows = rows.filter((row) => row.kind === 'metric');
  const prefixRows = rows.filter((row) => row.kind === 'prefix');

  test('names each metric once', () => {
    const names = metricRows.map((row) => row.name);
    expect(names.filter((name, i) => names.indexOf(name) !== i), 'metrics with two rows').toEqual([]);
  });

  test("every metric of contextd's own is a row, with exactly its labels", () => {
    const documented = new Set(metricRows.map(asWritten));
    const missing = own.filter((metric) => !documented.has(asWritten(metric))).map((metric) => `| \`${asWritten(metric)}\` | … |`);
    expect(missing, `rows ${file} lacks or gets wrong`).toEqual([]);
  });

  test('every row names a registered metric with exactly its labels', () => {
    const actual = new Set(own.map(asWritten));
    const unknown = metricRows.filter((row) => !actual.has(asWritten(row))).map((row) => `${row.at}: \`${asWritten(row)}\``);
    expect(unknown, `rows of ${file} the registry does not have`).toEqual([]);
  });

  test('the process metrics are covered by a `prefix*` row, which covers no metric of its own', () => {
    const uncovered = processMetrics.filter((metric) => !prefixRows.some((row) => metric.name.startsWith(row.prefix))).map((metric) => metric.name);
    expect(uncovered, 'process metrics no `prefix*` row covers').toEqual([]);
    for (const row of prefixRows) {
      expect(own.filter((metric) => metric.name.startsWith(row.prefix)).map((metric) => metric.name), `${row.at}: \`${row.prefix}*\` hides own metrics`).toEqual([]);
      expect(processMetrics.some((metric) => metric.name.startsWith(row.prefix)), `${row.at}: \`${row.prefix}*\` matches a process metric`).toBe(true);
    }
  });
});

// ---- label values: what src passes when it records ----

interface Recording {
  at: string;
  field: string;
  labels: ts.Expression | undefined; // the label argument; undefined when the call passes none
}

/** Methods of a prom-client metric whose first argument may be labels. */
const RECORDING_METHODS = new Set(['inc', 'dec', 'set', 'observe', 'startTimer', 'labels', 'remove']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/**
 * Every call `….<field>.<method>(…)` in src where <field> is a metric field of
 * Metrics (`metrics.requests.inc({ … })`, `this.pendingWrites.set(n)`), with its
 * first argument when that can be labels: an object (`labels` also takes values
 * positionally, so all its arguments are kept, as an array literal).
 */
function recordings(): Recording[] {
  const found: Recording[] = [];
  for (const file of sourceFiles(SRC)) {
    const path = relative(ROOT, file);
    const source = ts.createSourceFile(path, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && RECORDING_METHODS.has(node.expression.name.text)) {
        const receiver = node.expression.expression;
        if (ts.isPropertyAccessExpression(receiver) && fields.has(receiver.name.text)) {
          const at = `${path}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
          const method = node.expression.name.text;
          const labels = method === 'labels' ? ts.factory.createArrayLiteralExpression([...node.arguments]) : node.arguments[0];
          found.push({ at, field: receiver.name.text, labels });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe('label values recorded in src', () => {
  const calls = recordings();
  const labelled = calls.filter(({ field }) => (fields.get(field) as unknown as { labelNames: string[] }).labelNames.length > 0);

  test('the scan finds the recording calls', () => {
    expect(labelled.length).toBeGreaterThanOrEqual(10);
  });

  test('every call on a labelled metric spells its labels out as an object literal, so they can be read here', () => {
    const opaque = labelled
      .filter(({ labels }) => labels === undefined || !(ts.isObjectLiteralExpression(labels) || ts.isArrayLiteralExpression(labels)))
      .map(({ at, field, labels }) => `${at}: ${field} labels ${labels?.getText() ?? '(none)'}`);
    expect(opaque).toEqual([]);
  });

  test('no label value comes from a conversation, a tenant or an id', () => {
    const offending = labelled.flatMap(({ at, field, labels }) => {
      if (labels === undefined) return [];
      const parts = ts.isObjectLiteralExpression(labels) ? labels.properties : ts.isArrayLiteralExpression(labels) ? labels.elements : [];
      // A synthesized array literal (from `labels(…)`) has no source position: print its elements one by one.
      return parts.map((part) => part.getText()).filter(isIdentifying).map((text) => `${at}: ${field} ${text}`);
    });
    expect(offending).toEqual([]);
  });
});
