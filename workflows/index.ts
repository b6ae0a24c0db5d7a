// The workflows the worker registers, one file each; this file is the worker's `workflowsPath`,
// bundled deterministically by the SDK.
export { campaignWorkflow, recurringCampaignWorkflow } from './campaign.js';
export { customerScoringWorkflow, scoreAllTenantsWorkflow } from './customer-scoring.js';
export { scheduledSegmentRefreshWorkflow, segmentRefreshWorkflow } from './segment-refresh.js';
export { segmentSyncWorkflow } from './segment-sync.js';
export { segmentCountFoldWorkflow } from './segment-count-fold.js';
export { journeyEnrollmentWorkflow } from './journey.js';
export { socialTokenRefreshWorkflow } from './social-token-refresh.js';
export { socialPostWorkflow } from './social-post.js';
export { socialMetricsWorkflow } from './social-metrics.js';
export { eventPromotionWorkflow } from './event-promotion.js';
export { analyticsFoldWorkflow } from './analytics-fold.js';
