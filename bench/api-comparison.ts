// The APIs side by side: for each API measured (chat completions, the
// Responses API), its short contextd path against its own floor and direct
// paths, measured in the same rounds: added p50 and p99 over the floor's,
// throughput and CPU against the floor's, and, streaming, the added time to
// first byte and CPU per request against the floor's. One row per API under
// each figure, so the Responses API reads beside chat. The APIs other than the
// main one are judged here against the main tables' targets (their short path
// only: the long path and the variants run on the main API).

import { API_LABELS, type Api } from './apis.js';
import { added, field, over, type Figure, type FigureLine, type PassFigures } from './figures.js';
import type { RatioLine } from './report.js';
import { TARGETS, type PathNames } from './side-by-side-figures.js';

export interface ApiComparisonInput {
  /** The APIs measured, the main one first. */
  apis: readonly Api[];
  namesOf: (api: Api) => PathNames;
  /** Columns: concurrency 1, concurrency N. */
  passes: PassFigures;
  /** The stream: true passes, the same columns; undefined when not measured. */
  streamPasses: PassFigures | undefined;
}

type FigureOf = (names: PathNames) => Figure;

export function apiComparisonLines({ apis, namesOf, passes, streamPasses }: ApiComparisonInput): RatioLine[] {
  const main = apis[0];
  /** One line per API; the target applies to the APIs other than the main one (the main table judges that). */
  const perApi = (name: string, figure: FigureOf, format: FigureLine['format'], target?: FigureLine['target']): FigureLine[] =>
    apis.map((api) => {
      const judged = target !== undefined && api !== main;
      return {
        name: judged ? `**${API_LABELS[api]}: ${name}**` : `${API_LABELS[api]}: ${name}`,
        figure: figure(namesOf(api)),
        format,
        ...(judged ? { target } : {}),
      };
    });
  const addedP50: FigureOf = (n) => added(n.short, n.direct);
  const floorP50: FigureOf = (n) => added(n.floor, n.direct);
  const addedP99: FigureOf = (n) => added(n.short, n.direct, 'p99Ms');
  const floorP99: FigureOf = (n) => added(n.floor, n.direct, 'p99Ms');
  const rps = (path: string): Figure => field(path, 'sustainedRequestsPerSecond');
  const cpu = (path: string): Figure => field(path, 'proxyCpuMsPerRequest');

  const figures: FigureLine[] = [
    ...perApi('floor added p50, ms', floorP50, 'ms'),
    ...perApi('contextd short added p50, ms', addedP50, 'ms'),
    ...perApi('short added / floor added, p50', (n) => over(addedP50(n), floorP50(n)), 'ratio', TARGETS.addedOverFloor),
    ...perApi('floor added p99, ms', floorP99, 'ms'),
    ...perApi('contextd short added p99, ms', addedP99, 'ms'),
    ...perApi('short added / floor added, p99', (n) => over(addedP99(n), floorP99(n)), 'ratio'),
    ...perApi('short req/s / floor req/s', (n) => over(rps(n.short), rps(n.floor)), 'ratio', TARGETS.throughputOverFloor),
    ...perApi('CPU per request, short / floor', (n) => over(cpu(n.short), cpu(n.floor)), 'ratio', TARGETS.cpuOverFloor),
  ];
  if (main !== undefined) {
    for (const api of apis.slice(1)) {
      figures.push({
        name: `${API_LABELS[api]} short added / ${API_LABELS[main]} short added, p50`,
        figure: over(addedP50(namesOf(api)), addedP50(namesOf(main))),
        format: 'ratio',
      });
    }
  }
  const lines = passes.lines(figures, [0, 1]);
  if (streamPasses === undefined) return lines;

  const firstByte: FigureOf = (n) => added(n.short, n.direct, 'firstByteP50Ms');
  const floorFirstByte: FigureOf = (n) => added(n.floor, n.direct, 'firstByteP50Ms');
  const streamFigures: FigureLine[] = [
    ...perApi('stream, floor added first byte p50, ms', floorFirstByte, 'ms'),
    ...perApi('stream, contextd short added first byte p50, ms', firstByte, 'ms'),
    ...perApi('stream, short added / floor added, first byte p50', (n) => over(firstByte(n), floorFirstByte(n)), 'ratio', TARGETS.firstByteOverFloor),
    ...perApi('stream, CPU per request, short / floor', (n) => over(cpu(n.short), cpu(n.floor)), 'ratio', TARGETS.cpuOverFloor),
  ];
  return [...lines, ...streamPasses.lines(streamFigures, [0, 1])];
}
