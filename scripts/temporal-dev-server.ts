// Starts the real Temporal dev server (`temporal server start-dev`) with the platform's search
// attributes, and waits until it answers.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { searchAttributes } from '../platform/search-attributes.js';
import { assertOrphaned, stopProcess, waitForExit } from './embedded-postgres.js';
import { resolveTemporalCli } from './temporal-cli.js';

export interface TemporalDevServer {
  address: string;
  uiUrl?: string;
  /** Absent when the SDK's own server runs it (no Temporal CLI). */
  pid?: number;
  stop(): Promise<void>;
}

export interface TemporalDevServerOptions {
  port: number;
  uiPort?: number; // no UI when absent
  dbFile?: string; // in-memory when absent
  namespace?: string;
  log?: (line: string) => void;
  notice?: (line: string) => void;
  /** Records the server's pid, so the next start can stop one an abruptly killed start left behind. */
  pidFile?: string;
  onSpawn?: (pid: number) => void;
  /** Own process group (Ctrl-C does not reach it): only for a caller with a watchdog (npm start). */
  detached?: boolean;
}

/** A dev server of this database file still running from a killed `npm start`: stop it first. */
async function stopOrphan(pidFile: string, dbFile: string | undefined, notice: (l: string) => void): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    // gone
  }
  if (cmdline.includes('start-dev') && (!dbFile || cmdline.includes(dbFile))) {
    assertOrphaned(pid, `the Temporal dev server of ${dbFile ?? 'this data directory'}`);
    notice(`stopping the Temporal dev server (pid ${pid}) left running by an earlier start`);
    process.kill(pid, 'SIGTERM');
    await waitForExit(pid, 30_000);
  }
  rmSync(pidFile, { force: true });
}

export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const namespace = opts.namespace ?? 'default';
  const address = `127.0.0.1:${opts.port}`;
  const uiUrl = opts.uiPort ? `http://127.0.0.1:${opts.uiPort}` : undefined;
  const cli = resolveTemporalCli();

  if (!cli) {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'cached-download' },
        ip: '127.0.0.1', port: opts.port, namespace, dbFilename: opts.dbFile,
        ui: Boolean(opts.uiPort), uiPort: opts.uiPort, searchAttributes,
      },
    });
    return { address, uiUrl, stop: () => env.teardown() };
  }

  const args = [
    'server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--namespace', namespace,
    '--log-level', 'warn', ...searchAttributes.flatMap((a) => ['--search-attribute', `${a.name}=Keyword`]),
    ...(opts.uiPort ? ['--ui-port', String(opts.uiPort)] : ['--headless']),
    ...(opts.dbFile ? ['--db-filename', opts.dbFile] : []),
  ];
  if (opts.pidFile) await stopOrphan(opts.pidFile, opts.dbFile, opts.notice ?? (() => {}));
  // A second attempt when the first exits before it answers: the CLI takes its internal services'
  // ports as it starts, and another process starting at the same moment can take one first (a Go
  // panic: address already in use). Not an attempt more: a second exit is the server's own fault.
  try {
    return await spawnDevServer(cli, args, opts, address, uiUrl);
  } catch (err) {
    if (!(err instanceof DevServerExited)) throw err;
    opts.notice?.(`the Temporal dev server exited while starting; starting it again (${err.message.slice(0, 300)})`);
    return spawnDevServer(cli, args, opts, address, uiUrl);
  }
}

class DevServerExited extends Error {}

async function spawnDevServer(cli: string, args: string[], opts: TemporalDevServerOptions, address: string, uiUrl: string | undefined): Promise<TemporalDevServer> {
  const namespace = opts.namespace ?? 'default';
  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  opts.onSpawn?.(child.pid!);
  if (opts.pidFile) writeFileSync(opts.pidFile, `${child.pid}\n`);
  const forget = () => {
    if (opts.pidFile) rmSync(opts.pidFile, { force: true });
  };
  // Its first lines and its last: a panic's message leads a stack trace of thousands of lines.
  let head = '';
  let tail = '';
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    if (head.length < 2000) head = (head + text).slice(0, 2000);
    else tail = (tail + text).slice(-2000);
    for (const line of text.split('\n')) if (line.trim()) opts.log?.(line);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new DevServerExited(`temporal server exited with code ${code}: ${head}${tail ? `\n…\n${tail}` : ''}`))),
  );
  try {
    await Promise.race([waitForTemporal(address, namespace, 120_000), exited]);
  } catch (err) {
    await stopProcess(child, 'SIGTERM');
    forget();
    throw err;
  }
  return { address, uiUrl, pid: child.pid, stop: () => stopProcess(child, 'SIGTERM').then(forget) };
}

async function waitForTemporal(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`Temporal at ${address} did not become ready: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
