// Writes a new migration with the difference between the entities and the migrated schema.
// Usage: npm run migration:create -- [name]   (against DATABASE_URL, or a throwaway embedded PostgreSQL)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate, openOrm } from '../db/orm.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';

const name = process.argv[2];
let server: EmbeddedPostgres | undefined;
let scratch: string | undefined;
let url = process.env.DATABASE_URL;
if (!url) {
  scratch = mkdtempSync(path.join(tmpdir(), 'crm-migration-'));
  server = await startEmbeddedPostgres({ dataDir: path.join(scratch, 'pg'), port: 54329, durable: false });
  url = server.url;
}
const orm = await openOrm(url);
try {
  await migrate(orm);
  const result = await orm.migrator.create(path.resolve('db/migrations'), false, false, name);
  console.log(result.fileName ? `wrote db/migrations/${result.fileName}; add it to db/migrations/index.ts` : 'no changes');
} finally {
  await orm.close();
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}
