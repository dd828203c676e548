// `contextd [--config FILE] [--port N]`. Pure: the environment is read by main.ts.

export type CliCommand =
  | { kind: 'run'; configPath: string | undefined; port: number | undefined }
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'error'; message: string };

export const HELP_TEXT = `Usage: contextd [--config FILE] [--port N]

A memory layer for OpenAI-compatible chat APIs: point your client's base URL at
contextd, send an X-Conversation-Id header, and each call carries the
conversation's summary plus as much recent history as fits the route's budget.

Options:
  --config FILE, --config=FILE  YAML config file (default: config/contextd.yaml
                                if it exists, else built-in defaults)
  -p N, --port N, --port=N      port to listen on (0 picks a free one)
  -h, --help                    show this help and exit
  -v, --version                 show the version and exit

Environment:
  CONTEXTD_CONFIG        config file, when --config is not given
  CONTEXTD_PORT          port, overriding server.port (--port wins over it)
  CONTEXTD_UPSTREAM_URL  upstream base URL, overriding upstream.base_url
                         (default https://api.openai.com/v1)
  REDIS_URL              Redis hot cache, when storage.redis.url is empty
  MONGODB_URL            MongoDB durable store, when storage.mongodb.url is empty
  LOG_LEVEL              trace, debug, info (default), warn, error or fatal
  Values in the config file may use \${VAR} and \${VAR:-default}.

With neither Redis nor MongoDB configured, contextd keeps conversations in a
bounded in-process store that is lost on restart.`;

const PORT = /^\d{1,5}$/;

export function parseCliArgs(argv: readonly string[]): CliCommand {
  // Asking for help or the version always works, whatever else is on the line.
  if (argv.some((arg) => arg === '--help' || arg === '-h')) return { kind: 'help', text: HELP_TEXT };
  if (argv.some((arg) => arg === '--version' || arg === '-v')) return { kind: 'version' };

  let configPath: string | undefined;
  let port: number | undefined;
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] ?? '';
    const equals = arg.indexOf('=');
    const flag = arg.startsWith('--') && equals !== -1 ? arg.slice(0, equals) : arg;
    if (flag !== '--config' && flag !== '--port' && flag !== '-p') {
      return arg.startsWith('-') ? usageError(`unknown option ${flag}`) : usageError(`unexpected argument "${arg}"`);
    }

    let value: string | undefined;
    if (flag !== arg) {
      value = arg.slice(equals + 1);
    } else {
      const next = argv[index + 1];
      // A missing value must not swallow the next option (`--config --port 1`).
      if (next !== undefined && !next.startsWith('-')) {
        value = next;
        index += 1;
      }
    }

    if (flag === '--config') {
      if (value === undefined || value === '') return usageError('--config needs a file path');
      if (configPath !== undefined) return usageError('--config given more than once');
      configPath = value;
    } else {
      if (value === undefined || !PORT.test(value) || Number(value) > 65_535) {
        return usageError(`${flag} needs a port number from 0 to 65535`);
      }
      if (port !== undefined) return usageError('--port given more than once');
      port = Number(value);
    }
  }
  return { kind: 'run', configPath, port };
}

// main.ts adds the pointer to --help.
function usageError(message: string): CliCommand {
  return { kind: 'error', message };
}
