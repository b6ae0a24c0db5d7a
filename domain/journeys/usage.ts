import type { EntityManager } from '@mikro-orm/postgresql';

// What a journey still runs on: a template or segment named by the current version of an ACTIVE or
// PAUSED journey (PAUSED ones resume on it), or by any version running enrolments are on. Deleting
// such a template or segment is refused (CONFLICT), as campaigns refuse deleting a template they use:
// otherwise every enrolment reaching the step would fail.

export interface JourneyUse {
  id: string;
  name: string;
  status: string;
}

/** Journeys of the tenant whose live versions name `id` (a template's or a segment's) anywhere. */
export async function journeysUsing(em: EntityManager, tenantId: string, id: string): Promise<JourneyUse[]> {
  // The id as a JSON string anywhere in the steps or the trigger (templateId, inSegment, criteria's
  // segment references, addToSegment, segmentId): a UUID names nothing else.
  const needle = `%${JSON.stringify(id.toLowerCase())}%`;
  return em.execute<JourneyUse[]>(
    `select j.id, j.name, j.status from journeys j
      where j.tenant_id = ? and j.status <> 'ARCHIVED'
        and exists (
          select 1 from journey_versions v
           where v.tenant_id = j.tenant_id and v.journey_id = j.id
             and (lower(v.steps::text) like ? or lower(coalesce(v.trigger_config::text, '')) like ?)
             and ((j.status in ('ACTIVE', 'PAUSED') and v.version = j.current_version)
                  or exists (select 1 from journey_enrollments e
                              where e.tenant_id = v.tenant_id and e.journey_id = v.journey_id and e.version = v.version and e.status = 'ACTIVE')))
      order by j.name, j.id`,
    [tenantId, needle, needle],
  );
}

export const usedBy = (uses: JourneyUse[]) => uses.map((j) => `journey "${j.name}" (${j.id}, ${j.status})`).join(', ');
