import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { PromotionSourceType } from '../../db/entities/enums.js';
import { dateRangeMessage, inDateRange } from '../validate.js';

// Upstream systems describe what a promotion promotes (competitions, club events, special events)
// through `POST /events`, like everything else they tell the platform; these events are about a
// club, not a customer, so they carry no `customer` and land on no timeline. Each one carries the
// source's whole current state in its metadata; the platform keeps the latest (README, "Event
// promotions").

/** `competition.created`, `club_event.updated`, `special_event.cancelled`, ... */
const SOURCE_TYPES: Record<string, PromotionSourceType> = { competition: 'COMPETITION', club_event: 'CLUB_EVENT', special_event: 'SPECIAL' };
const SOURCE_EVENT = /^(competition|club_event|special_event)\.(created|updated|cancelled)$/;

export const isSourceEvent = (type: string) => SOURCE_EVENT.test(type);

export function sourceEventKind(type: string): { sourceType: PromotionSourceType; cancelled: boolean } {
  const [, prefix, action] = SOURCE_EVENT.exec(type)!;
  return { sourceType: SOURCE_TYPES[prefix!]!, cancelled: action === 'cancelled' };
}

const instant = z.iso.datetime({ offset: true }).transform((s) => new Date(s)).refine(inDateRange, dateRangeMessage);
const webUrl = z.url({ protocol: /^https?$/, message: 'an http(s) URL' }).max(2000);

/** The metadata of a source event (README, "Event promotions"); other fields are not kept. */
export const sourceMetadata = z.object({
  sourceType: z.enum(['COMPETITION', 'CLUB_EVENT', 'SPECIAL']).optional(),
  sourceId: z.string().trim().min(1).max(200),
  clubId: z.string().trim().min(1).max(100),
  title: z.string().trim().min(1).max(500).optional(),
  startsAt: instant,
  url: webUrl,
  description: z.string().max(10_000).nullish(),
  endsAt: instant.nullish(),
  location: z.string().trim().max(500).nullish(),
  imageUrl: webUrl.nullish(),
});

export interface SourceEvent {
  type: string;
  title: string;
  occurredAt: Date;
  sourceService: string;
  sourceEventId: string;
  metadata: z.output<typeof sourceMetadata>;
}

export type SourceOutcome = 'created' | 'duplicate' | 'superseded';

export interface SourceRef {
  sourceType: PromotionSourceType;
  sourceId: string;
}

/**
 * Applies source events, each only if it is newer than the state stored (by occurredAt, then by
 * its service and id, so two events of one instant settle the same whatever their order):
 * `created` when applied, `duplicate` when it is the event stored, `superseded` when a newer one
 * is. A `*.cancelled` event stores the source as cancelled; a later `created` or `updated` event
 * opens it again. Sources are written in key order, so concurrent batches cannot deadlock.
 */
export async function recordSourceEvents(em: EntityManager, tenantId: string, events: SourceEvent[]): Promise<{ outcomes: SourceOutcome[]; changed: SourceRef[] }> {
  const order = events.map((e, i) => ({ e, i, ...sourceEventKind(e.type) }))
    .sort((a, b) => `${a.sourceType}\u0000${a.e.metadata.sourceId}`.localeCompare(`${b.sourceType}\u0000${b.e.metadata.sourceId}`));
  const outcomes: SourceOutcome[] = new Array(events.length);
  const changed = new Map<string, SourceRef>();
  for (const { e, i, sourceType, cancelled } of order) {
    const m = e.metadata;
    const rows = await em.execute<{ applied: boolean; source_service: string; source_event_id: string }[]>(
      `with upsert as (
         insert into promotion_sources (id, tenant_id, source_type, source_id, club_id, title, description, starts_at, ends_at, location, url, image_url,
                                        cancelled_at, occurred_at, source_service, source_event_id)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         on conflict (tenant_id, source_type, source_id) do update
            set club_id = excluded.club_id, title = excluded.title, description = excluded.description, starts_at = excluded.starts_at,
                starts_at_changed_at = case when promotion_sources.starts_at is distinct from excluded.starts_at then now() else promotion_sources.starts_at_changed_at end,
                ends_at = excluded.ends_at, location = excluded.location, url = excluded.url, image_url = excluded.image_url,
                cancelled_at = excluded.cancelled_at, occurred_at = excluded.occurred_at, source_service = excluded.source_service,
                source_event_id = excluded.source_event_id, updated_at = now()
          where (promotion_sources.occurred_at, promotion_sources.source_service, promotion_sources.source_event_id)
              < (excluded.occurred_at, excluded.source_service, excluded.source_event_id)
         returning true as applied, source_service, source_event_id)
       select applied, source_service, source_event_id from upsert
       union all
       select false, source_service, source_event_id from promotion_sources
        where tenant_id = ? and source_type = ? and source_id = ? and not exists (select 1 from upsert)`,
      [
        uuidv7(), tenantId, sourceType, m.sourceId, m.clubId, m.title ?? e.title, m.description ?? null, m.startsAt, m.endsAt ?? null, m.location ?? null,
        m.url, m.imageUrl ?? null, cancelled ? e.occurredAt : null, e.occurredAt, e.sourceService, e.sourceEventId,
        tenantId, sourceType, m.sourceId,
      ],
    );
    const row = rows[0]!;
    if (row.applied) {
      outcomes[i] = 'created';
      changed.set(`${sourceType}\u0000${m.sourceId}`, { sourceType, sourceId: m.sourceId });
    } else {
      outcomes[i] = row.source_service === e.sourceService && row.source_event_id === e.sourceEventId ? 'duplicate' : 'superseded';
    }
  }
  return { outcomes, changed: [...changed.values()] };
}
