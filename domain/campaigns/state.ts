import type { EntityManager } from '@mikro-orm/postgresql';
import type { CampaignStatus } from '../../db/entities/enums.js';
import { AppError, notFound } from '../../platform/errors.js';

// The campaign state machine of campaigns-api.md, in one place: the API's operations and the send
// workflow's activities both move a campaign only through `transition`, a conditional UPDATE, so
// two concurrent actions cannot both succeed from the same state.

export type CampaignAction = 'schedule' | 'execute' | 'start' | 'pause' | 'resume' | 'cancel' | 'complete';

const TRANSITIONS: Record<CampaignAction, { from: readonly CampaignStatus[]; to: CampaignStatus; stamp?: string }> = {
  schedule: { from: ['DRAFT'], to: 'SCHEDULED' },
  execute: { from: ['DRAFT'], to: 'ACTIVE', stamp: 'started_at' },
  // Automatic, at scheduledAt (or a RECURRING campaign's first occurrence).
  start: { from: ['SCHEDULED'], to: 'ACTIVE', stamp: 'started_at' },
  pause: { from: ['ACTIVE'], to: 'PAUSED', stamp: 'paused_at' },
  resume: { from: ['PAUSED'], to: 'ACTIVE', stamp: 'resumed_at' },
  // campaigns-api.md: "Cancels a scheduled or active campaign" (and, per its table, a paused one).
  cancel: { from: ['SCHEDULED', 'ACTIVE', 'PAUSED'], to: 'CANCELLED', stamp: 'cancelled_at' },
  // Automatic, when every delivery has an outcome; a pause that raced the last send does not keep
  // a campaign with nothing left to send PAUSED.
  complete: { from: ['ACTIVE', 'PAUSED'], to: 'COMPLETED', stamp: 'completed_at' },
};

/** What a caller may ask for in each state (the automatic transitions are not theirs to ask). */
const CALLER_ACTIONS: CampaignAction[] = ['schedule', 'execute', 'pause', 'resume', 'cancel'];

export function allowedActions(status: CampaignStatus): CampaignAction[] {
  return CALLER_ACTIONS.filter((a) => TRANSITIONS[a].from.includes(status));
}

export function canTransition(status: CampaignStatus, action: CampaignAction): boolean {
  return TRANSITIONS[action].from.includes(status);
}

export function invalidState(id: string, status: CampaignStatus, action: CampaignAction): AppError {
  const allowed = allowedActions(status);
  return new AppError(
    'INVALID_STATE',
    `campaign ${id} is ${status}: cannot ${action} it; allowed: ${allowed.length ? allowed.join(', ') : 'none'}`,
    { currentStatus: status, allowedActions: allowed },
  );
}

/** Throws INVALID_STATE unless `action` is allowed from `status`. */
export function assertTransition(id: string, status: CampaignStatus, action: CampaignAction): void {
  if (!canTransition(status, action)) throw invalidState(id, status, action);
}

/**
 * Moves the campaign by `action` if its current state allows it, stamping the action's time, in
 * one statement. Returns the new status; throws INVALID_STATE (naming the state it found) if not.
 */
export async function transition(
  em: EntityManager, tenantId: string, id: string, action: CampaignAction, also: { scheduledAt?: Date | null } = {},
): Promise<CampaignStatus> {
  const { from, to, stamp } = TRANSITIONS[action];
  const set = stamp ? `, ${stamp} = ${stamp === 'started_at' ? 'coalesce(started_at, now())' : 'now()'}` : '';
  // What the move carries is written by it, or not at all: a request that loses the race (a double
  // click) leaves the winner's values.
  const carried = 'scheduledAt' in also ? ', scheduled_at = ?' : '';
  const rows = await em.execute<{ status: CampaignStatus }[]>(
    `update campaigns set status = ?, updated_at = now()${set}${carried}
      where tenant_id = ? and id = ? and status = any(?::text[]) returning status`,
    [to, ...('scheduledAt' in also ? [also.scheduledAt ?? null] : []), tenantId, id, `{${from.join(',')}}`],
  );
  if (rows.length) return to;
  const [current] = await em.execute<{ status: CampaignStatus }[]>('select status from campaigns where tenant_id = ? and id = ?', [tenantId, id]);
  if (!current) throw notFound('campaign', id);
  throw invalidState(id, current.status, action);
}
