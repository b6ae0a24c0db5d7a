import { Hono } from 'hono';
import type { AppDeps, AppEnv } from './env.js';

const CHECK_TIMEOUT_MS = 2_000;

function withTimeout<T>(work: Promise<T>): Promise<T> {
  return Promise.race([
    work,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS}ms`)), CHECK_TIMEOUT_MS).unref()),
  ]);
}

async function check(work: () => Promise<unknown>): Promise<{ ok: boolean; error?: string }> {
  try {
    await withTimeout(work());
    return { ok: true };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export function healthRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>();
  // Liveness: the process answers. Readiness: it can reach what every request needs.
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const [postgres, temporal] = await Promise.all([
      check(() => deps.orm.em.getConnection().execute('select 1')),
      check(() => deps.temporalProbe.check(CHECK_TIMEOUT_MS)),
    ]);
    const ready = postgres.ok && temporal.ok;
    return c.json({ status: ready ? 'ready' : 'not ready', checks: { postgres, temporal } }, ready ? 200 : 503);
  });
  return app;
}
