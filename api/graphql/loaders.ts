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

/**
 * One set per request: a relationship field of every object on a page waits for the same tick and
 * is fetched in one statement, so the number of statements depends on the query's shape, not on
 * its page sizes. Lists without paging arguments stop at `listSize` items a parent, the length the
 * cost analysis assumes (GRAPHQL_LIST_SIZE).
 */
export function createLoaders(ctx: ServiceContext, listSize: number) {
  const byId = <V>(load: Batch<V>) => new DataLoader<string, V>(async (ids) => {
    const found = await load(ctx, ids);
    return ids.map((id) => found.get(id)!);
  });
  // Keys with the same paging arguments share a statement; a bad argument fails only its own keys.
  const paged = <V>(load: PagedBatch<V>) => new DataLoader<PageKey, V, string>(async (keys) => {
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

  return {
    club: byId(clubsByIds),
    notes: byId((c, ids) => notesOfCustomers(c, ids, listSize)),
    segment: byId(segmentsByIds),
    segments: byId((c, ids) => segmentsOfCustomers(c, ids, listSize)),
    enrollments: byId((c, ids) => enrollmentsOfCustomers(c, ids, listSize)),
    activities: paged(timelinePages),
    activityCount: byId(activityCounts),
    members: paged(segmentMemberPages),
    memberCount: byId(segmentMemberCounts),
    journeySteps: byId((c, ids) => stepsOfJourneys(c.em, c.tenantId, ids)),
    socialConnection: byId(connectionsByIds),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;

export function forgetLoaded(loaders: Loaders): void {
  for (const loader of Object.values(loaders)) loader.clearAll();
}
