// `npm run import-customers -- --tenant <id> --file <path> [--format csv|ndjson]`
// Upserts customers from a file straight into the database with the same rules as
// POST /api/v1/customers/import, showing progress; prints the report as JSON on stdout.
import { createReadStream, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { activityDbTimeouts, openOrm } from '../db/orm.js';
import { importCustomers, importLimits, readImportRows, type ImportFormat } from '../domain/customers/import.js';
import { embeddedDatabaseUrl, loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { createTemporalClient } from '../platform/temporal.js';

const { values } = parseArgs({ options: { tenant: { type: 'string' }, file: { type: 'string' }, format: { type: 'string' } } });
if (!values.tenant || !values.file) {
  process.stderr.write('usage: npm run import-customers -- --tenant <id> --file <path> [--format csv|ndjson]\n');
  process.exit(2);
}
const format = (values.format ?? (values.file.endsWith('.csv') ? 'csv' : 'ndjson')) as ImportFormat;
if (format !== 'csv' && format !== 'ndjson') {
  process.stderr.write('--format must be csv or ndjson\n');
  process.exit(2);
}

const config = loadConfig();
const orm = await openOrm(config.DATABASE_URL ?? embeddedDatabaseUrl(config), activityDbTimeouts(config));
const size = statSync(values.file).size;
const input = createReadStream(values.file);
let read = 0;
input.on('data', (chunk) => (read += chunk.length));

const bar = (done: number) => {
  const width = 30;
  const filled = Math.round((done / Math.max(size, 1)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.round((100 * done) / Math.max(size, 1))}%`;
};

try {
  const report = await importCustomers(
    {
      principal: { sub: 'cli', tenantId: values.tenant, scopes: new Set(['crm:write']) },
      tenantId: values.tenant,
      requestId: `cli_${Date.now()}`,
      em: orm.em.fork(),
      // The import starts no workflows; the lazy client never connects.
      temporal: createTemporalClient(config),
      config,
      log: createLogger(config.LOG_LEVEL),
    },
    readImportRows(input, format, importLimits(config)),
    (r) => process.stderr.write(`\r${bar(read)} ${r.created + r.updated + r.rejected} rows (${r.created} created, ${r.updated} updated, ${r.rejected} rejected)`),
  );
  process.stderr.write(`\r${bar(size)} ${report.created + report.updated + report.rejected} rows\n`);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  await orm.close();
}
