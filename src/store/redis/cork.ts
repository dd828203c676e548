// Per-tick corking of the store's connection: the calls made in one tick (the
// fast load's four reads; a flush round's marks of all its conversations)
// leave in one write. Each write is a syscall, dearer here than the commands.

import type { Socket } from 'node:net';
import type { Cluster, Redis } from 'ioredis';
import { isCluster } from './keys.js';

export class TickCork {
  readonly #client: Redis | Cluster;
  #isCorked = false;

  constructor(client: Redis | Cluster) {
    this.#client = client;
  }

  /** Corks the socket until the next tick; nothing on a Cluster (many sockets) or before the socket exists. */
  corkForTick(): void {
    if (this.#isCorked || isCluster(this.#client)) return;
    const socket: Pick<Socket, 'cork' | 'uncork'> | undefined = this.#client.stream;
    if (socket === undefined) return;
    this.#isCorked = true;
    socket.cork();
    process.nextTick(() => {
      this.#isCorked = false;
      socket.uncork();
    });
  }
}
