import type { EntityManager } from '@mikro-orm/postgresql';
import type { SocialPostStatus } from '../../db/entities/enums.js';
import { AppError, notFound } from '../../platform/errors.js';

// The social post state machine: DRAFT → SCHEDULED → PUBLISHING → PUBLISHED or FAILED (with
// `error`). Every move is a conditional UPDATE (as domain/campaigns/state.ts), so an edit cannot
// slip in after a publish has claimed the post and its content.

export type SocialPostAction = 'update' | 'schedule' | 'publish';

const FROM: Record<SocialPostAction, readonly SocialPostStatus[]> = {
  update: ['DRAFT', 'SCHEDULED', 'FAILED'],
  schedule: ['DRAFT', 'SCHEDULED', 'FAILED'],
  publish: ['DRAFT', 'SCHEDULED', 'FAILED'],
};

export function allowedPostActions(status: SocialPostStatus): SocialPostAction[] {
  return (Object.keys(FROM) as SocialPostAction[]).filter((a) => FROM[a].includes(status));
}

export function postInvalidState(id: string, status: SocialPostStatus, action: SocialPostAction): AppError {
  const allowed = allowedPostActions(status);
  return new AppError('INVALID_STATE', `social post ${id} is ${status}: cannot ${action} it; allowed: ${allowed.length ? allowed.join(', ') : 'none'}`, {
    currentStatus: status, allowedActions: allowed,
  });
}

export function assertPostAction(id: string, status: SocialPostStatus, action: SocialPostAction): void {
  if (!FROM[action].includes(status)) throw postInvalidState(id, status, action);
}

export const postStatesFor = (action: SocialPostAction) => `{${FROM[action].join(',')}}`;

/**
 * Runs `update` (an UPDATE … where status = any(?) … returning status, whose last parameter is
 * the allowed states); when no row matched, throws 404 or INVALID_STATE naming the state found.
 */
export async function conditionalPostUpdate(
  em: EntityManager, tenantId: string, id: string, action: SocialPostAction, sql: string, params: unknown[],
): Promise<SocialPostStatus> {
  const rows = await em.execute<{ status: SocialPostStatus }[]>(sql, [...params, postStatesFor(action)]);
  if (rows.length) return rows[0]!.status;
  const [current] = await em.execute<{ status: SocialPostStatus }[]>('select status from social_posts where tenant_id = ? and id = ?', [tenantId, id]);
  if (!current) throw notFound('social post', id);
  throw postInvalidState(id, current.status, action);
}
