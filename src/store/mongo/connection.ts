import { MongoClient } from 'mongodb';

export interface MongoConnectionOptions {
  url: string;
  /** The deadline of every MongoDB call: also how long to look for a server and to connect. */
  timeoutMs: number;
}

/**
 * The MongoDB client. Command monitoring reports each command and the
 * documents its cursor returned, which show what a cold read costs.
 */
export function connectMongo(options: MongoConnectionOptions, onCommand: (command: string, documentsRead: number | undefined) => void): MongoClient {
  const client = new MongoClient(options.url, {
    serverSelectionTimeoutMS: options.timeoutMs,
    connectTimeoutMS: options.timeoutMs,
    maxPoolSize: 50,
    monitorCommands: true,
  });
  client.on('commandSucceeded', (event) => {
    const reply = event.reply as { cursor?: { firstBatch?: unknown[]; nextBatch?: unknown[] } } | undefined;
    const batch = reply?.cursor?.firstBatch ?? reply?.cursor?.nextBatch;
    onCommand(event.commandName, batch?.length);
  });
  return client;
}

/**
 * Connects the client, and keeps trying until it has connected once. The
 * driver gives up on a first connection that fails (every later call then
 * fails with "Topology is closed"); once connected, it finds a restarted
 * server by itself. So a contextd started while MongoDB is down connects
 * as soon as MongoDB comes up. `firstAttempt` settles with the first
 * attempt: undefined when it connected, else its error.
 */
export function keepConnecting(client: MongoClient, onAttemptFailed: (error: unknown) => void): { stop: () => void; firstAttempt: Promise<unknown> } {
  let isStopped = false;
  let timer: NodeJS.Timeout | undefined;
  let settleFirst: (error: unknown) => void = () => undefined;
  const firstAttempt = new Promise<unknown>((resolve) => (settleFirst = resolve));
  const attempt = (failures: number): void => {
    client.connect().then(
      () => settleFirst(undefined),
      (error: unknown) => {
        settleFirst(error);
        if (isStopped) return;
        onAttemptFailed(error);
        timer = setTimeout(() => attempt(failures + 1), Math.min(250 * 2 ** failures, 2_000));
        timer.unref();
      },
    );
  };
  attempt(0);
  return {
    firstAttempt,
    stop: () => {
      isStopped = true;
      clearTimeout(timer);
    },
  };
}
