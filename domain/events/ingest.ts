import { z } from 'zod';
import { ACTIVITY_TYPE_PATTERN, ActivityCategory } from '../../db/entities/enums.js';
import { executeBound, pgArray, sizedStatement, TENANT } from '../../db/sql.js';
import { AppError, asAppError, fromZod } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { deadState, getCustomer, isLive } from '../customers/customers.js';
import { emailField, phoneField } from '../customers/identifiers.js';
import { exactProfiles, resolveInTransaction } from '../customers/resolve.js';
import { appendActivities, type NewActivity } from '../customers/timeline.js';
import { afterPromotionSourcesChanged } from '../reactions.js';
import { isSourceEvent, recordSourceEvents, sourceEventKind, sourceMetadata, type SourceEvent } from '../promotions/sources.js';
import { dateRangeMessage, inDateRange, schemaPer } from '../validate.js';

export const MAX_BATCH = 1000;

// Too deep for JSON.stringify (a RangeError) is too large to store.
const jsonBytes = (value: unknown) => {
  try {
    return Buffer.byteLength(JSON.stringify(value));
  } catch {
    return Infinity;
  }
};

/** The fields of an upstream event (documented as such); `upstreamEvent` adds the rules across them. */
export const upstreamEventFields = (region: string, maxMetadataBytes: number) =>
  z.object({
    type: z.string().regex(ACTIVITY_TYPE_PATTERN, 'lower-case words joined by ".", "_" or "-"').max(200),
    occurredAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)).refine(inDateRange, dateRangeMessage),
    // Required, except on the events of promotion sources, which are about a club (below).
    customer: z
      .object({ id: z.string().optional(), email: emailField.optional(), phone: phoneField(region).optional(), authUserId: z.string().trim().min(1).max(100).optional() })
      .refine((c) => c.id || c.email || c.phone || c.authUserId, { message: 'give one of id, email, phone, authUserId' })
      .optional(),
    category: z.enum(ActivityCategory),
    title: z.string().trim().min(1).max(500),
    description: z.string().max(10_000).nullish(),
    metadata: z
      .record(z.string(), z.unknown())
      .refine((m) => jsonBytes(m) <= maxMetadataBytes, { message: `at most ${maxMetadataBytes} bytes of JSON` })
      .nullish(),
    sourceService: z.string().trim().min(1).max(100),
    sourceEventId: z.string().trim().min(1).max(200),
    // Upstream systems may only append to known profiles by setting this to false.
    createCustomer: z.boolean().default(true),
  });

export const upstreamEvent = schemaPer((region: string, maxMetadataBytes: number) =>
  upstreamEventFields(region, maxMetadataBytes).superRefine((event, issues) => {
    if (!isSourceEvent(event.type)) {
      if (!event.customer) issues.addIssue({ code: 'custom', path: ['customer'], message: 'required: give one of id, email, phone, authUserId' });
      return;
    }
    if (event.customer) {
      issues.addIssue({ code: 'custom', path: ['customer'], message: `a ${event.type} event describes a club's event, not a customer: leave customer out` });
    }
    const metadata = sourceMetadata.safeParse(event.metadata ?? {});
    if (!metadata.success) {
      for (const issue of metadata.error.issues) issues.addIssue({ ...issue, code: 'custom', path: ['metadata', ...issue.path] } as never);
      return;
    }
    const { sourceType } = sourceEventKind(event.type);
    if (metadata.data.sourceType && metadata.data.sourceType !== sourceType) {
      issues.addIssue({ code: 'custom', path: ['metadata', 'sourceType'], message: `a ${event.type} event is about a ${sourceType}` });
    }
  }));

type UpstreamEvent = z.output<ReturnType<typeof upstreamEventFields>>;

export interface EventResult {
  index: number;
  /** `superseded`: an event of a promotion source older than the one the platform holds. */
  status: 'created' | 'duplicate' | 'rejected' | 'superseded';
  activityId?: string;
  customerId?: string;
  error?: { code: string; message: string; field?: string };
}

const MAX_MERGE_HOPS = 10;

// The tenant as TENANT: planned for the value of a club sending its history, the index on
// (tenant_id, category) won a tie with the unique key, and each batch of 1,000 walked the club's
// timeline once per event (424-845 ms at 40,000 activities).
export const STORED_EVENTS = sizedStatement(
  `select k.service as source_service, k.event_id as source_event_id, a.customer_id
     from unnest(?::text[], ?::text[]) as k(service, event_id)
     cross join lateral (select a.customer_id from activities a
                          where a.tenant_id = ${TENANT} and a.source_service = k.service and a.source_event_id = k.event_id limit 1) a`,
);

/** The live profile an event belongs to: by id (following merges), or by identity resolution. */
async function customerFor(ctx: ServiceContext, event: UpstreamEvent): Promise<string> {
  const { id, email, phone, authUserId } = event.customer!;
  if (id) {
    let customer = await getCustomer(ctx, id);
    for (let hop = 0; customer.status === 'MERGED' && customer.mergedIntoId && hop < MAX_MERGE_HOPS; hop++) {
      customer = await getCustomer(ctx, customer.mergedIntoId);
    }
    if (!isLive(customer)) throw new AppError('INVALID_STATE', `customer ${id} ${deadState(customer)}`, { field: 'customer.id' });
    return customer.id;
  }
  const resolved = await resolveInTransaction(ctx.em, ctx.tenantId, { email, phone, authUserId }, event.createCustomer);
  if (!resolved) throw new AppError('RESOURCE_NOT_FOUND', 'no customer has these identifiers and createCustomer is false', { field: 'customer' });
  return resolved.profile.id;
}

/**
 * Stores upstream events on their customers' timelines. Idempotent on (sourceService,
 * sourceEventId): a re-sent event is acknowledged as `duplicate` and not stored twice. Items are
 * judged one by one; the valid ones of a batch are kept whatever the others hold. Stored
 * activities hand off to `afterActivitiesAppended` (domain/reactions.ts). Events of promotion
 * sources (`competition.*`, `club_event.*`, `special_event.*`) carry no customer: they update the
 * source's state (domain/promotions/sources.ts) in the same transaction, and hand off to
 * `afterPromotionSourcesChanged`.
 */
export async function ingestEvents(ctx: ServiceContext, items: unknown[]): Promise<EventResult[]> {
  if (items.length > MAX_BATCH) {
    throw new AppError('VALIDATION_ERROR', `body: at most ${MAX_BATCH} events per request, got ${items.length}`, { field: 'body' });
  }
  const schema = upstreamEvent(ctx.config.DEFAULT_PHONE_REGION, ctx.config.MAX_EVENT_METADATA_BYTES);
  const results: EventResult[] = [];
  const pending: { index: number; activity: NewActivity }[] = [];
  const sources: { index: number; event: SourceEvent }[] = [];
  const resolvedBy = new Map<string, Promise<string>>();
  const firsts = new Map<string, number>();
  const repeats: { index: number; of: number }[] = [];

  const parsedItems = items.map((item) => schema.safeParse(item));
  // Known events are acknowledged before anything else: a re-sent event never resolves (or
  // creates) a profile again.
  const valid = parsedItems.flatMap((p) => (p.success ? [p.data] : []));
  // One key lookup per event, whatever the statistics: joined, a fast-growing tenant whose
  // activities the planner still took for a few dozen was hashed whole (50,000 rows read per batch).
  const stored = await executeBound<{ source_service: string; source_event_id: string; customer_id: string }>(
    ctx.em,
    STORED_EVENTS(valid.length),
    [pgArray(valid.map((e) => e.sourceService)), pgArray(valid.map((e) => e.sourceEventId)), ctx.tenantId],
  );
  const known = new Map(stored.map((r) => [`${r.source_service}\u0000${r.source_event_id}`, r.customer_id]));

  // Events naming profiles that already hold all their identifiers take them from one statement;
  // the others resolve one identity at a time (creating, completing or flagging profiles).
  const identityKey = (event: UpstreamEvent) => JSON.stringify(event.customer) + event.createCustomer;
  const toResolve = new Map<string, UpstreamEvent>();
  for (const event of valid) {
    if (event.customer && !event.customer.id && !isSourceEvent(event.type) && !known.has(`${event.sourceService}\u0000${event.sourceEventId}`)) {
      toResolve.set(identityKey(event), event);
    }
  }
  const exact = await exactProfiles(ctx.em, ctx.tenantId, [...toResolve.values()].map((e) => e.customer!));
  [...toResolve.keys()].forEach((key, i) => {
    if (exact[i]) resolvedBy.set(key, Promise.resolve(exact[i]));
  });

  for (const [index, parsed] of parsedItems.entries()) {
    if (!parsed.success) {
      const err = fromZod(parsed.error);
      results[index] = { index, status: 'rejected', error: { code: err.code, message: err.message, field: err.details?.field as string } };
      continue;
    }
    const event = parsed.data;
    if (isSourceEvent(event.type)) {
      sources.push({ index, event: { ...event, metadata: sourceMetadata.parse(event.metadata) } });
      continue;
    }
    const eventKey = `${event.sourceService}\u0000${event.sourceEventId}`;
    const storedFor = known.get(eventKey);
    if (storedFor) {
      results[index] = { index, status: 'duplicate', customerId: storedFor };
      continue;
    }
    // The same event again in this batch: answered as the first is, without resolving (or
    // creating) the profile it names.
    const first = firsts.get(eventKey);
    if (first !== undefined) {
      repeats.push({ index, of: first });
      continue;
    }
    firsts.set(eventKey, index);
    try {
      // One resolution per distinct identity in the batch.
      const key = identityKey(event);
      if (!resolvedBy.has(key)) resolvedBy.set(key, customerFor(ctx, event));
      const customerId = await resolvedBy.get(key)!;
      pending.push({
        index,
        activity: {
          customerId, type: event.type, category: event.category, title: event.title, description: event.description,
          occurredAt: event.occurredAt, metadata: event.metadata, sourceService: event.sourceService, sourceEventId: event.sourceEventId,
        },
      });
    } catch (thrown) {
      const err = asAppError(thrown);
      if (!err) throw thrown;
      results[index] = { index, status: 'rejected', error: { code: err.code, message: err.message, field: err.details?.field as string } };
    }
  }

  const { appended, outcomes } = await ctx.em.transactional(async (em) => {
    const recorded = await recordSourceEvents(em, ctx.tenantId, sources.map((s) => s.event));
    await afterPromotionSourcesChanged(em, ctx.tenantId, recorded.changed);
    return { appended: await appendActivities(em, ctx.tenantId, pending.map((p) => p.activity)), outcomes: recorded.outcomes };
  });
  sources.forEach(({ index }, i) => (results[index] = { index, status: outcomes[i]! }));
  // An event another request stored meanwhile belongs to the profile that request gave it.
  const duplicates = pending.filter((_, i) => appended[i] === 'duplicate').map((p) => p.activity);
  const storedMeanwhile = duplicates.length
    ? await executeBound<{ source_service: string; source_event_id: string; customer_id: string }>(ctx.em, STORED_EVENTS(duplicates.length), [
        pgArray(duplicates.map((a) => a.sourceService)), pgArray(duplicates.map((a) => a.sourceEventId)), ctx.tenantId,
      ])
    : [];
  const ownerOf = new Map(storedMeanwhile.map((r) => [`${r.source_service}\u0000${r.source_event_id}`, r.customer_id]));
  pending.forEach(({ index, activity }, i) => {
    const outcome = appended[i]!;
    if (outcome === 'gone') {
      results[index] = { index, status: 'rejected', error: { code: 'INVALID_STATE', message: `customer ${activity.customerId} is DELETED`, field: 'customer' } };
    } else if (outcome === 'duplicate') {
      results[index] = { index, status: 'duplicate', customerId: ownerOf.get(`${activity.sourceService}\u0000${activity.sourceEventId}`) ?? activity.customerId };
    } else {
      results[index] = { index, status: 'created', activityId: outcome.id, customerId: outcome.customerId };
    }
  });
  for (const { index, of } of repeats) {
    const first = results[of]!;
    results[index] = first.status === 'rejected' ? { ...first, index } : { index, status: 'duplicate', customerId: first.customerId };
  }
  return results;
}
