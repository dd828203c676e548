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
