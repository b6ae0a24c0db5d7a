import DataLoader from 'dataloader';
import type { ServiceContext } from '../../domain/context.js';
import { segmentMemberCounts, segmentMemberPages } from '../../domain/customers/customers.js';
import { notesOfCustomers } from '../../domain/customers/notes.js';
import { clubsByIds, enrollmentsOfCustomers, segmentsByIds, segmentsOfCustomers } from '../../domain/customers/relations.js';
import { activityCounts, timelinePages } from '../../domain/customers/timeline.js';
import { stepsOfJourneys } from '../../domain/journeys/journeys.js';
import type { PageArgs } from '../../domain/pagination.js';
import { connectionsByIds } from '../../domain/social/posts.js';

type Batch<V> = (ctx: ServiceContext, ids: readonly string[]) => Promise<Map<string, V>>;
type PagedBatch<V> = (ctx: ServiceContext, ids: readonly string[], args: PageArgs) => Promise<Map<string, V>>;

export interface PageKey {
  id: string;
  args: PageArgs;
}

const byId = <V>(ctx: ServiceContext, load: Batch<V>) => new DataLoader<string, V>(async (ids) => {
  const found = await load(ctx, ids);
  return ids.map((id) => found.get(id)!);
});

// Keys with the same paging arguments share a statement; a bad argument fails only its own keys.
const paged = <V>(ctx: ServiceContext, load: PagedBatch<V>) => new DataLoader<PageKey, V, string>(async (keys) => {
  const groups = new Map<string, PageKey[]>();
  for (const key of keys) {
    const args = JSON.stringify(key.args);
    groups.set(args, [...(groups.get(args) ?? []), key]);
  }
  const results = new Map<PageKey, V | Error>();
  await Promise.all([...groups.values()].map(async (group) => {
    try {
      const found = await load(ctx, [...new Set(group.map((k) => k.id))], group[0]!.args);
      for (const key of group) results.set(key, found.get(key.id)!);
    } catch (err) {
      for (const key of group) results.set(key, err as Error);
    }
  }));
  return keys.map((key) => results.get(key)!);
}, { cacheKeyFn: (key) => JSON.stringify([key.id, key.args]) });

/**
 * One set per request: a relationship field of every object on a page waits for the same tick and
 * is fetched in one statement, so the number of statements depends on the query's shape, not on
 * its page sizes. Lists without paging arguments stop at `listSize` items a parent, the length the
 * cost analysis assumes (GRAPHQL_LIST_SIZE). Each loader is made when a resolver first asks for
 * it: most operations use none, and making all eleven was a tenth of a customer page's garbage.
 */
export class Loaders {
  private readonly made = new Map<string, DataLoader<never, unknown, unknown>>();

  constructor(private readonly ctx: ServiceContext, private readonly listSize: number) {}

  private loader<L extends DataLoader<never, unknown, unknown>>(name: string, make: () => L): L {
    let loader = this.made.get(name) as L | undefined;
    if (!loader) this.made.set(name, (loader = make()));
    return loader;
  }

  get club() { return this.loader('club', () => byId(this.ctx, clubsByIds)); }
  get notes() { return this.loader('notes', () => byId(this.ctx, (c, ids) => notesOfCustomers(c, ids, this.listSize))); }
  get segment() { return this.loader('segment', () => byId(this.ctx, segmentsByIds)); }
  get segments() { return this.loader('segments', () => byId(this.ctx, (c, ids) => segmentsOfCustomers(c, ids, this.listSize))); }
  get enrollments() { return this.loader('enrollments', () => byId(this.ctx, (c, ids) => enrollmentsOfCustomers(c, ids, this.listSize))); }
  get activities() { return this.loader('activities', () => paged(this.ctx, timelinePages)); }
  get activityCount() { return this.loader('activityCount', () => byId(this.ctx, activityCounts)); }
  get members() { return this.loader('members', () => paged(this.ctx, segmentMemberPages)); }
  get memberCount() { return this.loader('memberCount', () => byId(this.ctx, segmentMemberCounts)); }
  get journeySteps() { return this.loader('journeySteps', () => byId(this.ctx, (c, ids) => stepsOfJourneys(c.em, c.tenantId, ids))); }
  get socialConnection() { return this.loader('socialConnection', () => byId(this.ctx, connectionsByIds)); }

  /** After a mutation: what was loaded before it may have changed. */
  forget(): void {
    for (const loader of this.made.values()) loader.clearAll();
  }
}
