// The enums of graphql-api.md. Stored as text with a check constraint, so adding a value
// later is a small migration rather than an ALTER TYPE.
export const CustomerStatus = ['ACTIVE', 'INACTIVE', 'MERGED', 'DELETED'] as const;
export const LifecycleStage = ['SUBSCRIBER', 'LEAD', 'CUSTOMER', 'MEMBER', 'ADVOCATE', 'CHURNED'] as const;
export const NoteType = ['GENERAL', 'SUPPORT', 'SALES', 'COMPLAINT'] as const;
export const SegmentType = ['STATIC', 'DYNAMIC', 'SMART'] as const;
export const CampaignType = ['ONE_TIME', 'RECURRING', 'TRIGGERED', 'JOURNEY'] as const;
export const CampaignStatus = ['DRAFT', 'SCHEDULED', 'ACTIVE', 'PAUSED', 'COMPLETED', 'CANCELLED'] as const;
export const JourneyStatus = ['DRAFT', 'ACTIVE', 'PAUSED', 'ARCHIVED'] as const;
export const JourneyStepType = ['TRIGGER', 'SEND', 'WAIT', 'CONDITION', 'SPLIT', 'UPDATE', 'END'] as const;
export const EnrollmentStatus = ['ACTIVE', 'COMPLETED', 'EXITED', 'FAILED'] as const;
export const StepStatus = ['PENDING', 'ACTIVE', 'COMPLETED', 'SKIPPED', 'FAILED'] as const;
export const SocialPlatform = ['FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK'] as const;
export const SocialPostStatus = ['DRAFT', 'SCHEDULED', 'PUBLISHING', 'PUBLISHED', 'FAILED'] as const;
export const Channel = ['EMAIL', 'SMS', 'PUSH', 'WHATSAPP', 'IN_APP', 'SOCIAL'] as const;
export const PromotionSourceType = ['COMPETITION', 'CLUB_EVENT', 'SPECIAL'] as const;
export const ActivityCategory = [
  'MEMBERSHIP', 'BOOKING', 'COMMUNICATION', 'ENGAGEMENT', 'FINANCIAL', 'GOLF', 'MARKETING', 'SOCIAL', 'SYSTEM',
] as const;
// An activity's `type`: the source system's event name, e.g. `booking.created`.
export const ACTIVITY_TYPE_PATTERN = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
// campaigns-api.md, "Get Campaign Interactions".
export const InteractionType = ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'CONVERTED', 'UNSUBSCRIBED', 'BOUNCED'] as const;
// PENDING: in the audience snapshot, not yet sent; SENDING: claimed by a send activity (its claim
// names the activity, so a retry after a crash finds it); SKIPPED: never sent (skipReason says why).
export const DeliveryStatus = ['PENDING', 'SENDING', 'SENT', 'DELIVERED', 'FAILED', 'BOUNCED', 'SKIPPED', 'CANCELLED'] as const;
// Why a recipient got no message on a channel.
export const SkipReason = ['NO_CONSENT', 'NO_ADDRESS', 'BOUNCED', 'INACTIVE', 'FREQUENCY_CAP', 'NO_TEMPLATE'] as const;

export type CustomerStatus = (typeof CustomerStatus)[number];
export type LifecycleStage = (typeof LifecycleStage)[number];
export type NoteType = (typeof NoteType)[number];
export type SegmentType = (typeof SegmentType)[number];
export type CampaignType = (typeof CampaignType)[number];
export type CampaignStatus = (typeof CampaignStatus)[number];
export type JourneyStatus = (typeof JourneyStatus)[number];
export type JourneyStepType = (typeof JourneyStepType)[number];
export type EnrollmentStatus = (typeof EnrollmentStatus)[number];
export type StepStatus = (typeof StepStatus)[number];
export type SocialPlatform = (typeof SocialPlatform)[number];
export type SocialPostStatus = (typeof SocialPostStatus)[number];
export type Channel = (typeof Channel)[number];
export type PromotionSourceType = (typeof PromotionSourceType)[number];
export type ActivityCategory = (typeof ActivityCategory)[number];
export type InteractionType = (typeof InteractionType)[number];
export type DeliveryStatus = (typeof DeliveryStatus)[number];
export type SkipReason = (typeof SkipReason)[number];
