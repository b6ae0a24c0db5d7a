import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate, openOrm } from '../../db/orm.js';
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.js';
import { startTemporalDevServer } from '../../scripts/temporal-dev-server.js';
import { freePort } from '../../scripts/ports.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    temporalAddress: string;
  }
}

// DATABASE_URL / TEMPORAL_ADDRESS point the suite at existing servers; otherwise it starts its own.
export default async function setup(project: TestProject) {
  const stops: (() => Promise<void>)[] = [];
  const scratch = mkdtempSync(path.join(tmpdir(), 'crm-test-'));

  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres({ dataDir: path.join(scratch, 'pg'), port: await freePort(), database: 'crm_test', durable: false });
    stops.push(pg.stop);
    databaseUrl = pg.url;
  }
  const orm = await openOrm(databaseUrl);
  await migrate(orm);
  await orm.close();

  let temporalAddress = process.env.TEMPORAL_ADDRESS;
  if (!temporalAddress) {
    const temporal = await startTemporalDevServer({ port: await freePort() });
    stops.push(temporal.stop);
    temporalAddress = temporal.address;
  }

  project.provide('databaseUrl', databaseUrl);
  project.provide('temporalAddress', temporalAddress);

  return async () => {
    for (const stop of stops.reverse()) await stop();
    rmSync(scratch, { recursive: true, force: true });
  };
}
