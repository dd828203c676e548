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

export interface ProfileSummary {
  sampledMs: number;
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

export function summarizeProfile(path: string, windows: readonly Window[], count = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
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
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id);
      if (frame === undefined || frame.callFrame.functionName === '(root)') continue;
      const frameKey = frameName(frame);
      if (seen.has(frameKey)) continue; // recursion counts once
      seen.add(frameKey);
      inclusive.set(frameKey, (inclusive.get(frameKey) ?? 0) + weightUs);
    }
  }
  return {
    sampledMs: sampledUs / 1000,
    byArea: top(areas, sampledUs, 100).map(({ frame, share }) => ({ area: frame, share })),
    bySelf: top(self, sampledUs, count),
    byInclusive: top(inclusive, sampledUs, count * 2),
  };
}
