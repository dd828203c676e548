import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { baselineBuild } from '../../../bench/baseline-build.js';
import type { Field, FigureLine } from '../../../bench/figures.js';
import { mainFigures, pathNames, streamFigures } from '../../../bench/side-by-side-figures.js';

const names = pathNames('chat', { short: 5, long: 500 }, { baseline: 'abc1234' });

/** Each path's measurements, as a pass's rows would give them. */
const measured: Record<string, Partial<Record<Field, number>>> = {
  [names.direct]: { p50Ms: 10, firstByteP50Ms: 4 },
  // The main contextd serves every path: its short path is not the one compared with the baseline.
  [names.short]: { p50Ms: 13, firstByteP50Ms: 7, proxyCpuMsPerRequest: 0.9, sustainedRequestsPerSecond: 600 },
  [names.twinShort]: { p50Ms: 11.5, firstByteP50Ms: 5, proxyCpuMsPerRequest: 0.6, sustainedRequestsPerSecond: 900 },
  [names.baselineShort]: { p50Ms: 12, firstByteP50Ms: 6, proxyCpuMsPerRequest: 0.8, sustainedRequestsPerSecond: 750 },
};
const value = (lines: readonly FigureLine[], name: string): number | undefined =>
  lines.find((line) => line.name === name)?.figure((path, field) => measured[path]?.[field] ?? Number.NaN);

describe('this build against the baseline build', () => {
  const options = { settles: false, plainFloor: false };

  test('names the baseline path by its label', () => {
    expect(names.baselineShort).toBe('contextd short (baseline abc1234)');
  });

  test("divides this build's twin's short path (the baseline's role) by the baseline one, without targets", () => {
    const lines = mainFigures(names, { ...options, baseline: true });
    expect(value(lines, 'short added: this build / baseline')).toBeCloseTo(1.5 / 2);
    expect(value(lines, 'CPU per request: this build / baseline')).toBeCloseTo(0.75);
    expect(value(lines, 'req/s: this build / baseline')).toBeCloseTo(1.2);
    expect(value(lines, 'CPU per request: main contextd / this build as the baseline runs (one build, two roles)')).toBeCloseTo(1.5);
    expect(lines.filter((line) => line.name.includes('baseline')).every((line) => line.target === undefined)).toBe(true);
  });

  test('streaming: the first byte added and CPU per request', () => {
    const lines = streamFigures(names, { baseline: true });
    expect(value(lines, 'stream: first byte added: this build / baseline')).toBeCloseTo(0.5);
    expect(value(lines, 'stream: CPU per request: this build / baseline')).toBeCloseTo(0.75);
  });

  test('no baseline rows when no baseline ran', () => {
    expect(mainFigures(names, { ...options, baseline: false }).some((line) => line.name.includes('baseline'))).toBe(false);
    expect(streamFigures(names, { baseline: false }).some((line) => line.name.includes('baseline'))).toBe(false);
  });
});

describe('baselineBuild', () => {
  const dirs: string[] = [];
  const buildDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'contextd-baseline-test-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'dist', 'src'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'src', 'cli.js'), '');
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  test('refuses a directory without a build', () => {
    const dir = mkdtempSync(join(tmpdir(), 'contextd-baseline-test-'));
    dirs.push(dir);
    expect(() => baselineBuild(dir)).toThrow(/dist\/src\/cli\.js/);
  });

  test('names a directory outside git by its name', () => {
    const dir = buildDir();
    expect(baselineBuild(dir)).toMatchObject({ dir, cliPath: join(dir, 'dist', 'src', 'cli.js'), label: basename(dir) });
  });

  test('names a checkout by its short revision, and says when its files differ from it', () => {
    const dir = buildDir();
    const git = (...args: string[]): string => execFileSync('git', ['-C', dir, '-c', 'user.name=bench', '-c', 'user.email=bench@example.com', ...args], { encoding: 'utf8' }).trim();
    git('init', '-q');
    writeFileSync(join(dir, '.gitignore'), 'dist/\n');
    writeFileSync(join(dir, 'package.json'), '{}\n');
    git('add', 'package.json', '.gitignore');
    git('commit', '-q', '-m', 'one');
    const rev = git('rev-parse', '--short', 'HEAD');
    symlinkSync(tmpdir(), join(dir, 'node_modules')); // as scripts/bench-baseline.sh links it
    expect(baselineBuild(dir).label).toBe(rev);
    writeFileSync(join(dir, 'package.json'), '{"changed":true}\n');
    expect(baselineBuild(dir).label).toBe(`${rev}, modified`);
  });
});
