import type { EntityManager } from '@mikro-orm/postgresql';
import type { PromotionSourceType } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';

// The hand-off from committed promotion changes to `event-promotion-<id>` workflows, through the
// reaction outbox (worker/outbox.ts): PROMOTION_SIGNAL rows, written in the change's transaction,
// are relayed as signalWithStart, so a running workflow re-reads its plan and one that has ended
// (its event was cancelled, then opened again; it was switched off, then on) starts again.

export const PROMOTION_SIGNAL = 'promotion-signal';

export const promotionWorkflowId = (promotionId: string) => `event-promotion-${promotionId}`;

export interface PromotionWorkflowInput {
  tenantId: string;
  promotionId: string;
}

export interface PromotionSignalPayload {
  workflowId: string;
  input: PromotionWorkflowInput;
}

/**
 * Queues `planChanged` for the given promotions (the caller knows they run, or should), or for
 * the automatic, active promotions of changed sources.
 */
export async function signalPromotions(
  em: EntityManager,
  tenantId: string,
  scope: { promotionIds: string[] } | { sources: { sourceType: PromotionSourceType; sourceId: string }[] },
): Promise<number> {
  const [where, params] = 'promotionIds' in scope
    ? ['p.id = any(?::uuid[])', [pgArray(scope.promotionIds)]]
    : ['(p.source_type, p.source_id) in (select * from unnest(?::text[], ?::text[])) and p.is_active and p.auto_promote',
      [pgArray(scope.sources.map((s) => s.sourceType)), pgArray(scope.sources.map((s) => s.sourceId))]];
  const rows = await em.execute<{ id: string }[]>(
    `insert into reaction_outbox (id, tenant_id, kind, key, payload)
     select gen_random_uuid(), p.tenant_id, ?, p.id || ':' || gen_random_uuid(),
            jsonb_build_object('workflowId', 'event-promotion-' || p.id, 'input', jsonb_build_object('tenantId', p.tenant_id, 'promotionId', p.id))
       from event_promotions p
      where p.tenant_id = ? and ${where}
     returning id`,
    [PROMOTION_SIGNAL, tenantId, ...params],
  );
  // Wakes listening dispatchers (worker/outbox.ts) at commit.
  if (rows.length) await em.execute(`select pg_notify('reaction_outbox', '')`);
  return rows.length;
}
