import type { EntityManager } from '@mikro-orm/postgresql';
import { Customer } from '../../db/entities/index.js';
import { executeBound, LIVE_CUSTOMER, pgArray, sizedStatement, TENANT, tenantKey } from '../../db/sql.js';
import { AppError, asAppError } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { afterCustomersChanged } from '../reactions.js';
import { validate } from '../validate.js';
import { DEAD_STATUSES, insertCustomer } from './customers.js';
import { IDENTIFIER_COLUMN, IDENTIFIER_WEIGHT, type Identifier } from './identifiers.js';
import { identifiersInput, type Identifiers } from './schemas.js';
import { appendActivities } from './timeline.js';

export interface Resolution {
  profile: Customer;
  resolution: { isNew: boolean; matchedBy: Identifier[]; confidence: number };
}

const ORDER: Identifier[] = ['authUserId', 'email', 'phone'];
const weight = (ids: Identifier[]) => ids.reduce((sum, id) => sum + IDENTIFIER_WEIGHT[id], 0);

/**
 * Finds the one live profile for the given identifiers, or creates it.
 *
 * - Candidates are the tenant's live profiles that share any identifier. The best one matches the
 *   most identifier weight (authUserId 3, email 2, phone 1); ties go to the oldest profile.
 * - `matchedBy` lists the identifiers the returned profile holds exactly.
 * - confidence = 100 × weight(matchedBy) / weight(all identifiers given): how much of what the
 *   caller knows the profile confirms. A profile created from the identifiers scores 100.
 * - Identifiers the profile lacks, and that no other profile owns, are added to it, but only on a
 *   match by authUserId or email: a phone alone is sometimes shared and does not vouch for them.
 * - An identifier that points elsewhere (owned by another profile, or the profile holds a
 *   different value) is a conflict: no silent guess; the best match is returned and an
 *   `identity.conflict` activity is recorded on its timeline.
 * - `write: false` (a crm:read caller) only looks: nothing is created, added or recorded.
 *
 * Concurrent resolutions of the same identifier serialise on a transaction-scoped advisory lock
 * per identifier, so they create one profile, not two.
 */
export async function resolveCustomer(ctx: ServiceContext, input: unknown, opts: { write: boolean }): Promise<Resolution | null> {
  const ids = validate(identifiersInput(ctx.config.DEFAULT_PHONE_REGION), input);
  return resolveInTransaction(ctx.em, ctx.tenantId, ids, opts.write);
}

/**
 * One resolution in its own transaction. A profile created for the same identifier by another
 * writer that takes no resolution lock (createCustomer, an import) between our look and our insert
 * makes the insert fail; looking again then finds it.
 */
export async function resolveInTransaction(em: EntityManager, tenantId: string, ids: Identifiers, write: boolean): Promise<Resolution | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await em.fork().transactional((tx) => resolveIn(tx, tenantId, ids, write));
    } catch (err) {
      if (attempt >= 3 || asAppError(err)?.code !== 'CONFLICT') throw err;
    }
  }
}

/**
 * For each set of identifiers, in one statement: the live profile that holds every one of them
 * when no other live profile holds any, else null. That is exactly what `resolveIn` finds without
 * writing anything (no profile to create, no identifier to add, no conflict to record), so a
 * caller may take it instead of a resolution; the nulls still need one.
 */
export const EXACT_PROFILES = sizedStatement(
  `select k.ord, c.id, c.email, c.phone_number, c.auth_user_id
     from unnest(?::text[], ?::text[], ?::text[]) with ordinality as k(email, phone, auth_user_id, ord)
     cross join lateral (
       select c.id, c.email, c.phone_number, c.auth_user_id from customers c where c.tenant_id = ${TENANT} and ${LIVE_CUSTOMER} and c.email = k.email
       union select c.id, c.email, c.phone_number, c.auth_user_id from customers c where c.tenant_id = ${TENANT} and ${LIVE_CUSTOMER} and c.phone_number = k.phone
       union select c.id, c.email, c.phone_number, c.auth_user_id from customers c where c.tenant_id = ${TENANT} and ${LIVE_CUSTOMER} and c.auth_user_id = k.auth_user_id
     ) c`,
);

export async function exactProfiles(em: EntityManager, tenantId: string, identities: Identifiers[]): Promise<(string | null)[]> {
  if (!identities.length) return [];
  const column = (k: Identifier) => identities.map((ids) => ids[k] || null);
  const rows = await executeBound<{ ord: string; id: string; email: string | null; phone_number: string | null; auth_user_id: string | null }>(
    em,
    EXACT_PROFILES(identities.length),
    [pgArray(column('email')), pgArray(column('phone')), pgArray(column('authUserId')), tenantId, tenantId, tenantId],
  );
  const candidates = new Map<number, typeof rows>();
  for (const row of rows) {
    const i = Number(row.ord) - 1;
    candidates.set(i, [...(candidates.get(i) ?? []), row]);
  }
  return identities.map((ids, i) => {
    const found = candidates.get(i);
    if (found?.length !== 1) return null;
    const [c] = found as [(typeof rows)[number]];
    const holds = { email: c.email, phone: c.phone_number, authUserId: c.auth_user_id };
    return ORDER.every((k) => !ids[k] || holds[k] === ids[k]) ? c.id : null;
  });
}

export async function resolveIn(em: EntityManager, tenantId: string, ids: Identifiers, write: boolean): Promise<Resolution | null> {
  const given = ORDER.filter((k) => ids[k]);
  if (write) {
    for (const key of given.map((k) => `${tenantId}|${k}|${ids[k]}`).sort()) {
      await em.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [key]);
    }
  }
  const candidates = await em.find(
    Customer,
    { tenantId: tenantKey(tenantId), status: { $nin: [...DEAD_STATUSES] }, $or: given.map((k) => ({ [IDENTIFIER_COLUMN[k]]: ids[k] })) },
    { orderBy: { id: 'asc' } },
  );

  if (!candidates.length) {
    if (!write) return null;
    const profile = await insertCustomer(em, tenantId, { email: ids.email, phoneNumber: ids.phone, authUserId: ids.authUserId });
    return { profile, resolution: { isNew: true, matchedBy: [], confidence: 100 } };
  }

  const matches = (c: Customer) => given.filter((k) => c[IDENTIFIER_COLUMN[k]] === ids[k]);
  const best = candidates.reduce((a, b) => (weight(matches(b)) > weight(matches(a)) ? b : a));
  const matchedBy = matches(best);
  const others = candidates.filter((c) => c !== best);
  const conflicting = given.filter(
    (k) => !matchedBy.includes(k) && (best[IDENTIFIER_COLUMN[k]] != null || others.some((o) => o[IDENTIFIER_COLUMN[k]] === ids[k])),
  );
  const confidence = Math.round((100 * weight(matchedBy)) / weight(given));
  if (!write) return { profile: best, resolution: { isNew: false, matchedBy, confidence } };

  if (weight(matchedBy) >= IDENTIFIER_WEIGHT.email) {
    const missing = given.filter((k) => !matchedBy.includes(k) && !conflicting.includes(k));
    if (missing.length) {
      // Read without a lock: a merge (or a deletion) that committed since would have them added
      // to a dead profile. Under the row lock it is live, or the resolution starts over and finds
      // the profile the merge kept.
      const [row] = await em.execute<{ status: string }[]>(`select status from customers where tenant_id = ${TENANT} and id = ? for update`, [tenantId, best.id]);
      if (!row || DEAD_STATUSES.includes(row.status as never)) throw new AppError('CONFLICT', `customer ${best.id} was merged or deleted meanwhile; resolve again`);
      for (const k of missing) (best as Record<string, unknown>)[IDENTIFIER_COLUMN[k]] = ids[k];
      await em.flush();
      await afterCustomersChanged(em, tenantId, [best.id], 'updated');
    }
  }
  if (conflicting.length) {
    await appendActivities(em, tenantId, [{
      customerId: best.id,
      type: 'identity.conflict',
      category: 'SYSTEM',
      title: `Identity conflict on ${conflicting.join(', ')}`,
      description: 'Resolution matched this profile, but some identifiers point elsewhere; review and merge if they are the same person.',
      occurredAt: new Date(),
      metadata: {
        given: Object.fromEntries(given.map((k) => [k, ids[k]])),
        matchedBy,
        conflicting,
        otherCustomerIds: others.map((o) => o.id),
      },
    }]);
  }
  return { profile: best, resolution: { isNew: false, matchedBy, confidence } };
}
