import { ApplicationFailure } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Campaign } from '../db/entities/index.js';
import type { Channel, JourneyStepType } from '../db/entities/enums.js';
import { LIVE_CUSTOMER, TENANT } from '../db/sql.js';
import { audienceInsert } from '../domain/campaigns/audience.js';
import { updateCustomer } from '../domain/customers/customers.js';
import { journeysAfterSegmentEntries } from '../domain/journeys/enrollment.js';
import { afterCustomersChanged } from '../domain/reactions.js';
import { compileCriteria } from '../domain/segments/criteria.js';
import { addMemberCountDeltas } from '../domain/segments/member-counts.js';
import type { ConditionConfig, SendConfig, UpdateConfig, VersionStep, WaitConfig } from '../domain/journeys/steps.js';
import { firstZone, wakeAt } from '../domain/journeys/wait.js';
import { AppError } from '../platform/errors.js';
import type { campaignActivities } from './campaigns.js';
import type { ActivityDeps } from './index.js';

// The journey interpreter's I/O (workflows/journey.ts): each activity works in one transaction and
// first checks the enrolment is still ACTIVE (an API exit, an archive, a merge may have ended it),
// so an enrolment ended elsewhere is left alone. Instants come from the workflow's clock (`at`), so
// step records and waits follow workflow time (which a time-skipping test server moves ahead).

export interface EnrollmentRef {
  tenantId: string;
  journeyId: string;
  enrollmentId: string;
}

export interface LoadedVersion {
  steps: VersionStep[];
  timezone: string | null;
  exitOn: string | null;
  /** The upstream activity that enrolled the customer (`event:<activityId>`), if an event did. */
  triggerActivityId: string | null;
}

/** A finished step, recorded when the next one is entered (or the enrolment ends). */
export interface StepDone {
  stepId: string;
  status: 'COMPLETED' | 'FAILED' | 'SKIPPED';
  outcome: string | null;
  error?: string | null;
  at: string;
}

export interface EnterResult {
  /** ACTIVE, or how someone else ended the enrolment (the workflow then stops quietly). */
  enrollment: string;
  /** The journey's status now: PAUSED holds the enrolment, ARCHIVED exits it. */
  journey: string;
}

export type EndStatus = 'COMPLETED' | 'EXITED' | 'FAILED';

const nonRetryable = (message: string, type: string) => ApplicationFailure.nonRetryable(message, type);

/** Locks the enrolment row for this transaction; its status, or null when it does not exist. */
async function lockEnrollment(em: EntityManager, ref: EnrollmentRef, opts: { nowait?: boolean } = {}): Promise<{ status: string; customer_id: string } | null> {
  const [row] = await em.execute<{ status: string; customer_id: string }[]>(
    `select status, customer_id from journey_enrollments where tenant_id = ? and id = ? for no key update${opts.nowait ? ' nowait' : ''}`,
    [ref.tenantId, ref.enrollmentId],
  );
  return row ?? null;
}

/** PostgreSQL's lock_not_available (a NOWAIT lock held by another transaction). */
const lockNotAvailable = (err: unknown): boolean => {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) if (e.code === '55P03') return true;
  return false;
};

async function completeStep(em: EntityManager, ref: EnrollmentRef, done: StepDone): Promise<void> {
  await em.execute(
    `update journey_enrollment_steps set status = ?, outcome = ?, error = ?, completed_at = ?::timestamptz
      where tenant_id = ? and enrollment_id = ? and step_id = ? and status = 'ACTIVE'`,
    [done.status, done.outcome, done.error ?? null, done.at, ref.tenantId, ref.enrollmentId, done.stepId],
  );
}

export function journeyActivities({ orm, config, log }: ActivityDeps, campaigns: ReturnType<typeof campaignActivities>) {
  /** One attempt at the end (finishJourneyEnrollment): the journey row, then the enrolment's without waiting. */
  async function finishOnce(input: EnrollmentRef & { status: EndStatus; reason?: string | null; at: string; last: StepDone | null }): Promise<boolean> {
    return orm.em.fork().transactional(async (em) => {
      await em.execute('select id from journeys where tenant_id = ? and id = ? for no key update', [input.tenantId, input.journeyId]);
      const enrollment = await lockEnrollment(em, input, { nowait: true });
      if (!enrollment) return false;
      // Ended already (an exit through the API or an event, a merge, a deletion: those end the
      // row, and the workflow only hears of it): its step records are still this run's to close,
      // with the step it was on when it heard (a message sent as the exit came is SENT).
      if (input.last) await completeStep(em, input, input.last);
      await em.execute(
        `update journey_enrollment_steps set status = 'SKIPPED', outcome = coalesce(outcome, ?), completed_at = ?::timestamptz
          where tenant_id = ? and enrollment_id = ? and status = 'ACTIVE'`,
        [enrollment.status === 'ACTIVE' ? input.status : enrollment.status, input.at, input.tenantId, input.enrollmentId],
      );
      if (enrollment.status !== 'ACTIVE') return false;
      const ended = await em.execute<{ id: string }[]>(
        `update journey_enrollments
            set status = ?, waiting_until = null, updated_at = now(),
                completed_at = case when ? = 'COMPLETED' then ?::timestamptz else completed_at end,
                exited_at = case when ? <> 'COMPLETED' then ?::timestamptz else exited_at end,
                exit_reason = ?
          where tenant_id = ? and id = ? and status = 'ACTIVE' returning id`,
        [input.status, input.status, input.at, input.status, input.at, input.reason ?? null, input.tenantId, input.enrollmentId],
      );
      if (!ended.length) return false;
      await em.execute(
        `update journeys set total_completed = total_completed + ?, total_exited = total_exited + ?, updated_at = now() where tenant_id = ? and id = ?`,
        [input.status === 'COMPLETED' ? 1 : 0, input.status === 'COMPLETED' ? 0 : 1, input.tenantId, input.journeyId],
      );
      log.info({ journeyId: input.journeyId, enrollmentId: input.enrollmentId, status: input.status, reason: input.reason }, 'journey enrolment ended');
      return true;
    });
  }

  return {
    /** The enrolment's version, frozen: its steps, zone and exitOn. Once per workflow run chain. */
    async loadJourneyVersion(input: EnrollmentRef & { version: number }): Promise<LoadedVersion> {
      const em = orm.em.fork();
      const [row] = await em.execute<{ steps: VersionStep[]; timezone: string | null; trigger_config: Record<string, unknown> | null; idempotency_key: string | null }[]>(
        `select v.steps, v.timezone, v.trigger_config, e.idempotency_key
           from journey_versions v
           left join journey_enrollments e on e.tenant_id = v.tenant_id and e.id = ?
          where v.tenant_id = ? and v.journey_id = ? and v.version = ?`,
        [input.enrollmentId, input.tenantId, input.journeyId, input.version],
      );
      if (!row) throw nonRetryable(`journey ${input.journeyId} has no version ${input.version}`, 'JourneyVersionNotFound');
      const exitOn = typeof row.trigger_config?.exitOn === 'string' ? row.trigger_config.exitOn : null;
      const key = row.idempotency_key;
      return { steps: row.steps, timezone: row.timezone, exitOn, triggerActivityId: key?.startsWith('event:') ? key.slice('event:'.length) : null };
    },

    /**
     * Records `previous` as done, then (the enrolment still ACTIVE and its journey neither paused
     * nor archived) enters `step`: its record ACTIVE with this visit's number and start, and the
     * enrolment pointing at it. Idempotent: a retry writes the same values.
     */
    async enterJourneyStep(input: EnrollmentRef & {
      step: { id: string; stepNumber: number; type: JourneyStepType; name: string | null };
      visit: number;
      at: string;
      previous: StepDone | null;
    }): Promise<EnterResult> {
      return orm.em.fork().transactional(async (em) => {
        const enrollment = await lockEnrollment(em, input);
        if (!enrollment) return { enrollment: 'MISSING', journey: 'UNKNOWN' };
        if (enrollment.status !== 'ACTIVE') return { enrollment: enrollment.status, journey: 'UNKNOWN' };
        if (input.previous) await completeStep(em, input, input.previous);
        const [journey] = await em.execute<{ status: string }[]>('select status from journeys where tenant_id = ? and id = ?', [input.tenantId, input.journeyId]);
        const status = journey?.status ?? 'ARCHIVED';
        if (status === 'PAUSED' || status === 'ARCHIVED') return { enrollment: 'ACTIVE', journey: status };
        const { step } = input;
        await em.execute(
          `insert into journey_enrollment_steps (id, tenant_id, enrollment_id, step_id, step_number, step_name, step_type, status, visits, started_at)
           values (gen_random_uuid(), ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?::timestamptz)
           on conflict (enrollment_id, step_id) do update
             set step_number = excluded.step_number, step_name = excluded.step_name, step_type = excluded.step_type, status = 'ACTIVE',
                 visits = excluded.visits, started_at = excluded.started_at, completed_at = null, outcome = null, error = null`,
          [input.tenantId, input.enrollmentId, step.id, step.stepNumber, step.name, step.type, input.visit, input.at],
        );
        await em.execute(
          `update journey_enrollments set current_step_id = ?, current_step_number = ?, waiting_until = null, updated_at = now()
            where tenant_id = ? and id = ?`,
          [step.id, step.stepNumber, input.tenantId, input.enrollmentId],
        );
        return { enrollment: 'ACTIVE', journey: status };
      });
    },

    /**
     * A SEND step's one message, through the campaign channel layer: a delivery row of the journey's
     * JOURNEY campaign (run key `<enrollmentId>:<stepId>:<visit>`, the unique key making a retry
     * send nothing twice), PENDING or SKIPPED by the campaigns' consent/address rules, then sent by
     * sendDeliveries with the step's template. `SENT`, `SKIPPED:<reason>`, `FAILED`; `WAIT` with
     * `nextSendAt` when the campaign's quiet hours hold it; `ENDED` when the enrolment has ended.
     */
    async sendJourneyMessage(input: EnrollmentRef & { customerId: string; stepId: string; visit: number; config: SendConfig; at: string }): Promise<{ outcome: string; nextSendAt?: string }> {
      const em = orm.em.fork();
      const runKey = `${input.enrollmentId}:${input.stepId}:${input.visit}`;
      const prepared = await em.transactional(async (tx) => {
        const enrollment = await lockEnrollment(tx, input);
        if (enrollment?.status !== 'ACTIVE') return null;
        const [journey] = await tx.execute<{ campaign_id: string | null }[]>('select campaign_id from journeys where tenant_id = ? and id = ?', [input.tenantId, input.journeyId]);
        const campaign = journey?.campaign_id ? await tx.findOne(Campaign, { id: journey.campaign_id, tenantId: input.tenantId }) : null;
        if (!campaign) throw nonRetryable(`journey ${input.journeyId} has no JOURNEY campaign`, 'JourneyCampaignNotFound');
        const [template] = await tx.execute<{ channel: string }[]>('select channel from message_templates where tenant_id = ? and id = ?', [input.tenantId, input.config.templateId]);
        if (!template) throw nonRetryable(`template ${input.config.templateId} no longer exists`, 'TemplateNotFound');
        const audience = audienceInsert(campaign, runKey, input.customerId, new Date(input.at), { channel: input.config.channel, enrollmentId: input.enrollmentId, stepId: input.stepId });
        await tx.execute(audience.sql, audience.params);
        return campaign;
      });
      if (!prepared) return { outcome: 'ENDED' };
      const read = async () => {
        const [row] = await em.execute<{ status: string; skip_reason: string | null; send_at: Date | null }[]>(
          `select status, skip_reason, send_at from campaign_deliveries where tenant_id = ${TENANT} and campaign_id = ? and run_key = ? and customer_id = ? and channel = ?`,
          [input.tenantId, prepared.id, runKey, input.customerId, input.config.channel],
        );
        return row;
      };
      let row = await read();
      let slice: Awaited<ReturnType<typeof campaigns.sendDeliveries>> | undefined;
      if (row?.status === 'PENDING' || row?.status === 'SENDING') {
        slice = await campaigns.sendDeliveries({
          tenantId: input.tenantId, campaignId: prepared.id, runKey, asOf: input.at, templateIds: { [input.config.channel as Channel]: input.config.templateId },
        });
        row = await read();
      }
      if (!row) throw nonRetryable(`customer ${input.customerId} no longer exists`, 'CustomerNotFound');
      switch (row.status) {
        case 'SKIPPED':
          return { outcome: `SKIPPED:${row.skip_reason ?? 'UNKNOWN'}` };
        case 'FAILED':
        case 'CANCELLED':
          return { outcome: row.status };
        case 'SENDING':
          // Another attempt holds it (one that died, or still sends): back once its lease runs out.
          return {
            outcome: 'WAIT',
            nextSendAt: new Date(slice?.nextSendAt ? Math.max(Date.parse(slice.nextSendAt), Date.parse(input.at) + 1_000) : Date.parse(input.at) + 30_000).toISOString(),
          };
        case 'PENDING':
          // Held (quiet hours, a deferred retry): the workflow comes back.
          return { outcome: 'WAIT', nextSendAt: new Date(row.send_at ? Math.max(row.send_at.getTime(), Date.parse(input.at) + 1_000) : Date.parse(input.at) + 30_000).toISOString() };
        default:
          return { outcome: 'SENT' }; // SENT, or already DELIVERED / BOUNCED by a receipt
      }
    },

    /**
     * When a WAIT step ends (from `at`, the step's start on the workflow's clock), recorded as the
     * enrolment's waitingUntil. Zone for atLocalTime: the journey version's, or with timezone
     * "customer" the customer's home club's (falling back to the journey's, then UTC).
     */
    async startJourneyWait(input: EnrollmentRef & { customerId: string; config: WaitConfig; at: string; timezone: string | null }): Promise<{ until: string | null }> {
      return orm.em.fork().transactional(async (em) => {
        const enrollment = await lockEnrollment(em, input);
        if (enrollment?.status !== 'ACTIVE') return { until: null };
        let clubZone: string | null = null;
        if (input.config.atLocalTime && input.config.timezone === 'customer') {
          const [club] = await em.execute<{ timezone: string | null }[]>(
            `select k.timezone from customers c join clubs k on k.tenant_id = c.tenant_id and k.id = c.home_club_id where c.tenant_id = ${TENANT} and c.id = ?`,
            [input.tenantId, input.customerId],
          );
          clubZone = club?.timezone ?? null;
        }
        const until = wakeAt(input.config, new Date(input.at), firstZone(clubZone, input.timezone)).toISOString();
        await em.execute(
          `update journey_enrollments set waiting_until = ?::timestamptz, updated_at = now() where tenant_id = ? and id = ? and status = 'ACTIVE'`,
          [until, input.tenantId, input.enrollmentId],
        );
        return { until };
      });
    },

    /** A CONDITION step for this one customer now: the segment criteria, or membership of a segment. */
    async evaluateJourneyCondition(input: EnrollmentRef & { customerId: string; config: ConditionConfig }): Promise<boolean> {
      const em = orm.em.fork();
      if (input.config.inSegment !== undefined) {
        const [row] = await em.execute<{ yes: boolean }[]>(
          'select exists (select 1 from segment_members where tenant_id = ? and segment_id = ? and customer_id = ?) as yes',
          [input.tenantId, input.config.inSegment, input.customerId],
        );
        return row!.yes;
      }
      let compiled;
      try {
        compiled = compileCriteria(input.config.criteria);
      } catch (err) {
        if (err instanceof AppError) throw nonRetryable(err.message, err.code);
        throw err;
      }
      const [row] = await em.execute<{ yes: boolean }[]>(
        `select exists (select 1 from customers c where c.tenant_id = ${TENANT} and c.id = ? and ${LIVE_CUSTOMER} and ${compiled.perCustomerSql}) as yes`,
        [input.tenantId, input.customerId, ...compiled.params(input.tenantId)],
      );
      return row!.yes;
    },

    /**
     * An UPDATE step: profile fields through the customer service (SMART segments react in the same
     * transaction), and/or membership of a STATIC segment (recorded as an entry, like any other).
     */
    async applyJourneyUpdate(input: EnrollmentRef & { customerId: string; config: UpdateConfig }): Promise<'DONE' | 'ENDED'> {
      try {
        return await orm.em.fork().transactional(async (em) => {
          // The lock order of every writer (domain/journeys/enrollment.ts): the customer's row (the
          // update takes it; an event's reactions take it first too), the journey's, then the
          // enrolment's. The journey row FOR KEY SHARE: it waits for an archive (FOR UPDATE) in
          // progress, and the update's reactions may still end enrolments or count new ones in this
          // or other journeys (FOR NO KEY UPDATE, which KEY SHARE holders never block).
          await em.execute(`select 1 from customers where tenant_id = ${TENANT} and id = ? for no key update`, [input.tenantId, input.customerId]);
          await em.execute('select 1 from journeys where tenant_id = ? and id = ? for key share', [input.tenantId, input.journeyId]);
          const enrollment = await lockEnrollment(em, input);
          if (enrollment?.status !== 'ACTIVE') return 'ENDED';
          if (input.config.set) await updateCustomer({ tenantId: input.tenantId, em, config }, input.customerId, input.config.set);
          const segmentId = input.config.addToSegment;
          if (segmentId !== undefined) {
            // Key-share: a deletion in flight is waited for (and then the segment is gone); one
            // after this waits for the step.
            const [segment] = await em.execute<{ type: string }[]>('select type from segments where tenant_id = ? and id = ? for key share', [input.tenantId, segmentId]);
            if (!segment) throw nonRetryable(`segment ${segmentId} no longer exists`, 'SegmentNotFound');
            if (segment.type !== 'STATIC') throw nonRetryable(`segment ${segmentId} is ${segment.type}, not STATIC`, 'SegmentNotStatic');
            const added = await em.execute<{ customer_id: string }[]>(
              `insert into segment_members (segment_id, customer_id, tenant_id) values (?, ?, ?) on conflict (segment_id, customer_id) do nothing returning customer_id`,
              [segmentId, input.customerId, input.tenantId],
            );
            if (added.length) {
              const [entry] = await em.execute<{ id: string }[]>(
                `insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause) values (?, ?, ?, 'ENTERED', 'journey') returning id::text`,
                [input.tenantId, segmentId, input.customerId],
              );
              // The entry enrols in the segment's SEGMENT_ENTRY journeys, like any other.
              await journeysAfterSegmentEntries(em, input.tenantId, [entry!.id]);
              await em.execute(addMemberCountDeltas('select ?::uuid, 1'), [segmentId]);
              // SMART segments that read this one's membership.
              await afterCustomersChanged(em, input.tenantId, [input.customerId], 'journey');
            }
          }
          return 'DONE';
        });
      } catch (err) {
        // The customer gone or the fields refused: retrying will not change that.
        if (err instanceof AppError) throw nonRetryable(err.message, err.code);
        throw err;
      }
    },

    /**
     * The enrolment's end: the last step recorded, any step still ACTIVE closed, and ACTIVE →
     * COMPLETED|EXITED|FAILED as one conditional UPDATE bumping the journey's totals in the same
     * transaction. False when it had ended already (someone else ended it; totals untouched).
     */
    async finishJourneyEnrollment(input: EnrollmentRef & { status: EndStatus; reason?: string | null; at: string; last: StepDone | null }): Promise<boolean> {
      // The lock order of every writer (domain/journeys/enrollment.ts): the journey row first
      // (waiting), then the enrolment's. That one without waiting all the same: an UPDATE step of
      // this enrolment holds it under the journey row's KEY SHARE (which this lock does not wait
      // for); held, this attempt gives up (releasing the journey row) and the activity's retry comes
      // back, finding it ACTIVE or ended.
      try {
        return await finishOnce(input);
      } catch (err) {
        if (lockNotAvailable(err)) throw ApplicationFailure.retryable(`enrolment ${input.enrollmentId} is being ended elsewhere; retrying`, 'EnrollmentBusy');
        throw err;
      }
    },
  };
}
