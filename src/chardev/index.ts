/** Chardev backends: open a parsed ChardevSpec as a CharBackend. */
import type { Logger } from '../core/log.ts';
import type { ChardevSpec } from './spec.ts';
import type { CharBackend } from './types.ts';
import { ChardevError, FileBackend, NullBackend, RingBackend, openPath, openPipe, openStdio } from './backends.ts';
import { openSocket } from './socket.ts';
import { openPty } from './pty.ts';

export type { ChardevSpec } from './spec.ts';
export type { CharBackend, Receiver } from './types.ts';
export { ChardevError, FileBackend, NullBackend, RingBackend, openPath, openPipe, openStdio } from './backends.ts';
export { SOCKET_MAX_PENDING, SocketBackend, openSocket } from './socket.ts';
export type { SocketSpec } from './spec.ts';
export { openPty } from './pty.ts';

/** Opens a backend. Throws ChardevError (one operator line) when it cannot. */
export async function openChardev(id: string, spec: ChardevSpec, log: Logger): Promise<CharBackend> {
  switch (spec.backend) {
    case 'file':
      return new FileBackend(id, spec.path, log, spec.append);
    case 'null':
      return new NullBackend(id, log);
    case 'ringbuf':
      return new RingBackend(id, log, spec.size);
    case 'stdio':
      return openStdio(id, log);
    case 'tty':
      return openPath(id, spec.path, log);
    case 'pty':
      return openPty(id, log);
    case 'pipe':
      return openPipe(id, spec.path, log);
    case 'socket':
      return openSocket(id, spec, log);
  }
}

/**
 * Flushes every backend at once, waiting at most `ms`; resolves with how many
 * had not finished (a stuck terminal), so a caller with a deadline (a save)
 * goes on without them.
 */
export async function flushAll(backends: readonly CharBackend[], ms: number): Promise<number> {
  let done = 0;
  let timer: NodeJS.Timeout | undefined;
  const all = Promise.all(backends.map((b) => b.flush().then(() => void done++, () => void done++)));
  await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
  return backends.length - done;
}
