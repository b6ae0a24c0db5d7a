import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { dispatchRow } from '../../worker/outbox.js';

/**
 * Relays one tenant's outbox rows of `kind` to this file's Temporal server with the dispatcher's
 * own code. For files on a time-skipping server of their own: the shared database's dispatchers
 * (other files' workers, on another server) may take a row first, so it is relayed here whether or
 * not it is marked dispatched; a repeat is harmless, as in production.
 */
export async function relayOutbox(db: pg.Client, client: Client, taskQueue: string, tenantId: string, kind: string): Promise<number> {
  const { rows } = await db.query('select id, tenant_id, kind, key, payload from reaction_outbox where tenant_id = $1 and kind = $2 order by created_at', [tenantId, kind]);
  for (const row of rows) await dispatchRow(client, taskQueue, row);
  return rows.length;
}
