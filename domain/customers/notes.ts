import { v7 as uuidv7 } from 'uuid';
import { pgArray } from '../../db/sql.js';
import { Note } from '../../db/entities/index.js';
import type { NoteType } from '../../db/entities/enums.js';
import { notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { validate } from '../validate.js';
import { getCustomer, getLiveCustomer, isUuid, lockLiveCustomer, stripUndefined } from './customers.js';
import { noteInput, noteUpdate } from './schemas.js';

/** Pinned notes first, then newest first: `limit` of them from `offset`. */
export async function customerNotes(ctx: ServiceContext, customerId: string, type: NoteType | null | undefined, limit: number, offset = 0): Promise<Note[]> {
  return (await customerNotesPage(ctx, customerId, type, offset, limit, false)).rows;
}

/** A page of a customer's notes in the order above, with the total when `counted`. */
export async function customerNotesPage(ctx: ServiceContext, customerId: string, type: NoteType | null | undefined, skip: number, take: number, counted = true) {
  const customer = await getCustomer(ctx, customerId);
  const where = { tenantId: ctx.tenantId, customer: customer.id, ...(type && { type }) };
  const rows = await ctx.em.find(Note, where, { orderBy: [{ isPinned: 'desc' }, { createdAt: 'desc' }, { id: 'desc' }], limit: take, offset: skip });
  return { rows, total: counted ? await ctx.em.count(Note, where) : rows.length };
}

/**
 * The first `limit` notes of each of `customerIds` (the tenant's, already loaded), in the order
 * above: one statement, never more than `limit` rows a customer.
 */
export async function notesOfCustomers(ctx: ServiceContext, customerIds: readonly string[], limit: number): Promise<Map<string, Note[]>> {
  const rows = await ctx.em.execute<({ owner__id: string } & Record<string, unknown>)[]>(
    `select c.id as owner__id, t.* from unnest(?::uuid[]) with ordinality as c(id, i)
       cross join lateral (
         select n.* from notes n where n.tenant_id = ? and n.customer_id = c.id
          order by n.is_pinned desc, n.created_at desc, n.id desc limit ?
       ) t
      order by c.i, t.is_pinned desc, t.created_at desc, t.id desc`,
    [pgArray([...customerIds]), ctx.tenantId, limit],
  );
  const byCustomer = new Map<string, Note[]>(customerIds.map((id) => [id, []]));
  for (const { owner__id, ...row } of rows) byCustomer.get(owner__id)!.push(ctx.em.map(Note, row as never));
  return byCustomer;
}

const customerIdOf = (n: Note) => (typeof n.customer === 'object' ? n.customer.id : String(n.customer));

export async function addNote(ctx: ServiceContext, customerId: string, input: unknown): Promise<Note> {
  const data = validate(noteInput, input, 'input');
  return ctx.em.transactional(async (em) => {
    const customer = await lockLiveCustomer(em, ctx.tenantId, customerId);
    const note = em.create(Note, {
      id: uuidv7(),
      tenantId: ctx.tenantId,
      customer: customer.id,
      ...data,
      createdBy: ctx.principal.sub,
      createdByName: ctx.principal.name ?? null,
    } as never);
    await em.flush();
    return note;
  });
}

async function getNote(ctx: ServiceContext, id: string): Promise<Note> {
  const note = isUuid(id) ? await ctx.em.findOne(Note, { id, tenantId: ctx.tenantId }) : null;
  if (!note) throw notFound('note', id);
  return note;
}

export async function updateNote(ctx: ServiceContext, id: string, input: unknown): Promise<Note> {
  const data = validate(noteUpdate, input, 'input');
  const note = await getNote(ctx, id);
  ctx.em.assign(note, stripUndefined(data) as never);
  await ctx.em.flush();
  return note;
}

export async function deleteNote(ctx: ServiceContext, id: string): Promise<boolean> {
  const note = await getNote(ctx, id);
  await ctx.em.remove(note).flush();
  return true;
}

export function noteView(n: Note) {
  return {
    id: n.id,
    customerId: customerIdOf(n),
    content: n.content,
    type: n.type,
    isPinned: n.isPinned,
    createdBy: n.createdBy,
    createdByName: n.createdByName ?? null,
    createdAt: n.createdAt,
    updatedAt: n.updatedAt,
  };
}
