import type { EntityManager } from '@mikro-orm/postgresql';
import { EventPromotion } from '../db/entities/index.js';
import type { PromotionWorkflowInput } from '../domain/promotions/outbox.js';
import { planStep, type PlanStep } from '../domain/promotions/plan.js';
import { clubZone, sourceOf } from '../domain/promotions/promotions.js';
import { findSend, makeSend } from '../domain/promotions/sends.js';
import type { ActivityDeps } from './index.js';

// The activities of `event-promotion-<id>` (workflows/event-promotion.ts): read the plan, make one
// send. The workflow passes its own clock (`now`), so what is due is judged at workflow time.

export interface PromotionStep {
  stop?: string;
  due: { key: string; kind: 'ANNOUNCE' | 'REMINDER'; days?: number }[];
  nextAt: string | null;
}

async function stepAt(em: EntityManager, input: PromotionWorkflowInput, now: Date): Promise<{ step: PlanStep; promotion: EventPromotion | null }> {
  const promotion = await em.findOne(EventPromotion, { tenantId: input.tenantId, id: input.promotionId }, { populate: ['segment'], refresh: true });
  if (!promotion) return { step: { stop: 'promotion deleted' }, promotion };
  const source = await sourceOf(em, input.tenantId, promotion);
  const sent = await em.execute<{ key: string }[]>('select key from promotion_sends where tenant_id = ? and promotion_id = ?', [input.tenantId, promotion.id]);
  const zone = await clubZone(em, input.tenantId, promotion.clubId);
  return { step: planStep(promotion, source, zone, new Set(sent.map((r) => r.key)), now), promotion };
}

export function promotionActivities({ orm, log }: ActivityDeps) {
  return {
    /** What is due at `now`, and when the next send is (null: nothing until something changes). */
    async promotionStep(input: PromotionWorkflowInput & { now: string }): Promise<PromotionStep> {
      const { step } = await stepAt(orm.em.fork(), input, new Date(input.now));
      if (step.stop !== undefined) return { stop: step.stop, due: [], nextAt: null };
      return { due: step.due.map(({ key, kind, days }) => ({ key, kind, ...(days !== undefined && { days }) })), nextAt: step.nextAt?.toISOString() ?? null };
    },

    /**
     * Makes the send of `key` if it is (still) due at `now`, under the promotion's row lock, so an
     * update committed meanwhile (switched off, event moved or cancelled) is seen. A key sent
     * before answers that send: a retry after a lost answer starts its campaign's run all the same.
     */
    async sendPromotion(input: PromotionWorkflowInput & { key: string; now: string }): Promise<{ sent: boolean; campaignId: string | null; recipientCount: number }> {
      return orm.em.fork().transactional(async (tx) => {
        const em = tx as EntityManager;
        await em.execute('select 1 from event_promotions where tenant_id = ? and id = ? for update', [input.tenantId, input.promotionId]);
        const made = await findSend(em, input.tenantId, input.key);
        if (made) return { sent: true, campaignId: made.campaignId, recipientCount: made.recipientCount };
        const { step, promotion } = await stepAt(em, input, new Date(input.now));
        const due = step.stop === undefined ? step.due.find((s) => s.key === input.key) : undefined;
        if (!due || !promotion) return { sent: false, campaignId: null, recipientCount: 0 };
        const source = (await sourceOf(em, input.tenantId, promotion))!;
        const send = await makeSend(em, promotion, source, await clubZone(em, input.tenantId, promotion.clubId), due.key, due.kind, due.days);
        log.info({ promotionId: promotion.id, key: due.key, campaignId: send.campaignId, recipientCount: send.recipientCount }, 'event promotion sent');
        return { sent: true, campaignId: send.campaignId, recipientCount: send.recipientCount };
      });
    },
  };
}
