import { pipeline, Readable, Transform } from 'node:stream';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { CsvError, parse as parseCsv } from 'csv-parse';
import { z } from 'zod';
import { newIds } from '../../db/ids.js';
import { copyFromStdin, executeBound, liveCustomer, pgArray } from '../../db/sql.js';
import type { Config } from '../../platform/config.js';
import { AppError, fromZod } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { afterCustomersChanged, LOCK_CUSTOMERS } from '../reactions.js';
import { hasNul } from '../validate.js';
import { customerFields, type CustomerFields } from './schemas.js';

export type ImportFormat = 'ndjson' | 'csv';
export interface ImportRow {
  line: number;
  record: unknown;
}
export interface ImportReport {
  created: number;
  updated: number;
  rejected: number;
  /** The first MAX_REPORTED rejections, with their line numbers. */
  errors: { line: number; reason: string }[];
}

const BATCH = 1000;
const WRITERS = 2;
const MAX_REPORTED = 1000;

// CSV cells are strings: blank means "not given", and booleans/numbers are spelled out. Anything
// else is refused, naming the field: a typo ("Y", "on") must not opt a member out.
const BOOLEAN_WORDS = new Map([['true', true], ['1', true], ['yes', true], ['false', false], ['0', false], ['no', false]]);
const csvBoolean = z.preprocess((v) => (typeof v === 'string' ? BOOLEAN_WORDS.get(v.trim().toLowerCase()) ?? v : v),
  z.boolean({ error: 'expected true/false, 1/0 or yes/no' }));
const csvNumber = z.preprocess((v) => (typeof v === 'string' ? (v.trim() === '' ? undefined : Number(v)) : v), z.number().optional());
/** A rejection's reason as reported: a header or key of any length is named, not copied whole. */
const MAX_REASON = 300;

const importRow = (region: string) =>
  z.preprocess(
    (raw) => {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
      // A plain loop: this runs once per row of a million-row file. A row with a "__proto__" key
      // gets no prototype, so the key stays a key (and is refused as unknown) instead of setting
      // one; the others a plain object, a fifth the size of one without a prototype.
      const row: Record<string, unknown> = Object.hasOwn(raw, '__proto__') ? Object.create(null) : {};
      for (const key of Object.keys(raw)) {
        const value = (raw as Record<string, unknown>)[key];
        if (value !== '' && value !== null) row[key] = value;
      }
      // Spreadsheets say "phone"; the API says "phoneNumber".
      if (row.phone !== undefined) {
        if (row.phoneNumber === undefined) row.phoneNumber = row.phone;
        delete row.phone;
      }
      return row;
    },
    customerFields(region)
      .extend({ handicap: csvNumber.pipe(z.number().min(-10).max(54).optional()), emailOptIn: csvBoolean.optional(), smsOptIn: csvBoolean.optional(), pushOptIn: csvBoolean.optional() })
      .strict()
      .refine((r) => r.email || r.phoneNumber, { message: 'a row needs an email or a phone number to upsert by', path: ['email'] })
      .refine((r) => !hasNul(r), { message: 'text may not contain NUL characters' }),
  );

const COLUMN_NAMES = [
  'email', 'phone', 'phoneNumber', 'authUserId', 'firstName', 'lastName', 'lifecycleStage', 'membershipTier', 'membershipStatus',
  'handicap', 'homeClubId', 'emailOptIn', 'smsOptIn', 'pushOptIn',
];
const BY_LOOSE_NAME = new Map(COLUMN_NAMES.map((name) => [name.toLowerCase(), name]));

/**
 * Spreadsheet headers such as "First Name", "first_name" or "EMAIL" name the API's fields. Any
 * other header is refused once, for the whole file: every row would be refused for it.
 */
function canonicalColumn(header: string): string {
  const trimmed = header.trim();
  const name = BY_LOOSE_NAME.get(trimmed.toLowerCase().replace(/[\s_-]+/g, ''));
  if (name) return name;
  const shown = trimmed.length > 60 ? `${trimmed.slice(0, 60)}… (${trimmed.length} characters)` : trimmed;
  throw new AppError('VALIDATION_ERROR', `body: unknown column "${shown}" in the CSV header; columns: ${COLUMN_NAMES.join(', ')}`, { field: 'body' });
}

export interface ImportLimits {
  maxRows: number;
  maxLineBytes: number;
}

export const importLimits = (config: Config): ImportLimits => ({ maxRows: config.MAX_IMPORT_ROWS, maxLineBytes: config.MAX_IMPORT_LINE_BYTES });

const lineTooLong = (line: number, maxLineBytes: number) =>
  new AppError('PAYLOAD_TOO_LARGE', `body: line ${line} is longer than the limit of ${maxLineBytes} bytes`, { field: 'body' });

/**
 * Walks the line breaks of a byte stream, failing on a line longer than `maxLineBytes`, so that a
 * file without line breaks is never buffered whole. With `lines`, each chunk's whole lines are
 * pushed as one array (NDJSON: one hop through the stream and its async iteration per chunk, not
 * per line); without, the bytes pass through unchanged (CSV, whose parser splits for itself).
 */
function boundedLines(maxLineBytes: number, lines?: boolean): Transform {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 1;
  // A chunk's whole lines are decoded as one string and split there: decoding each line on its
  // own was a native call per row. A line break byte never falls inside a multi-byte character.
  const split = (bytes: Buffer) => {
    const text = bytes.toString('utf8');
    const parts = text.split('\n');
    return text.includes('\r') ? parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)) : parts;
  };
  return new Transform({
    readableObjectMode: Boolean(lines),
    transform(chunk: Buffer, _encoding, done) {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        if (pendingBytes + nl - start > maxLineBytes) return done(lineTooLong(line, maxLineBytes));
        pendingBytes = 0;
        line++;
        start = nl + 1;
      }
      let whole: string[] | undefined;
      if (lines && start) {
        const upToLastBreak = chunk.subarray(0, start - 1);
        whole = split(pending.length ? Buffer.concat([...pending, upToLastBreak]) : upToLastBreak);
        pending = [];
      }
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLineBytes) return done(lineTooLong(line, maxLineBytes));
      if (lines && start < chunk.length) pending.push(chunk.subarray(start));
      done(null, lines ? whole : chunk);
    },
    flush(done) {
      done(null, lines && pendingBytes ? split(Buffer.concat(pending)) : undefined);
    },
  });
}

/**
 * Rows of an NDJSON or CSV byte stream, parsed as they arrive (never buffered whole), bounded by
 * `limits`, in the groups they arrive in. A malformed CSV (an unclosed quote, say) is a
 * VALIDATION_ERROR naming its line. `assertWhole` is asked once the stream has ended: a body cut
 * short at its byte limit throws there, after the rows before the cut have met the other limits.
 */
export async function* readImportRows(body: Readable, format: ImportFormat, limits: ImportLimits, assertWhole = () => {}): AsyncGenerator<ImportRow[]> {
  let rows = 0;
  const counted = (row: ImportRow) => {
    if (++rows > limits.maxRows) {
      throw new AppError('PAYLOAD_TOO_LARGE', `body: more than the limit of ${limits.maxRows} rows (at line ${row.line}); split the file`, { field: 'body' });
    }
    return row;
  };
  if (format === 'ndjson') {
    let line = 0;
    for await (const texts of pipeline(body, boundedLines(limits.maxLineBytes, true), () => {}) as AsyncIterable<string[]>) {
      const group: ImportRow[] = [];
      for (const text of texts) {
        line++;
        if (!text.trim()) continue;
        let record: unknown;
        try {
          record = JSON.parse(text);
        } catch {
          record = Symbol.for('invalid-json');
        }
        group.push(counted({ line, record }));
      }
      if (group.length) yield group;
    }
    assertWhole();
    return;
  }
  const parser = pipeline(
    body,
    boundedLines(limits.maxLineBytes),
    parseCsv({
      columns: (header: string[]) => header.map(canonicalColumn), bom: true, trim: true, skip_empty_lines: true, relax_column_count: true, info: true,
      max_record_size: limits.maxLineBytes,
    }),
    () => {},
  );
  try {
    for await (const { record, info } of parser) yield [counted({ line: info.lines, record })];
    assertWhole();
  } catch (err) {
    if (err instanceof CsvError) {
      assertWhole(); // a record cut short at the byte limit
      const line = (err as CsvError & { lines?: number }).lines;
      throw new AppError('VALIDATION_ERROR', `body: not valid CSV${line ? ` at line ${line}` : ''}: ${err.message}`, { field: 'body' });
    }
    throw err;
  }
}

const COLUMNS = [
  ['email', 'text'], ['phone_number', 'text'], ['auth_user_id', 'text'], ['first_name', 'text'], ['last_name', 'text'],
  ['lifecycle_stage', 'text'], ['membership_tier', 'text'], ['membership_status', 'text'], ['handicap', 'float8'],
  ['home_club_id', 'text'], ['email_opt_in', 'bool'], ['sms_opt_in', 'bool'], ['push_opt_in', 'bool'],
] as const;
const PROPS: (keyof CustomerFields)[] = [
  'email', 'phoneNumber', 'authUserId', 'firstName', 'lastName', 'lifecycleStage', 'membershipTier', 'membershipStatus', 'handicap',
  'homeClubId', 'emailOptIn', 'smsOptIn', 'pushOptIn',
];

const COPY_CUSTOMERS = copyFromStdin(`copy customers (id, tenant_id, ${COLUMNS.map(([c]) => c).join(', ')}) from stdin with (format csv)`);

/**
 * A CSV field: null unquoted (COPY's NULL), text quoted. Text is sent as UTF-8, whose encoder
 * turns a lone surrogate into U+FFFD; NUL never gets here (the row schema refuses it).
 */
const csvField = (value: unknown): string => {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') return String(value);
  return value.includes('"') ? `"${value.replace(/"/g, '""')}"` : `"${value}"`;
};

/** What a new profile gets for a field its row leaves out (the update path leaves it as it is). */
const INSERT_DEFAULTS: Partial<Record<keyof CustomerFields, string | boolean>> = {
  lifecycleStage: 'SUBSCRIBER', emailOptIn: false, smsOptIn: false, pushOptIn: false,
};

/** Rows a chunk of COPY's input holds. */
const COPY_CHUNK_ROWS = 100;

/**
 * New profiles as COPY's CSV input, a chunk at a time as the connection takes them. Made all at
 * once, a batch's text (as one string, in V8's large-object space; as chunks, queued for the
 * socket) outlived two young-generation collections and went to the old generation: half a
 * kilobyte a row that only a full collection frees, most of the import's heap growth.
 */
function* csvRows(tenantId: string, rows: { id: string; fields: CustomerFields }[]): Generator<string> {
  const tenant = csvField(tenantId);
  const lines: string[] = [];
  for (const { id, fields } of rows) {
    let line = `${id},${tenant}`;
    for (const prop of PROPS) line += `,${csvField(fields[prop] ?? INSERT_DEFAULTS[prop])}`;
    lines.push(line);
    if (lines.length === COPY_CHUNK_ROWS) {
      yield `${lines.join('\n')}\n`;
      lines.length = 0;
    }
  }
  if (lines.length) yield `${lines.join('\n')}\n`;
}

/** The identifiers of a batch's rows. */
interface BatchKeys {
  emails: Set<string>;
  phones: Set<string>;
}
const batchKeys = (): BatchKeys => ({ emails: new Set(), phones: new Set() });
const holds = (keys: BatchKeys, email: string | null | undefined, phone: string | null | undefined) =>
  (!!email && keys.emails.has(email)) || (!!phone && keys.phones.has(phone));

interface Valid {
  line: number;
  fields: CustomerFields;
}

/** What one import has learnt about its rows, shared by its batches. */
interface ImportState {
  /** No batch has met an identifier a profile already holds: batches insert without ON CONFLICT. */
  plainInserts: boolean;
}

/**
 * Upserts a stream of customer rows, matching live profiles by email, then phone. Rows are
 * validated and written in batches of 1,000 set-based statements, each batch in its own
 * transaction: memory stays flat whatever the file size.
 */
export async function importCustomers(ctx: ServiceContext, groups: AsyncIterable<ImportRow[]>, onBatch?: (report: ImportReport) => void): Promise<ImportReport> {
  const schema = importRow(ctx.config.DEFAULT_PHONE_REGION);
  const report: ImportReport = { created: 0, updated: 0, rejected: 0, errors: [] };
  // The reason is made only for the rejections reported.
  const reject = (line: number, reason: string | (() => string)) => {
    report.rejected++;
    if (report.errors.length >= MAX_REPORTED) return;
    const text = typeof reason === 'string' ? reason : reason();
    report.errors.push({ line, reason: text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text });
  };
  let batch: Valid[] = [];
  let keys = batchKeys();
  const state: ImportState = { plainInserts: true };
  // Batches are written on WRITERS connections while the next one is parsed. Overlapping writes
  // stay correct: an insert that meets a row another batch has not committed yet waits for it,
  // then skips to the update path (see upsertBatch).
  // A row repeating an identifier of a batch still being written waits for that batch, so the
  // later row always lands last.
  const writing = new Set<Promise<void>>();
  const writingKeys = new Set<BatchKeys>();
  let failed: { error: unknown } | undefined;
  const flush = async () => {
    if (failed) throw failed.error;
    if (!batch.length) return;
    const full = batch;
    const fullKeys = keys;
    batch = [];
    keys = batchKeys();
    while (writing.size >= WRITERS) await Promise.race(writing);
    writingKeys.add(fullKeys);
    // A failed write is kept (never left unhandled) and thrown by the next flush.
    const write: Promise<void> = writeBatch(ctx, full, report, reject, state).then(
      () => onBatch?.(report),
      (error: unknown) => void (failed ??= { error }),
    ).finally(() => {
      writing.delete(write);
      writingKeys.delete(fullKeys);
    });
    writing.add(write);
  };

  try {
    await readRows();
  } catch (err) {
    // A stream cut short (over a limit, malformed): batches already sent still finish before the
    // answer, which says what they wrote (an upsert: the file may be sent again).
    await Promise.allSettled(writing);
    if (err instanceof AppError) {
      throw new AppError(err.code, `${err.message} (rows before it were written: ${report.created} created, ${report.updated} updated)`, {
        ...err.details, written: { created: report.created, updated: report.updated, rejected: report.rejected },
      });
    }
    throw err;
  }
  await flush();
  await Promise.all(writing);
  if (failed) throw failed.error;
  report.errors.sort((a, b) => a.line - b.line);
  return report;

  async function readRows() {
    for await (const group of groups) for (const { line, record } of group) {
      if (typeof record === 'symbol') {
        reject(line, 'not valid JSON');
        continue;
      }
      const parsed = schema.safeParse(record);
      if (!parsed.success) {
        reject(line, () => fromZod(parsed.error).message);
        continue;
      }
      const { email, phoneNumber } = parsed.data;
      // A row repeating an identifier of its own batch goes to the next batch, so it updates the first.
      if (holds(keys, email, phoneNumber) || batch.length >= BATCH) await flush();
      for (const written of writingKeys) {
        if (holds(written, email, phoneNumber)) {
          await Promise.all(writing);
          break;
        }
      }
      if (email) keys.emails.add(email);
      if (phoneNumber) keys.phones.add(phoneNumber);
      batch.push({ line, fields: parsed.data });
    }
  }
}

async function writeBatch(ctx: ServiceContext, batch: Valid[], report: ImportReport, reject: (line: number, reason: string) => void, state: ImportState) {
  for (let attempt = 1; ; attempt++) {
    try {
      const counts = await ctx.em.fork().transactional((em) => upsertBatch(em, ctx.tenantId, batch, state));
      report.created += counts.created;
      report.updated += counts.updated;
      for (const r of counts.rejected) reject(r.line, r.reason);
      return;
    } catch (err) {
      // A concurrent writer took an identifier between our lookup and our insert: look again.
      if (!(err instanceof UniqueConstraintViolationException) || attempt >= 3) {
        if (err instanceof UniqueConstraintViolationException) throw new AppError('CONFLICT', 'customers changed concurrently during import; retry');
        throw err;
      }
    }
  }
}

async function upsertBatch(em: EntityManager, tenantId: string, batch: Valid[], state: ImportState) {
  // The batch is one JSON parameter, expanded by json_to_recordset: the batch never becomes SQL
  // text, and JSON.stringify (native) replaces pg's per-element escaping of one array per column,
  // which was the import's largest single cost. Text is made well-formed (a lone surrogate becomes
  // U+FFFD, as the UTF-8 encoding of a parameter does) since PostgreSQL refuses it escaped in JSON.
  const rowsJson = (rows: { id: string; fields: CustomerFields }[]) => JSON.stringify(rows.map((r) => {
    const row: Record<string, unknown> = { id: r.id };
    PROPS.forEach((prop, i) => {
      const value = r.fields[prop];
      row[COLUMNS[i]![0]] = typeof value === 'string' ? value.toWellFormed() : value ?? null;
    });
    return row;
  }));
  const unnest = (param: number) => `json_to_recordset($${param}::json) as v(id uuid, ${COLUMNS.map(([c, type]) => `${c} ${type}`).join(', ')})`;

  // Insert first: rows whose email or phone a live profile already owns are skipped by the
  // unique indexes, and only those few need a lookup. A load of new customers never reads.
  const ids = newIds(batch.length);
  const candidates = batch.map((row, i) => ({ ...row, id: ids[i]! }));
  const insert = (onConflict: string) => executeBound<{ id: string }>(
    em,
    `insert into customers (id, tenant_id, ${COLUMNS.map(([c]) => c).join(', ')})
     select v.id, $1, v.email, v.phone_number, v.auth_user_id, v.first_name, v.last_name, coalesce(v.lifecycle_stage, '${INSERT_DEFAULTS.lifecycleStage}'),
            v.membership_tier, v.membership_status, v.handicap, v.home_club_id,
            coalesce(v.email_opt_in, ${INSERT_DEFAULTS.emailOptIn}), coalesce(v.sms_opt_in, ${INSERT_DEFAULTS.smsOptIn}), coalesce(v.push_opt_in, ${INSERT_DEFAULTS.pushOptIn})
       from ${unnest(2)}
     ${onConflict}
     returning id`,
    [tenantId, rowsJson(candidates)],
  );
  let inserted: { id: string }[];
  if (state.plainInserts) {
    // Optimistic: COPY, whose rows cost PostgreSQL about a third less than an INSERT ... SELECT
    // with ON CONFLICT DO NOTHING, which probes each of the five unique indexes before inserting
    // and confirms every row after. A batch that meets a taken identifier rolls back to the
    // savepoint and goes the careful way, as does the rest of the import (a file that updates
    // profiles meets them in every batch).
    await executeBound(em, 'savepoint import_batch', []);
    try {
      await executeBound(em, COPY_CUSTOMERS, [csvRows(tenantId, candidates)]);
      inserted = candidates;
    } catch (err) {
      if (!(err instanceof UniqueConstraintViolationException)) throw err;
      state.plainInserts = false;
      await executeBound(em, 'rollback to savepoint import_batch', []);
      inserted = await insert('on conflict do nothing');
    }
  } else {
    inserted = await insert('on conflict do nothing');
  }
  const insertedIds = new Set(inserted.map((r) => r.id));
  const rest = candidates.filter((c) => !insertedIds.has(c.id));
  const rejected: { line: number; reason: string }[] = [];
  if (!rest.length) {
    await afterCustomersChanged(em, tenantId, [...insertedIds], 'imported');
    return { created: inserted.length, updated: 0, rejected };
  }

  // Two probes, each answered by its partial unique index (an OR of both would scan the tenant).
  const live = `tenant_id = $1 and ${liveCustomer()}`;
  const existing = await executeBound<{ id: string; email: string | null; phone_number: string | null }>(
    em,
    `select id, email, phone_number from customers where ${live} and email = any($2::text[])
     union
     select id, email, phone_number from customers where ${live} and phone_number = any($3::text[])`,
    [tenantId, rest.flatMap((r) => (r.fields.email ? [r.fields.email] : [])), rest.flatMap((r) => (r.fields.phoneNumber ? [r.fields.phoneNumber] : []))],
  );
  const byEmail = new Map(existing.filter((c) => c.email).map((c) => [c.email!, c.id]));
  const byPhone = new Map(existing.filter((c) => c.phone_number).map((c) => [c.phone_number!, c.id]));
  const authUserIds = rest.flatMap((r) => (r.fields.authUserId ? [r.fields.authUserId] : []));
  const byAuthUser = new Map(
    authUserIds.length
      ? (await executeBound<{ id: string; auth_user_id: string }>(
          em,
          `select id, auth_user_id from customers where ${live} and auth_user_id is not null and auth_user_id = any($2::text[])`,
          [tenantId, authUserIds],
        )).map((c) => [c.auth_user_id, c.id])
      : [],
  );
  const updates: { id: string; fields: CustomerFields }[] = [];
  const updated = new Set<string>();
  for (const { line, fields } of rest) {
    const viaEmail = fields.email ? byEmail.get(fields.email) : undefined;
    const viaPhone = fields.phoneNumber ? byPhone.get(fields.phoneNumber) : undefined;
    const target = viaEmail ?? viaPhone;
    const authOwner = fields.authUserId ? byAuthUser.get(fields.authUserId) : undefined;
    if (viaEmail && viaPhone && viaEmail !== viaPhone) {
      rejected.push({ line, reason: `email belongs to customer ${viaEmail} and phoneNumber to customer ${viaPhone}` });
    } else if (target && authOwner && authOwner !== target) {
      rejected.push({ line, reason: `authUserId belongs to customer ${authOwner}` });
    } else if (target && updated.has(target)) {
      // One statement updates a row once: a second row for the same profile waits for a re-import.
      rejected.push({ line, reason: `another row of this batch already updates customer ${target}` });
    } else if (target) {
      updated.add(target);
      updates.push({ id: target, fields });
    } else {
      // Skipped by a unique index yet matching no live profile by email or phone: its auth user id is taken.
      rejected.push({ line, reason: 'authUserId belongs to another customer' });
    }
  }
  if (updates.length) {
    // Profiles are locked first, in id order as events lock them: in the file's order, an update
    // and an event batch holding the same two profiles could each wait for the other (a deadlock).
    const ids = updates.map((u) => u.id);
    await executeBound(em, LOCK_CUSTOMERS(ids.length), [tenantId, pgArray(ids)]);
    // Import sets what a row gives and leaves the rest: blank cells never erase data.
    await executeBound(
      em,
      `update customers c set ${COLUMNS.map(([col]) => `${col} = coalesce(v.${col}, c.${col})`).join(', ')}, updated_at = now()
         from ${unnest(2)} where c.id = v.id and c.tenant_id = $1 and ${liveCustomer('c')}`,
      [tenantId, rowsJson(updates)],
    );
  }
  await afterCustomersChanged(em, tenantId, [...insertedIds, ...updates.map((u) => u.id)], 'imported');
  return { created: inserted.length, updated: updates.length, rejected };
}
