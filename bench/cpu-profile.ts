// Where contextd's CPU went while it was being measured: reads the .cpuprofile
// that `node --cpu-prof` writes at exit and keeps only the samples taken inside
// the measured windows (set-up and idle time excluded). V8 stamps samples with the
// monotonic clock that process.hrtime reads, so the load generator's hrtime marks
// the windows.

import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Window {
  startUs: number;
  endUs: number;
}

/** A part of contextd's work, recognised by a frame on the sample's stack (function name and file). */
export interface Stage {
  label: string;
  pattern: RegExp;
}

/**
 * contextd's request path and what runs after the reply; matched against
 * `<function> <file>` of each frame, so a sample counts in every stage its
 * stack passes through (the shares overlap, nested lines are parts of the line above).
 */
export const CONTEXTD_STAGES: readonly Stage[] = [
  // After an await the stack starts anew from the microtask queue: these count the synchronous stretches under each function only.
  { label: 'handleWithMemory (stretches on its stack: the request, relay and tee)', pattern: /^handleWithMemory .*with-memory/ },
  { label: '  loadWindow (store load, before the upstream call)', pattern: /^loadWindow .*load-window/ },
  { label: '  forwardWithMemory (upstream request: headers, undici)', pattern: /^forwardWithMemory .*forward-with-memory/ },
  { label: '  storeTurn (after the reply: rebuild, count, queue)', pattern: /^storeTurn .*store-turn/ },
  { label: '  relayResponse (reply to the client)', pattern: /^relayResponse .*relay-response/ },
  { label: 'persist queue (storing the turn, after the reply)', pattern: /persist-queue\.js/ },
  { label: 'outbox flusher (Redis → MongoDB, after the reply)', pattern: /outbox-flusher\.js/ },
  { label: 'any store call (store/*)', pattern: /\/dist\/src\/store\// },
  { label: 'ioredis', pattern: /node_modules\/ioredis\// },
  { label: 'mongodb driver and bson', pattern: /node_modules\/(mongodb|bson)\// },
  { label: 'token counting (countMessage)', pattern: /^countMessage .*count-tokens/ },
  { label: 'garbage collector', pattern: /^\(garbage collector\) $/ },
];

export interface ProfileSummary {
  sampledMs: number;
  /** Inclusive share of sampled time per stage given. */
  byStage: { label: string; share: number }[];
  /** Share of sampled time, by where the code lives. */
  byArea: { area: string; share: number }[];
  bySelf: { frame: string; share: number }[];
  byInclusive: { frame: string; share: number }[];
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (url === '') return functionName || '(anonymous)';
  return `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`;
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) return url.slice(modules + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url;
}

function area(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native: JSON, crypto, regexp…)';
  if (url.includes('node_modules/')) {
    const rest = url.slice(url.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const name = rest.startsWith('@') ? rest.split('/').slice(0, 2).join('/') : rest.split('/')[0];
    return `node_modules/${name}`;
  }
  if (url.startsWith('node:')) return url.startsWith('node:internal/http') || url.startsWith('node:_http') ? 'node:http' : 'node: other internals';
  const dist = url.indexOf('/dist/src/');
  if (dist >= 0) return `contextd ${url.slice(dist + '/dist/'.length).split('/').slice(0, 2).join('/')}`;
  return url;
}

const top = (totals: Map<string, number>, sampledUs: number, count: number): { frame: string; share: number }[] =>
  [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([frame, us]) => ({ frame, share: us / sampledUs }));

export function summarizeProfile(path: string, windows: readonly Window[], count = 20, stages: readonly Stage[] = CONTEXTD_STAGES): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
  const stageUs = stages.map(() => 0);
  let sampledUs = 0;
  let timeUs = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const deltaUs = profile.timeDeltas[i] ?? 0;
    timeUs += deltaUs;
    if (!windows.some((window) => timeUs >= window.startUs && timeUs <= window.endUs)) continue;
    const node = byId.get(profile.samples[i]!);
    if (node === undefined || node.callFrame.functionName === '(idle)') continue;
    // A sample's weight is the time until the next one.
    const weightUs = profile.timeDeltas[i + 1] ?? deltaUs;
    sampledUs += weightUs;
    const name = frameName(node);
    self.set(name, (self.get(name) ?? 0) + weightUs);
    const where = area(node);
    areas.set(where, (areas.get(where) ?? 0) + weightUs);
    const seen = new Set<string>();
    const inStage = stages.map(() => false);
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id);
      if (frame === undefined || frame.callFrame.functionName === '(root)') continue;
      const text = `${frame.callFrame.functionName} ${frame.callFrame.url}`;
      stages.forEach((stage, i) => {
        if (!inStage[i] && stage.pattern.test(text)) inStage[i] = true;
      });
      const frameKey = frameName(frame);
      if (seen.has(frameKey)) continue; // recursion counts once
      seen.add(frameKey);
      inclusive.set(frameKey, (inclusive.get(frameKey) ?? 0) + weightUs);
    }
    inStage.forEach((isIn, i) => {
      if (isIn) stageUs[i]! += weightUs;
    });
  }
  return {
    sampledMs: sampledUs / 1000,
    byStage: stages.map((stage, i) => ({ label: stage.label, share: stageUs[i]! / sampledUs })),
    byArea: top(areas, sampledUs, 100).map(({ frame, share }) => ({ area: frame, share })),
    bySelf: top(self, sampledUs, count),
    byInclusive: top(inclusive, sampledUs, count * 2),
  };
}
