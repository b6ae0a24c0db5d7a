// How `npm start` runs its processes: the API and the worker as Node children it restarts with
// backoff when they crash, PostgreSQL and Temporal as plain children, and a watchdog that stops
// them all if `npm start` is killed before it can.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Logger } from '../platform/logger.js';
import { isReadyMessage, type ReadyMessage } from '../platform/supervision.js';
import { stopProcess } from './embedded-postgres.js';

const root = path.resolve(import.meta.dirname, '..');

export interface Watchdog {
  pid: number;
  watch(pid: number, signal: NodeJS.Signals): void;
  forget(pid: number): void;
  /** After everything stopped: the watchdog exits with nothing left to kill. */
  close(): Promise<void>;
}

export function startWatchdog(log: Logger): Watchdog {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'scripts/watchdog.ts')], {
    cwd: root, stdio: ['pipe', 'ignore', 'inherit'], detached: true,
  });
  child.unref();
  // A watchdog that died must not take npm start down with it (EPIPE): warn and carry on unwatched.
  child.stdin!.on('error', (err) => log.warn({ err, pid: child.pid }, 'watchdog unreachable: servers are no longer stopped if npm start is killed'));
  const send = (line: string) => {
    if (!child.stdin!.destroyed && child.stdin!.writable) child.stdin!.write(`${line}\n`);
  };
  return {
    pid: child.pid!,
    watch: (pid, signal) => send(`watch ${pid} ${signal}`),
    forget: (pid) => send(`forget ${pid}`),
    close: () => new Promise((resolve) => (child.stdin!.destroyed ? resolve() : child.stdin!.end(resolve))),
  };
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A child that ran this long before crashing starts again from `initialMs`. */
  resetAfterMs: number;
}

export interface SupervisedChild {
  /** Resolves with the child's first ready message; rejects if it exits before that. */
  ready: Promise<ReadyMessage>;
  stop(): Promise<void>;
}

/** Runs `entry` (a TypeScript entry point) as a Node child with an IPC channel, restarting it when it exits. */
export function superviseNode(name: string, entry: string, env: NodeJS.ProcessEnv, log: Logger, backoff: BackoffOptions): SupervisedChild {
  let child: ChildProcess | undefined;
  let stopping = false;
  let delay = backoff.initialMs;
  let restartTimer: NodeJS.Timeout | undefined;
  let everReady = false;
  let resolveReady!: (m: ReadyMessage) => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<ReadyMessage>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  ready.catch(() => {}); // awaited by the caller; a second child failing at once must not crash us

  const run = () => {
    restartTimer = undefined;
    if (stopping) return;
    const startedAt = Date.now();
    // Its own process group: a terminal's Ctrl-C reaches only `npm start`, which stops the
    // children in order (API before worker before Temporal before PostgreSQL).
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, entry)], {
      cwd: root, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true,
    });
    child = proc;
    log.info({ child: name, pid: proc.pid }, 'child started');
    proc.on('message', (message) => {
      if (!isReadyMessage(message)) return;
      everReady = true;
      resolveReady(message);
    });
    proc.once('exit', (code, signal) => {
      if (stopping) return;
      if (!everReady) {
        rejectReady(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready`));
        return;
      }
      if (Date.now() - startedAt >= backoff.resetAfterMs) delay = backoff.initialMs;
      log.warn({ child: name, pid: proc.pid, code, signal, restartInMs: delay }, 'child exited; restarting');
      restartTimer = setTimeout(run, delay);
      delay = Math.min(delay * 2, backoff.maxMs);
    });
  };
  run();

  return {
    ready,
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      if (child) await stopProcess(child, 'SIGTERM');
    },
  };
}
