import type { JourneyStepType } from '../../db/entities/enums.js';
import type { ServiceContext } from '../context.js';
import { getJourney, stepsOfJourneys } from './journeys.js';
import type { VersionStep } from './steps.js';

// Per-step counts of a journey (beyond the spec: GET /journeys/{id}/stats), counted from rows like
// campaign stats: journey_enrollment_steps for how many enrolments reached and finished each step,
// and for SEND steps the JOURNEY campaign's delivery and interaction rows naming the step.

export interface JourneyStepStats {
  stepId: string;
  stepNumber: number;
  type: JourneyStepType;
  name: string | null;
  /** Enrolments that reached the step (whatever became of them there). */
  entered: number;
  /** Enrolments at the step now. */
  active: number;
  completed: number;
  skipped: number;
  failed: number;
  /** SEND steps: the messages of the step (null for other types). */
  messages: { sent: number; delivered: number; opened: number; clicked: number; bounced: number; failed: number; skipped: number } | null;
}

export interface JourneyStatsView {
  journeyId: string;
  version: number;
  totalEnrolled: number;
  totalCompleted: number;
  totalExited: number;
  steps: JourneyStepStats[];
}

const SENT = `d.status in ('SENT', 'DELIVERED', 'BOUNCED')`;

export async function journeyStats(ctx: ServiceContext, id: string): Promise<JourneyStatsView> {
  const journey = await getJourney(ctx, id);
  // The current version's steps; before the first activation, the working copy.
  let steps: VersionStep[];
  if (journey.currentVersion > 0) {
    const [row] = await ctx.em.execute<{ steps: VersionStep[] }[]>(
      'select steps from journey_versions where tenant_id = ? and journey_id = ? and version = ?', [ctx.tenantId, journey.id, journey.currentVersion],
    );
    steps = row?.steps ?? [];
  } else {
    steps = (await stepsOfJourneys(ctx.em, ctx.tenantId, [journey.id])).get(journey.id)!;
  }
  const [records, messages] = await Promise.all([
    ctx.em.execute<{ step_id: string; entered: number; active: number; completed: number; skipped: number; failed: number }[]>(
      `select s.step_id,
              (count(*) filter (where s.status <> 'PENDING'))::int as entered,
              (count(*) filter (where s.status = 'ACTIVE'))::int as active,
              (count(*) filter (where s.status = 'COMPLETED'))::int as completed,
              (count(*) filter (where s.status = 'SKIPPED'))::int as skipped,
              (count(*) filter (where s.status = 'FAILED'))::int as failed
         from journey_enrollment_steps s
         join journey_enrollments e on e.tenant_id = s.tenant_id and e.id = s.enrollment_id
        where s.tenant_id = ? and e.journey_id = ?
        group by s.step_id`,
      [ctx.tenantId, journey.id],
    ),
    journey.campaignId
      ? ctx.em.execute<{ step_id: string; sent: number; delivered: number; bounced: number; failed: number; skipped: number; opened: number; clicked: number }[]>(
        `select d.journey_step_id as step_id,
                (count(*) filter (where ${SENT}))::int as sent,
                (count(*) filter (where d.status = 'DELIVERED'))::int as delivered,
                (count(*) filter (where d.status = 'BOUNCED'))::int as bounced,
                (count(*) filter (where d.status = 'FAILED'))::int as failed,
                (count(*) filter (where d.status = 'SKIPPED'))::int as skipped,
                (count(*) filter (where exists (select 1 from campaign_interactions i where i.tenant_id = d.tenant_id and i.delivery_id = d.id and i.type = 'OPENED')))::int as opened,
                (count(*) filter (where exists (select 1 from campaign_interactions i where i.tenant_id = d.tenant_id and i.delivery_id = d.id and i.type = 'CLICKED')))::int as clicked
           from campaign_deliveries d
          where d.tenant_id = ? and d.campaign_id = ? and d.journey_step_id is not null
          group by d.journey_step_id`,
        [ctx.tenantId, journey.campaignId],
      )
      : [],
  ]);
  const recordOf = new Map(records.map((r) => [r.step_id, r]));
  const messagesOf = new Map(messages.map((m) => [m.step_id, m]));
  return {
    journeyId: journey.id,
    version: journey.currentVersion,
    totalEnrolled: journey.totalEnrolled,
    totalCompleted: journey.totalCompleted,
    totalExited: journey.totalExited,
    steps: steps.map((s) => {
      const r = recordOf.get(s.id);
      const m = messagesOf.get(s.id);
      return {
        stepId: s.id, stepNumber: s.stepNumber, type: s.type, name: s.name ?? null,
        entered: r?.entered ?? 0, active: r?.active ?? 0, completed: r?.completed ?? 0, skipped: r?.skipped ?? 0, failed: r?.failed ?? 0,
        messages: s.type === 'SEND'
          ? { sent: m?.sent ?? 0, delivered: m?.delivered ?? 0, opened: m?.opened ?? 0, clicked: m?.clicked ?? 0, bounced: m?.bounced ?? 0, failed: m?.failed ?? 0, skipped: m?.skipped ?? 0 }
          : null,
      };
    }),
  };
}
