// The side-by-side pass's markdown: what was measured and how, the paths'
// latency table, the main API's ratios and targets, the paced pass, the
// stores' work per request, the streaming table and its targets, each API's
// short path against its floor (api-comparison.ts) and contextd's own request
// log; with --baseline, this build's short path against the baseline build's.

import { cpus, loadavg } from 'node:os';
import { API_PATHS, API_TITLES, type Api } from './apis.js';
import type { BaselineBuild } from './baseline-build.js';
import { apiComparisonLines } from './api-comparison.js';
import { PassFigures } from './figures.js';
import type { PathRun } from './measure.js';
import { DEFAULT_REPLY_TOKENS } from './replies.js';
import { latencyTable, quantiles, ratioTable, streamingTable, targetVerdicts, type PathRow, type TargetVerdict } from './report.js';
import { LATENCY_FIGURES, mainFigures, streamFigures, type PathNames } from './side-by-side-figures.js';
import type { ServiceLoad, SideBySideSettings, StoreUnderTest } from './side-by-side.js';

/** contextd's own timings, from its request log lines. */
export interface RequestLogTimes {
  addedMs: number[];
  upstreamMs: number[];
  durationMs: number[];
}

export interface MeasuredSideBySide {
  settings: SideBySideSettings;
  store: StoreUnderTest;
  loadAtStart: number;
  namesOf: (api: Api) => PathNames;
  passes: { c1: readonly PathRun[]; cn: readonly PathRun[]; paced: readonly PathRun[]; streamC1: readonly PathRun[]; streamCn: readonly PathRun[] };
  /** The main API's conversations: how many, and their turns at the end (about). */
  conversations: { shorts: number; shortEnd: number; longs: number; longEnd: number; seedDirectly: boolean };
  extras: { quiet: boolean; plainFloor: boolean; variantLabel?: string; baseline?: BaselineBuild };
  serviceLoads: readonly ServiceLoad[];
  /** The concurrency-1 pass's log lines, by API; empty below info level. */
  requestLogs: ReadonlyMap<Api, RequestLogTimes>;
  /** Mean prompt tokens of a direct request (the new conversations' included). */
  directPrompt: { tokens: number };
}

const stripBold = (name: string): string => name.replace(/\*/g, '');

/** The summary line under a judged table: every verdict, each naming where it was judged. */
const targetsLine = (verdicts: readonly TargetVerdict[]): string => `\n**Targets**: ${verdicts.map((v) => `${v.name}: ${v.verdict}`).join('; ')}`;

export function sideBySideMarkdown(measured: MeasuredSideBySide): { markdown: string[]; verdicts: TargetVerdict[] } {
  const { settings, store, passes, namesOf } = measured;
  const n = settings.concurrency;
  const apis = settings.apis;
  const mainApi = apis[0]!;
  const names = namesOf(mainApi);
  const allRuns = [...passes.c1, ...passes.cn, ...passes.paced, ...passes.streamC1, ...passes.streamCn];
  const rows = new Map<PathRun, PathRow>(allRuns.map((run) => [run, run.row()]));
  const rowOf = (run: PathRun): PathRow => rows.get(run)!;

  // What the direct and floor clients sent the upstream: their own history, none on a new conversation.
  const clientPaths = new Set(apis.flatMap((api) => [namesOf(api).direct, namesOf(api).floor, namesOf(api).plainFloor]));
  const every = settings.newEvery;
  for (const row of rows.values()) {
    if (!clientPaths.has(row.path)) continue;
    row.promptMessages = every > 0 ? ((settings.shortTurns * 2 + 2) * (every - 1) + 2) / every : settings.shortTurns * 2 + 2;
    row.promptTokens = measured.directPrompt.tokens;
  }

  const markdown: string[] = [];
  const emit = (text: string): void => {
    markdown.push(text);
  };
  emit(describe(measured));
  emit(latencyTable([...passes.c1, ...passes.cn].map(rowOf)));
  emit('');

  // Figures per pass: column 0 is concurrency 1, 1 concurrency N, 2 the paced pass.
  const figures = new PassFigures([passes.c1, passes.cn, passes.paced], rowOf, settings.rounds);
  const main = mainFigures(names, {
    settles: store.settle !== undefined,
    plainFloor: measured.extras.plainFloor,
    ...(measured.extras.variantLabel === undefined ? {} : { variant: { label: measured.extras.variantLabel, storeShortTitle: store.shortTitle } }),
    ...(measured.extras.quiet ? { quietBeside: settings.logLevel } : {}),
    baseline: measured.extras.baseline !== undefined,
  });
  const columns = ['concurrency 1', `concurrency ${n}`];
  const lines = figures.lines(main, [0, 1]);
  emit(ratioTable(columns, lines));
  const verdicts = targetVerdicts(columns, lines);
  emit(targetsLine(verdicts));

  if (passes.paced.length > 0) {
    // The latency figures only, without targets: this pass explains the concurrency-1 figures, it does not replace them.
    const pacedFigures = main.slice(0, LATENCY_FIGURES).map((f) => ({ name: stripBold(f.name), figure: f.figure, format: f.format }));
    emit('');
    emit(
      `Paced, concurrency 1: ${settings.pacedRequests} requests per path, each response followed by ${settings.pauseMs} ms of idle, so the previous turn's ` +
        `background work (its store writes, the flush to MongoDB) is done before the next request arrives. Request path alone; compare with concurrency 1 above.\n`,
    );
    emit(latencyTable(passes.paced.map((run) => ({ ...rowOf(run), path: `${run.target.name}, ${settings.pauseMs} ms apart` }))));
    emit('');
    emit(ratioTable([`concurrency 1, ${settings.pauseMs} ms apart`], figures.lines(pacedFigures, [2])));
  }

  if (measured.serviceLoads.length > 0) emit(serviceLoadTable(measured));

  const streamRows = [...passes.streamC1, ...passes.streamCn].map(rowOf);
  const streamPasses = streamRows.length > 0 ? new PassFigures([passes.streamC1, passes.streamCn], rowOf, settings.rounds) : undefined;
  if (streamPasses !== undefined) {
    // Each API's paths against its own direct path.
    const directOf = new Map(apis.flatMap((api) => [namesOf(api).direct, namesOf(api).floor, namesOf(api).short, namesOf(api).baselineShort, namesOf(api).twinShort].map((path) => [path, namesOf(api).direct] as const)));
    emit('');
    emit(streamingTable(streamRows, (row) => streamRows.find((r) => r.path === directOf.get(row.path) && r.concurrency === row.concurrency)));
    const streamLines = streamPasses.lines(streamFigures(names, { baseline: measured.extras.baseline !== undefined }), [0, 1]);
    emit('');
    emit(ratioTable(columns, streamLines));
    const streamVerdicts = targetVerdicts(columns, streamLines);
    emit(targetsLine(streamVerdicts));
    verdicts.push(...streamVerdicts);
  }

  const comparison = apiComparisonLines({
    apis,
    namesOf,
    passes: new PassFigures([passes.c1, passes.cn], rowOf, settings.rounds),
    streamPasses,
  });
  emit('');
  emit(
    `By API: each API's short contextd path against its own floor and direct paths, measured in the same rounds ` +
      `(${apis.map((api) => `${API_TITLES[api]}, POST ${API_PATHS[api]}`).join('; ')}); p99 beside p50, and when streaming the added time to the first event.` +
      (apis.length > 1 ? ` The long path and the variants run on ${API_TITLES[mainApi]} only; the other APIs are judged here by the same targets on their short path.` : '') +
      '\n',
  );
  emit(ratioTable(columns, comparison));
  const comparisonVerdicts = targetVerdicts(columns, comparison);
  if (comparisonVerdicts.length > 0) emit(targetsLine(comparisonVerdicts));

  for (const api of apis) {
    const times = measured.requestLogs.get(api);
    if (times === undefined) continue;
    const [a, u, d] = [quantiles(times.addedMs), quantiles(times.upstreamMs), quantiles(times.durationMs)];
    emit(
      `\ncontextd's own request log, ${API_TITLES[api]} (the info contextd, measured concurrency-1 requests only, ${times.addedMs.length} of them): ` +
        `addedMs (request in → sent upstream) p50 ${a.p50} / p99 ${a.p99}; upstreamMs (sent → upstream response head) p50 ${u.p50} / p99 ${u.p99}; ` +
        `durationMs (whole request, relay and reply tee included) p50 ${d.p50} / p99 ${d.p99}.`,
    );
  }
  return { markdown, verdicts: [...verdicts, ...comparisonVerdicts] };
}

/** The paragraph before the tables: machine, method, and what each path's conversations held. */
function describe({ settings, store, loadAtStart, conversations, extras, namesOf }: MeasuredSideBySide): string {
  const n = settings.concurrency;
  const [mainApi, ...otherApis] = settings.apis;
  return (
    `${cpus().length} CPUs, node ${process.version}, load average ${loadAtStart.toFixed(2)} at start and ${(loadavg()[0] ?? 0).toFixed(2)} at the end. ` +
    `Fake upstream, floor proxy and contextd each in their own process, load generated by the parent; paths measured in ${settings.rounds} interleaved rounds ` +
    `(${settings.warmup} warm-up requests per path, then ${settings.requestsC1} at concurrency 1 and ${settings.requests} at concurrency ${n}). ` +
    `The fake upstream answers every request with ${settings.upstream.replyTokens ?? DEFAULT_REPLY_TOKENS} tokens of prose (streams: one token per SSE event, ` +
    `${(settings.upstream.eventsPerWrite ?? 1) === 1 ? 'each event a write of its own' : `${settings.upstream.eventsPerWrite} events per write`}). ` +
    `contextd on ${store.title} at LOG_LEVEL=${settings.logLevel}${settings.logLevel === 'info' ? ' (its default: a log line per request)' : ' (flattering: no request log line)'}${extras.quiet ? ', one extra path at warn' : ''}, ` +
    `rolling summaries ${settings.summaries ? 'on' : 'off (summary.enabled: false)'}${store.storage === undefined ? '' : ', store timeouts as configured below'}. ` +
    `Paths speak ${API_TITLES[mainApi!]} unless named otherwise. ` +
    `Each measured contextd request appends a turn to one of a fixed set of conversations, each owned by one worker: ` +
    `${conversations.shorts} short ones (${settings.shortTurns} turns at start, about ${conversations.shortEnd} at the end) and ${conversations.longs} long ones ` +
    `(${settings.longTurns} turns at start, about ${conversations.longEnd} at the end, of which ${store.keeps})` +
    (settings.newEvery > 0 ? `; every ${settings.newEvery}th request starts a new conversation instead (its first turn), and every ${settings.newEvery}th direct or floor request sends no history. ` : '. ') +
    (conversations.seedDirectly
      ? 'Their starting history was written into the stores directly, as contextd stores it (--seed-directly; not measured). '
      : 'Their starting history was sent through contextd (not measured), first turns first. ') +
    otherApis
      .map(
        (api) =>
          `In the same rounds, ${API_TITLES[api]}'s own direct, floor and short paths ("${namesOf(api).short}" and so on): the same prompt as that API's request ` +
          `(${api === 'responses' ? 'the system prompt as `instructions`, history as input items, one new `message` item per turn, `store: false`; streamed as `response.output_text.delta` events ending with `response.completed`' : 'system, history and new message as `messages`'}), ` +
          `on ${conversations.shorts} short conversations of its own, created alike on that API. `,
      )
      .join('') +
    (extras.variantLabel === undefined
      ? ''
      : `In the same rounds, short and long paths on a second contextd with ${extras.variantLabel} (same servers, a database of its own, conversations created alike). `) +
    (extras.baseline === undefined
      ? ''
      : `In the same rounds, streaming too, the short path on the baseline build's contextd ("${namesOf(mainApi!).baselineShort}", --baseline ${extras.baseline.dir}; this build: ${extras.baseline.thisLabel}): ` +
        `the same config${store.storage === undefined ? '' : ', on the same servers with a Redis database and a MongoDB database of its own'}, ` +
        `${conversations.shorts} short conversations of its own, created alike; beside it, in the same role, a second contextd of this build ("${namesOf(mainApi!).twinShort}", as many conversations of its own): ` +
        `"this build / baseline" rows divide that twin's short path by the baseline's (the main contextd serves every path, which is no fair match for one that serves one). `) +
    (store.settle === undefined
      ? ''
      : `After each slice of ${store.title}'s paths the bench waits until the flusher has moved every turn to MongoDB, so that work is charged to that slice, not the next path's; ` +
        `req/s counts that wait (what can be sustained), "replies only" leaves it out. `) +
    `"upstream msgs/tokens" is what the upstream was sent (contextd's window, or the client's own history)` +
    (settings.rounds > 1 ? '; in brackets, the same figure computed per round: lowest–highest and median.\n' : '.\n')
  );
}

/** CPU of the store's servers and store commands, per contextd request, per pass. */
function serviceLoadTable({ store, serviceLoads, extras }: MeasuredSideBySide): string {
  const services = store.services ?? [];
  const label = extras.variantLabel;
  /** Whose requests a service's work is divided by: the main contextd's, and those of every other contextd it served. */
  const over = (servesVariant: boolean): string => {
    const others = [...(servesVariant && label !== undefined ? [label] : []), ...(extras.baseline === undefined ? [] : ['the baseline build and this build beside it'])];
    return others.length === 0 ? `over ${store.shortTitle}' requests` : `over the requests of ${[store.shortTitle, ...others].join(' and ')}`;
  };
  const note =
    label === undefined && extras.baseline === undefined
      ? ''
      : `Per contextd request: ${services.map((service) => `${service.name} ${over(service.servesVariant)}`).join(', ')}; ` +
        `redis commands ${over(true)}, the others over ${store.shortTitle}'.\n\n`;
  return (
    `\n${note}` +
    [
      `| concurrency | contextd requests measured | ${services.map((service) => `${service.name} CPU ms per contextd request`).join(' | ')} | store commands per contextd request (µs: the server's own time) | at the end of the pass |`,
      `| ---: | ---: | ${services.map(() => '---:').join(' | ')} | --- | --- |`,
      ...serviceLoads.map(
        (load) =>
          `| ${load.concurrency} | ${load.contextdRequests}${label === undefined ? '' : ` + ${load.variantRequests} (${label})`}${extras.baseline === undefined ? '' : ` + ${load.baselineRequests} (baseline and twin)`} | ${load.cpuMsPerRequest.map((v) => (Number.isFinite(v) ? v.toFixed(3) : '–')).join(' | ')} | ${load.commands} | ${load.note} |`,
      ),
    ].join('\n')
  );
}
