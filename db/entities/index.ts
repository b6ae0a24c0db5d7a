import { AnalyticsActivityHours, AnalyticsCustomerTotals, AnalyticsDeliveryHours } from './analytics.js';
import { Campaign, CampaignDelivery, CampaignInteraction, MessageTemplate, ReactionOutbox } from './campaign.js';
import { Club } from './club.js';
import { Activity, Customer, Note } from './customer.js';
import { Journey, JourneyEnrollment, JourneyEnrollmentStep, JourneyStep, JourneyVersion } from './journey.js';
import { EventPromotion, PromotionSend, PromotionSource } from './promotion.js';
import { RateLimitCounter } from './rate-limit.js';
import { Segment, SegmentMember, SegmentMemberCountDelta, SegmentMembershipChange, SegmentReevaluation, SegmentSyncedMember } from './segment.js';
import { SocialConnection, SocialOAuthState, SocialPost } from './social.js';

export * from './analytics.js';
export * from './campaign.js';
export * from './club.js';
export * from './customer.js';
export * from './journey.js';
export * from './promotion.js';
export * from './rate-limit.js';
export * from './segment.js';
export * from './social.js';

export const entities = [
  Club, Customer, Activity, Note,
  Segment, SegmentMember, SegmentMembershipChange, SegmentMemberCountDelta, SegmentReevaluation, SegmentSyncedMember,
  MessageTemplate, Campaign, CampaignDelivery, CampaignInteraction, ReactionOutbox,
  Journey, JourneyStep, JourneyVersion, JourneyEnrollment, JourneyEnrollmentStep,
  SocialConnection, SocialOAuthState, SocialPost, EventPromotion, PromotionSource, PromotionSend,
  RateLimitCounter,
  AnalyticsCustomerTotals, AnalyticsActivityHours, AnalyticsDeliveryHours,
];
