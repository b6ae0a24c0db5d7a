import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect } from 'vitest';
import { freePort } from '../../scripts/ports.js';

// Runs `npm start` (its script, without npm in between, so signals reach it directly) the way an
// operator would, on a data directory and ports of the test's own.
export const root = path.resolve(import.meta.dirname, '../..');
const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});
/** mkdtemp makes it 0700: as root, the postgres user cannot enter it until `npm start` allows it. */
export function dataDirectory(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'crm-stack-'));
  scratch.push(dir);
  return dir;
}

export type Ports = Record<'PORT' | 'PG_PORT' | 'TEMPORAL_PORT' | 'TEMPORAL_UI_PORT' | 'WORKER_METRICS_PORT' | 'MAILDEV_SMTP_PORT' | 'MAILDEV_WEB_PORT', number>;
export const freePorts = async (): Promise<Ports> => ({
  PORT: await freePort(), PG_PORT: await freePort(), TEMPORAL_PORT: await freePort(), TEMPORAL_UI_PORT: await freePort(), WORKER_METRICS_PORT: await freePort(),
  MAILDEV_SMTP_PORT: await freePort(), MAILDEV_WEB_PORT: await freePort(),
});

export function stackEnv(dataDir: string, ports: Ports, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { ...process.env, CRM_DATA_DIR: dataDir, LOG_LEVEL: 'info', ...extra } as Record<string, string>;
  for (const [k, v] of Object.entries(ports)) env[k] = String(v);
  for (const k of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'JWT_SECRET', 'NODE_ENV', 'SMTP_URL']) if (!(k in extra)) delete env[k];
  return env;
}

export interface Started {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `npm start` (its script, without npm in between so signals reach it directly). */
export function npmStart(env: Record<string, string>, as: { uid?: number; gid?: number } = {}): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], ...as });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    output: () => output,
    exited,
    waitFor: (pattern, timeoutMs = 240_000) => new Promise((resolve, reject) => {
      const check = () => {
        const match = output.match(pattern);
        if (!match) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(match);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${pattern} within ${timeoutMs}ms:\n${output}`));
      }, timeoutMs);
      waiters.add(check);
      void exited.then(({ code, signal }) => {
        if (!waiters.has(check)) return;
        waiters.delete(check);
        clearTimeout(timer);
        reject(new Error(`exited (${code ?? signal}) before ${pattern}:\n${output}`));
      });
      check();
    }),
  };
}

/** The pid the supervisor logged for a child ('api', 'worker'), the n-th time it started it. */
export async function childPid(started: Started, name: string, nth = 1): Promise<number> {
  const pattern = new RegExp(`"child":"${name}","pid":(\\d+),"msg":"child started"`, 'g');
  await started.waitFor(new RegExp(Array(nth).fill(`"child":"${name}","pid":\\d+,"msg":"child started"`).join('[\\s\\S]*')));
  return Number([...started.output().matchAll(pattern)][nth - 1]![1]);
}

export async function stop(started: Started, signal: NodeJS.Signals) {
  started.child.kill(signal);
  expect(await started.exited).toEqual({ code: 0, signal: null });
}

/** Something accepts TCP connections on the port (PostgreSQL and Temporal's gRPC do not speak HTTP/1). */
export const answers = (port: number) => new Promise<boolean>((resolve) => {
  const socket = connect({ host: '127.0.0.1', port });
  socket.once('connect', () => {
    socket.destroy();
    resolve(true);
  });
  socket.once('error', () => resolve(false));
});

/** After a failed test: what a killed start may have left on this test's own data directory. */
export function killLeftovers(dataDir: string) {
  for (const file of ['pg/postmaster.pid', 'temporal.pid']) {
    try {
      process.kill(Number(readFileSync(path.join(dataDir, file), 'utf8').split('\n')[0]), 'SIGKILL');
    } catch {
      // not running
    }
  }
}

export async function eventually(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs}ms: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function api(port: number, method: string, url: string, auth: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1${url}`, {
    method, headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

export const banner = /Ctrl-C stops everything/;

