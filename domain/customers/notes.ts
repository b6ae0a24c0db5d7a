import { v7 as uuidv7 } from 'uuid';
import { Note } from '../../db/entities/index.js';
import type { NoteType } from '../../db/entities/enums.js';
import { notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { validate } from '../validate.js';
import { getCustomer, getLiveCustomer, isUuid, stripUndefined } from './customers.js';
import { noteInput, noteUpdate } from './schemas.js';

/** Pinned notes first, then newest first. */
export async function customerNotes(ctx: ServiceContext, customerId: string, type?: NoteType | null): Promise<Note[]> {
  const customer = await getCustomer(ctx, customerId);
  return ctx.em.find(
    Note,
    { tenantId: ctx.tenantId, customer: customer.id, ...(type && { type }) },
    { orderBy: [{ isPinned: 'desc' }, { createdAt: 'desc' }, { id: 'desc' }] },
  );
}

/** Notes of each of `customerIds` (the tenant's, already loaded), in the order above: one statement. */
export async function notesOfCustomers(ctx: ServiceContext, customerIds: readonly string[]): Promise<Map<string, Note[]>> {
  const notes = await ctx.em.find(
    Note,
    { tenantId: ctx.tenantId, customer: { $in: [...customerIds] } },
    { orderBy: [{ isPinned: 'desc' }, { createdAt: 'desc' }, { id: 'desc' }] },
  );
  const byCustomer = new Map<string, Note[]>(customerIds.map((id) => [id, []]));
  for (const note of notes) byCustomer.get(customerIdOf(note))?.push(note);
  return byCustomer;
}

const customerIdOf = (n: Note) => (typeof n.customer === 'object' ? n.customer.id : String(n.customer));

export async function addNote(ctx: ServiceContext, customerId: string, input: unknown): Promise<Note> {
  const data = validate(noteInput, input, 'input');
  const customer = await getLiveCustomer(ctx, customerId);
  const note = ctx.em.create(Note, {
    id: uuidv7(),
    tenantId: ctx.tenantId,
    customer: customer.id,
    ...data,
    createdBy: ctx.principal.sub,
    createdByName: ctx.principal.name ?? null,
  } as never);
  await ctx.em.flush();
  return note;
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
