// `npm run migrate`: applies pending migrations to DATABASE_URL (production deploy step).
import { migrate, openOrm } from '../db/orm.js';
import { embeddedDatabaseUrl, loadConfig } from '../platform/config.js';

const config = loadConfig();
const orm = await openOrm(config.DATABASE_URL ?? embeddedDatabaseUrl(config));
try {
  const applied = await migrate(orm);
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n');
} finally {
  await orm.close();
}
