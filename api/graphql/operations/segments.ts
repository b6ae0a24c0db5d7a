import {
  createSegment, deleteSegment, getSegment, listSegments, refreshSegment, segmentMembersConnection, syncSegmentToMessaging, updateSegment,
} from '../../../domain/segments/segments.js';
import { selects, type RootResolver } from '../resolvers.js';
import { nodeProperties } from './customers.js';

export const segmentOperations = {
  segments: ({ type }, ctx) => listSegments(ctx, type, ctx.listSize),
  segment: ({ id }, ctx) => getSegment(ctx, id),
  segmentMembers: ({ segmentId, pagination }, ctx, info) =>
    segmentMembersConnection(ctx, segmentId, pagination ?? {}, { countNow: selects(info, 'totalCount'), properties: nodeProperties(info) }),
  createSegment: ({ input }, ctx) => createSegment(ctx, { ...input }),
  updateSegment: ({ id, input }, ctx) => updateSegment(ctx, id, { ...input }),
  deleteSegment: ({ id }, ctx) => deleteSegment(ctx, id),
  refreshSegment: ({ id }, ctx) => refreshSegment(ctx, id),
  syncSegmentToMessaging: ({ id }, ctx) => syncSegmentToMessaging(ctx, id),
} satisfies Record<string, RootResolver>;
