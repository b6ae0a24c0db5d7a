import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { JourneyStepType } from '../../db/entities/enums.js';
import type { VersionStep } from '../../domain/journeys/steps.js';
import { journeyWorkflowId } from '../../workflows/journey.js';

// Journeys as rows, written straight into PostgreSQL: a journey with its JOURNEY campaign, published
// versions (frozen step lists) and enrolments, as the journey API and the enrolment path leave them,
// so the interpreter can be tested on its own (started as the dispatcher starts it).

export type Db = Pick<pg.Client, 'query'>;

export interface StepSpec {
  type: JourneyStepType;
  config?: Record<string, unknown>;
  name?: string;
  /** Names of the steps it leads to (see `graph`). */
  next?: string;
  yes?: string;
  no?: string;
}

/**
 * A version's steps from named specs: `next`/`yes`/`no` name other specs; a spec without `next`
 * leads to the one after it in the list (an END leads nowhere). Ids are fresh UUIDs.
 */
export function graph<K extends string>(specs: Record<K, StepSpec>): { steps: VersionStep[]; ids: Record<K, string> } {
  const names = Object.keys(specs) as K[];
  const ids = Object.fromEntries(names.map((n) => [n, randomUUID()])) as Record<K, string>;
  const link = (name: string | undefined) => (name === undefined ? null : ids[name as K]);
  const steps = names.map((name, i): VersionStep => {
    const spec = specs[name];
    const branches = spec.type === 'CONDITION' || spec.type === 'SPLIT';
    const following = spec.type === 'END' || branches ? undefined : (spec.next ?? names[i + 1]);
    return {
      id: ids[name], stepNumber: i + 1, type: spec.type, name: spec.name ?? name, config: spec.config ?? {},
      nextStepId: link(following), nextStepYesId: branches ? link(spec.yes) : null, nextStepNoId: branches ? link(spec.no) : null,
    };
  });
  return { steps, ids };
}

export async function insertCustomer(db: Db, tenantId: string, fields: {
  email?: string; phone?: string; firstName?: string; emailOptIn?: boolean; smsOptIn?: boolean; homeClubId?: string;
} = {}): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `insert into customers (tenant_id, email, phone_number, first_name, email_opt_in, sms_opt_in, home_club_id)
     values ($1, $2, $3, $4, $5, $6, $7) returning id`,
    [tenantId, fields.email ?? null, fields.phone ?? null, fields.firstName ?? null, fields.emailOptIn ?? false, fields.smsOptIn ?? false, fields.homeClubId ?? null],
  );
  return rows[0]!.id;
}

export async function insertTemplate(db: Db, tenantId: string, channel: string, body: string, subject?: string): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `insert into message_templates (tenant_id, name, channel, subject, body) values ($1, $2, $3, $4, $5) returning id`,
    [tenantId, `${channel} template`, channel, subject ?? null, body],
  );
  return rows[0]!.id;
}

export interface JourneyRows {
  tenantId: string;
  journeyId: string;
  campaignId: string;
}

/** An ACTIVE journey, its JOURNEY campaign, and version 1 of `steps`. */
export async function insertJourney(db: Db, tenantId: string, steps: VersionStep[], opts: {
  timezone?: string | null; triggerConfig?: Record<string, unknown>; name?: string;
} = {}): Promise<JourneyRows> {
  const name = opts.name ?? 'Journey';
  const { rows: [campaign] } = await db.query<{ id: string }>(
    `insert into campaigns (tenant_id, name, type, status) values ($1, $2, 'JOURNEY', 'ACTIVE') returning id`,
    [tenantId, `Journey: ${name}`],
  );
  const triggerConfig = opts.triggerConfig ?? { event: 'member.joined' };
  const { rows: [journey] } = await db.query<{ id: string }>(
    `insert into journeys (tenant_id, name, status, trigger_type, trigger_config, timezone, current_version, campaign_id, activated_at)
     values ($1, $2, 'ACTIVE', 'EVENT', $3, $4, 1, $5, now()) returning id`,
    [tenantId, name, JSON.stringify(triggerConfig), opts.timezone ?? null, campaign!.id],
  );
  const rows = { tenantId, journeyId: journey!.id, campaignId: campaign!.id };
  await insertVersion(db, rows, 1, steps, opts);
  return rows;
}

/** A published version of the journey (and the journey's current version becomes it). */
export async function insertVersion(db: Db, journey: JourneyRows, version: number, steps: VersionStep[], opts: {
  timezone?: string | null; triggerConfig?: Record<string, unknown>;
} = {}): Promise<void> {
  const triggerConfig = opts.triggerConfig ?? { event: 'member.joined' };
  const eventTypes = [
    ...(typeof triggerConfig.exitOn === 'string' ? [triggerConfig.exitOn] : []),
    ...steps.flatMap((s) => (s.type === 'WAIT' && typeof s.config.untilEvent === 'string' ? [s.config.untilEvent] : [])),
  ];
  await db.query(
    `insert into journey_versions (tenant_id, journey_id, version, trigger_type, trigger_config, allow_reentry, timezone, steps, event_types)
     values ($1, $2, $3, 'EVENT', $4, false, $5, $6, $7)`,
    [journey.tenantId, journey.journeyId, version, JSON.stringify(triggerConfig), opts.timezone ?? null, JSON.stringify(steps), eventTypes],
  );
  await db.query('update journeys set current_version = greatest(current_version, $2) where id = $1', [journey.journeyId, version]);
}

export interface EnrollmentRows {
  enrollmentId: string;
  workflowId: string;
  customerId: string;
  /** The upstream activity id that enrolled the customer. */
  activityId: string;
}

/** An ACTIVE enrolment row (and the journey's totalEnrolled), as the enrolment path writes it. */
export async function insertEnrollment(db: Db, journey: JourneyRows, customerId: string, version = 1, sequence = 1): Promise<EnrollmentRows> {
  const workflowId = journeyWorkflowId(journey.journeyId, customerId, sequence);
  const activityId = randomUUID();
  const { rows: [row] } = await db.query<{ id: string }>(
    `insert into journey_enrollments (tenant_id, journey_id, customer_id, status, version, sequence, idempotency_key, workflow_id)
     values ($1, $2, $3, 'ACTIVE', $4, $5, $6, $7) returning id`,
    [journey.tenantId, journey.journeyId, customerId, version, sequence, `event:${activityId}`, workflowId],
  );
  await db.query('update journeys set total_enrolled = total_enrolled + 1 where id = $1', [journey.journeyId]);
  return { enrollmentId: row!.id, workflowId, customerId, activityId };
}

export interface StepRecord {
  step_id: string;
  step_number: number;
  step_type: string;
  status: string;
  outcome: string | null;
  visits: number;
  started_at: Date | null;
  completed_at: Date | null;
  error: string | null;
}

/** The enrolment's step records in step order. */
export async function stepRecords(db: Db, enrollmentId: string): Promise<StepRecord[]> {
  const { rows } = await db.query<StepRecord>(
    `select step_id, step_number, step_type, status, outcome, visits, started_at, completed_at, error
       from journey_enrollment_steps where enrollment_id = $1 order by started_at, step_number`,
    [enrollmentId],
  );
  return rows;
}

export async function enrollmentRow(db: Db, enrollmentId: string) {
  const { rows } = await db.query<{
    status: string; current_step_id: string | null; current_step_number: number | null; waiting_until: Date | null;
    completed_at: Date | null; exited_at: Date | null; exit_reason: string | null;
  }>('select status, current_step_id, current_step_number, waiting_until, completed_at, exited_at, exit_reason from journey_enrollments where id = $1', [enrollmentId]);
  return rows[0]!;
}

export async function journeyTotals(db: Db, journeyId: string) {
  const { rows } = await db.query<{ total_enrolled: number; total_completed: number; total_exited: number }>(
    'select total_enrolled, total_completed, total_exited from journeys where id = $1', [journeyId],
  );
  return rows[0]!;
}
