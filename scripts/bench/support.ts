import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { stopProcess } from '../embedded-postgres.js';
import { freePort } from '../ports.js';
import { startTemporalDevServer } from '../temporal-dev-server.js';

export const root = path.resolve(import.meta.dirname, '..', '..');

// The API processes the benchmarks start sign tokens with this secret.
export const BENCH_SECRET = 'bench-secret-bench-secret-bench-secret';
export const STAGES = ['SUBSCRIBER', 'LEAD', 'CUSTOMER', 'MEMBER', 'ADVOCATE'];

export interface Server {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Runs `script` in its own Node process (so load generator and server do not share a thread). */
export async function spawnServer(script: string, env: Record<string, string>, port: number, readyPath: string): Promise<Server> {
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : []), ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BENCH_PROF] : []), '--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent' },
    stdio: ['ignore', process.env.BENCH_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(url + readyPath)).status < 500) break;
    } catch {
      // not listening yet
    }
    // A worker bundles its workflows first, and tsx compiles the API's modules: on the loaded shared
    // machine the API alone took over two minutes, so allow five.
    if (i > 3000) {
      await stopProcess(child, 'SIGKILL');
      throw new Error(`${script} did not start`);
    }
    await sleep(100);
  }
  return { url, child, stop: () => stopProcess(child, 'SIGTERM') };
}

/** Peak resident memory of a process in MiB (VmHWM). */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/**
 * CPU time the whole machine spent busy (every process and the kernel, not idle or stolen), in ms,
 * from /proc/stat: per request it says what a rate cannot, on a machine shared with the load
 * generator and whose idle share varies from run to run. NaN where there is no /proc/stat.
 */
export function machineBusyMs(): number {
  try {
    const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (user! + nice! + system! + irq! + softirq!) * 10; // USER_HZ: 100 on Linux
  } catch {
    return Number.NaN;
  }
}

export const ratio = (value: number, baseline: number) => (baseline ? (value / baseline).toFixed(2) : 'n/a');

export function table(rows: Record<string, string | number>[]): string {
  const cols = Object.keys(rows[0] ?? {});
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i]!)).join('  ');
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join('\n');
}

export async function query<T = any>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

export interface TemporalAndWorker {
  client: Client;
  /** The Temporal server's address, for other processes (an API) to reach it. */
  address: string;
  workerPid: number;
  taskQueue: string;
}

/** A throwaway Temporal dev server and the worker in its own process, for one benchmark. */
export async function withTemporalAndWorker<T>(url: string, env: Record<string, string>, work: (t: TemporalAndWorker) => Promise<T>): Promise<T> {
  const temporal = await startTemporalDevServer({ port: await freePort() });
  const taskQueue = `bench-${randomUUID().slice(0, 8)}`;
  const worker = await spawnServer('scripts/bench/worker-process.ts', { DATABASE_URL: url, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_TASK_QUEUE: taskQueue, ...env }, await freePort(), '/')
    .catch(async (error: unknown) => {
      await temporal.stop();
      throw error;
    });
  const connection = await Connection.connect({ address: temporal.address });
  try {
    return await work({ client: new Client({ connection }), address: temporal.address, workerPid: worker.child.pid!, taskQueue });
  } finally {
    await connection.close();
    await worker.stop();
    await temporal.stop();
  }
}
