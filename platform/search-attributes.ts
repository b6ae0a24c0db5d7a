import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

// Custom search attributes every platform workflow sets, so ops can filter runs in the Web UI
// (e.g. `TenantId = "tenant_123" AND CampaignId = "..."`). The dev server registers them at start;
// a production cluster needs `temporal operator search-attribute create` once (see README).
export const TenantId = defineSearchAttributeKey('TenantId', SearchAttributeType.KEYWORD);
export const CustomerId = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const SegmentId = defineSearchAttributeKey('SegmentId', SearchAttributeType.KEYWORD);
export const CampaignId = defineSearchAttributeKey('CampaignId', SearchAttributeType.KEYWORD);
export const JourneyId = defineSearchAttributeKey('JourneyId', SearchAttributeType.KEYWORD);

export const searchAttributes = [TenantId, CustomerId, SegmentId, CampaignId, JourneyId];
