import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { inject } from 'vitest';
import { startApi, type RunningApi } from '../../api/server.js';
import { signDevToken, SCOPES } from '../../platform/auth.js';
import { loadConfig, type Config } from '../../platform/config.js';
import { createLogger, type Logger } from '../../platform/logger.js';
import type { Options } from '@mikro-orm/postgresql';
import { responseChecker, type Doc } from './contract.js';

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256';
const ALL_SCOPES = [...SCOPES];

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: inject('databaseUrl'),
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    JWT_SECRET: TEST_JWT_SECRET,
    PORT: '0',
    LOG_LEVEL: 'silent',
    // Every file's worker shares the database: only a file that asks starts reactions, and only
    // those of its own tenants (several files ask, and ran each other's on their own servers).
    OUTBOX_DISPATCH: 'false',
    // Every GraphQL operation runs compiled, as a client's repeated queries do (graphql-js: test/graphql-compiled.test.ts).
    GRAPHQL_COMPILE_AFTER: '0',
    OUTBOX_TENANT_PREFIX: TENANT_PREFIX,
    ...overrides,
  });
}

/** This file's tenants (each test file loads this module afresh). */
const TENANT_PREFIX = `tenant_${randomUUID().slice(0, 6)}_`;
/** A unique tenant per test keeps files independent while they share one database. */
export const newTenant = () => `${TENANT_PREFIX}${randomUUID().slice(0, 8)}`;

export function token(tenantId: string, scopes: string[] = ALL_SCOPES, extra: { sub?: string; name?: string } = {}) {
  return signDevToken(TEST_JWT_SECRET, { tenantId, scopes, sub: extra.sub ?? 'user_test', name: extra.name });
}

export interface TestApi extends RunningApi {
  /** JSON request against the real HTTP server; `auth` is a bearer token. */
  call(method: string, path: string, opts?: { auth?: string; body?: unknown; headers?: Record<string, string> }): Promise<{
    status: number;
    headers: Headers;
    body: any;
  }>;
  graphql(auth: string, query: string, variables?: Record<string, unknown>): Promise<{ status: number; headers: Headers; body: any }>;
  /** Resolves once SMART segments have followed every change the tenant committed so far. */
  settled(tenantId: string): Promise<void>;
}

export async function startTestApi(
  overrides: Record<string, string> = {},
  options: { log?: Logger; orm?: Partial<Options> } = {},
): Promise<TestApi> {
  // TEST_LOG_LEVEL=error npm test shows what the servers log (failures behind a 500, say).
  const api = await startApi(testConfig(overrides), options.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), options.orm);
  let check: ReturnType<typeof responseChecker> | undefined;
  const call: TestApi['call'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.auth) headers.authorization = `Bearer ${opts.auth}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    const res = await fetch(api.url + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (HTML pages, NDJSON)
    }
    const route = path.split('?')[0]!;
    if (route.startsWith('/api/v1/') && route !== '/api/v1/openapi.json') {
      check ??= responseChecker((await (await fetch(`${api.url}/api/v1/openapi.json`)).json()) as Doc);
      const problem = check(method, route.slice('/api/v1'.length), res.status, parsed);
      if (problem) throw new Error(`answer not as the OpenAPI document says: ${problem}`);
    }
    return { status: res.status, headers: res.headers, body: parsed };
  };
  let db: pg.Pool | undefined;
  return {
    ...api,
    call,
    graphql: (auth, query, variables) => call('POST', '/graphql', { auth, body: { query, variables } }),
    async settled(tenantId) {
      db ??= new pg.Pool({ connectionString: testConfig().DATABASE_URL, max: 1 });
      // A row disappears when the drain that took it commits, its moves with it.
      while ((await db.query('select 1 from segment_reevaluations where tenant_id = $1 limit 1', [tenantId])).rowCount) await sleep(5);
    },
    async close() {
      await db?.end();
      await api.close();
    },
  };
}
