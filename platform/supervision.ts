// The contract between `npm start` (scripts/supervisor.ts) and the processes it runs. The child
// has an IPC channel to its supervisor: it reports when it serves, and it exits when the channel
// closes, which happens however the supervisor ends (SIGKILL and OOM included), so no API or
// worker outlives the `npm start` that owns it.
import type { Logger } from './logger.js';

export interface ReadyMessage {
  type: 'ready';
  url?: string;
}

export function isReadyMessage(message: unknown): message is ReadyMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'ready';
}

export function reportReady(message: Omit<ReadyMessage, 'type'> = {}): void {
  process.send?.({ type: 'ready', ...message } satisfies ReadyMessage);
}

/** Runs `stop` and exits when the supervisor goes away; `graceMs` bounds a stop that hangs. */
export function exitWithSupervisor(log: Logger, stop: () => Promise<void>, graceMs = 10_000): void {
  if (!process.send) return; // not supervised (`npm run api` / `npm run worker`)
  process.once('disconnect', () => {
    log.warn('supervisor went away; stopping');
    setTimeout(() => process.exit(1), graceMs).unref();
    stop().finally(() => process.exit(0));
  });
}

/** Config errors and the like: one clear line on stderr, exit code 1, instead of a stack trace. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
