// `npm run schemathesis`: property-based fuzzing of the REST API from its own OpenAPI document.
// Starts the whole stack on embedded defaults in a throwaway data folder (PostgreSQL, Temporal dev
// server, worker, API), runs Schemathesis against /api/v1/openapi.json with a token of a fresh
// tenant, and fails on any 5xx. Bounded in time: SCHEMATHESIS_MAX_EXAMPLES per operation, SCHEMATHESIS_TIMEOUT_S for the whole run.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { startApi } from '../api/server.js';
import { migrate, openOrm } from '../db/orm.js';
import { signDevToken, SCOPES } from '../platform/auth.js';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { installTemporalLogging, startWorker } from '../worker/main.js';
import { cacheDir, say } from './cache.js';
import { startMessagingServer } from './messaging-server.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { freePort } from './ports.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

const VERSION = '4.32.5';
const maxExamples = process.env.SCHEMATHESIS_MAX_EXAMPLES ?? '25';
const timeoutSeconds = Number(process.env.SCHEMATHESIS_TIMEOUT_S ?? '240');
const root = path.resolve(import.meta.dirname, '..');

/**
 * The newest CPython on PATH that can make a virtual environment, and its version. CPython before
 * 3.11.8 and 3.12.1 can fail with "AST constructor recursion depth mismatch" when threads parse
 * source at once (python/cpython#106905). Hypothesis parses source to describe its filters, and
 * Schemathesis's workers are threads: with two of them on 3.11.7 the crash hit several CI runs,
 * once both a run and its rerun. On such an interpreter one worker runs.
 */
function python(): { cmd: string; version: number[] } {
  for (const cmd of ['python3.13', 'python3.12', 'python3']) {
    const probe = spawnSync(cmd, ['-c', 'import ensurepip, venv, sys; print(*sys.version_info[:3])'], { encoding: 'utf8' });
    if (probe.status === 0) return { cmd, version: probe.stdout.trim().split(' ').map(Number) };
  }
  throw new Error('python3 with its venv module is needed (Debian: apt-get install -y python3-venv)');
}
const interpreter = python();
const [major, minor, micro] = interpreter.version as [number, number, number];
const threadSafeAst = major > 3 || minor > 12 || (minor === 12 && micro >= 1) || (minor === 11 && micro >= 8);
const workers = threadSafeAst ? '2' : '1';

/** The `st` binary of a virtual environment in the cache, created on first use. */
function schemathesisCli(): string {
  const venv = cacheDir(`schemathesis-${VERSION}-py${major}.${minor}`);
  const st = path.join(venv, 'bin', 'st');
  if (existsSync(st)) return st;
  say(`installing Schemathesis ${VERSION} into ${venv} (${interpreter.cmd} ${interpreter.version.join('.')})`);
  const run = (cmd: string, args: string[]) => {
    const result = spawnSync(cmd, args, { stdio: 'inherit' });
    if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
  };
  run(interpreter.cmd, ['-m', 'venv', '--clear', venv]);
  run(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `schemathesis==${VERSION}`]);
  return st;
}

const st = schemathesisCli();
const scratch = mkdtempSync(path.join(tmpdir(), 'crm-schemathesis-'));
const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
installTemporalLogging(log);
const stops: (() => Promise<void>)[] = [() => Promise.resolve(rmSync(scratch, { recursive: true, force: true }))];
let exitCode = 1;
try {
  const pg = await startEmbeddedPostgres({ dataDir: path.join(scratch, 'pg'), port: await freePort(), durable: false });
  stops.push(pg.stop);
  const orm = await openOrm(pg.url);
  await migrate(orm);
  await orm.close();
  const temporal = await startTemporalDevServer({ port: await freePort() });
  stops.push(temporal.stop);

  // A Messaging service that answers, so segment syncs finish instead of retrying a dead address.
  const messaging = await startMessagingServer();
  stops.push(messaging.close);

  const secret = randomUUID() + randomUUID();
  // Rate limits out of the way: every generated case should reach its operation, not a 429.
  const unlimited = Object.fromEntries(['READ', 'WRITE', 'CAMPAIGN', 'SOCIAL', 'BULK'].map((c) => [`RATE_LIMIT_${c}`, '1000000000']));
  const config = loadConfig({
    ...process.env, ...unlimited, DATABASE_URL: pg.url, TEMPORAL_ADDRESS: temporal.address, TEMPORAL_TASK_QUEUE: 'schemathesis',
    JWT_SECRET: secret, PORT: '0', MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey,
    // Configured, so the webhook answers its unsigned cases 401 rather than 503.
    MESSAGING_WEBHOOK_SECRET: randomUUID(),
  });
  const worker = await startWorker(config, log);
  stops.push(async () => {
    await worker.stop();
    await worker.done;
  });
  const api = await startApi(config, log);
  stops.push(api.close);

  const tenant = `schemathesis_${randomUUID().slice(0, 8)}`;
  const token = await signDevToken(secret, { tenantId: tenant, scopes: [...SCOPES], sub: 'schemathesis' });
  const args = [
    '--config-file', path.join(root, 'scripts', 'schemathesis.toml'),
    'run', `${api.url}/api/v1/openapi.json`,
    '--checks', 'not_a_server_error',
    '--max-examples', maxExamples,
    '--workers', workers,
    '--header', `Authorization: Bearer ${token}`,
  ];
  say(`schemathesis against ${api.url}/api/v1/openapi.json (tenant ${tenant}, ${maxExamples} examples per operation, at most ${timeoutSeconds} s, ${workers} worker(s) on Python ${interpreter.version.join('.')})`);
  // In the scratch folder: Schemathesis keeps its own cache (.schemathesis/) in the working directory.
  // Every line of its report is prefixed: its pytest-style closing banner ("== 2 warnings in 50s ==")
  // would otherwise read, to CI, as a test runner that closed on no test.
  const fuzz = async (seconds: number) => {
    let interpreterBug = false;
    let apiFailures = false;
    const child = spawn(st, [...args, '--max-time', String(Math.max(30, seconds - 30))], { stdio: ['ignore', 'pipe', 'pipe'], cwd: scratch });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        if (line.includes('SystemError: AST constructor recursion depth mismatch')) interpreterBug = true;
        if (/=+ FAILURES =+/.test(line)) apiFailures = true;
        process.stdout.write(`schemathesis | ${line}\n`);
      });
    }
    const killer = setTimeout(() => {
      say(`schemathesis ran past ${seconds} s: stopping it`);
      child.kill('SIGTERM');
    }, seconds * 1000);
    const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(signal ? 124 : (c ?? 1))));
    clearTimeout(killer);
    return { code, toolCrashedAlone: interpreterBug && !apiFailures };
  };
  const deadline = Date.now() + timeoutSeconds * 1000;
  let outcome = await fuzz(timeoutSeconds);
  // Some CPython 3.11 releases crash at random inside Hypothesis (it parses source to describe its
  // filters: "AST constructor recursion depth mismatch"). That says nothing about the API, so a run
  // whose only problem is that crash is run once more, in what is left of the budget and at least a
  // minute (CI's whole run has a budget: a crash had taken it within 35 s of CI's 20 minutes); a
  // failure of the API itself never is.
  if (outcome.code !== 0 && outcome.toolCrashedAlone) {
    say('schemathesis crashed inside the Python interpreter, not on an answer of the API: running it once more');
    outcome = await fuzz(Math.max(60, Math.ceil((deadline - Date.now()) / 1000)));
  }
  exitCode = outcome.code;
} catch (err) {
  log.error({ err }, 'schemathesis run failed');
} finally {
  for (const stop of stops.reverse()) await stop().catch((err) => log.error({ err }, 'error while stopping'));
}
process.exit(exitCode);

