import { describe, expect, test } from 'vitest';
import { HELP_TEXT, parseCliArgs, type CliCommand } from '../../../src/config/cli-args.js';

const run = (configPath: string | undefined, port: number | undefined): CliCommand => ({ kind: 'run', configPath, port });
const error = (message: string): CliCommand => ({ kind: 'error', message });

describe('parseCliArgs', () => {
  test.each<[string[], CliCommand]>([
    [[], run(undefined, undefined)],
    [['--config', 'a.yaml'], run('a.yaml', undefined)],
    [['--config=a.yaml'], run('a.yaml', undefined)],
    [['--config=a=b.yaml'], run('a=b.yaml', undefined)],
    [['--port', '9000'], run(undefined, 9000)],
    [['--port=9000'], run(undefined, 9000)],
    [['-p', '0'], run(undefined, 0)],
    [['-p', '65535', '--config', 'c.yaml'], run('c.yaml', 65535)],
    [['--help'], { kind: 'help', text: HELP_TEXT }],
    [['-h'], { kind: 'help', text: HELP_TEXT }],
    [['--port', 'nope', '--help'], { kind: 'help', text: HELP_TEXT }],
    [['--version'], { kind: 'version' }],
    [['-v'], { kind: 'version' }],
    [['--config'], error('--config needs a file path')],
    [['--config='], error('--config needs a file path')],
    [['--config', '--port', '1'], error('--config needs a file path')],
    [['--config', 'a', '--config', 'b'], error('--config given more than once')],
    [['--port'], error('--port needs a port number from 0 to 65535')],
    [['-p', '-1'], error('-p needs a port number from 0 to 65535')],
    [['--port', '65536'], error('--port needs a port number from 0 to 65535')],
    [['--port', '80.5'], error('--port needs a port number from 0 to 65535')],
    [['--port', 'http'], error('--port needs a port number from 0 to 65535')],
    [['--port', '1', '-p', '2'], error('--port given more than once')],
    [['--verbose'], error('unknown option --verbose')],
    [['--colour=red'], error('unknown option --colour')],
    [['serve'], error('unexpected argument "serve"')],
  ])('%j', (argv, expected) => {
    expect(parseCliArgs(argv)).toEqual(expected);
  });

  test('the help text lists every flag and environment variable', () => {
    for (const name of ['--config', '--port', '-p', '--help', '-h', '--version', '-v', 'CONTEXTD_CONFIG', 'CONTEXTD_PORT', 'CONTEXTD_UPSTREAM_URL', 'REDIS_URL', 'MONGODB_URL', 'LOG_LEVEL']) {
      expect(HELP_TEXT).toContain(name);
    }
  });
});
