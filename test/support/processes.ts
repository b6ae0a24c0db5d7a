import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { stopProcess } from '../../scripts/embedded-postgres.js';

const root = path.resolve(import.meta.dirname, '..', '..');

export interface WorkerProcess {
  pid: number;
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | number | null>;
  stop(): Promise<void>;
}

/** A campaign worker in its own Node process (test/support/worker-process.ts), polling when this resolves. */
export async function spawnWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/worker-process.ts'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('polling ')) resolve();
    });
    void exited.then((how) => reject(new Error(`worker process exited (${how}) before polling`)));
  });
  return {
    pid: child.pid!,
    child,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) await stopProcess(child, 'SIGTERM');
    },
  };
}
