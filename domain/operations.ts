import type { Scope } from '../platform/auth.js';

// The rate-limit classes of api-reference.md.
export type RateClass = 'read' | 'write' | 'campaign' | 'social' | 'bulk';

export interface Operation {
  scope: Scope;
  rate: RateClass;
  /**
   * Called by a service holding no token (a webhook): a signature over the request is its
   * credential, so neither scope nor tenant applies; `rate` is charged per address for bad ones.
   */
  signed?: true;
  /** Writes when the token holds this scope (and is then charged as a write, whatever `rate`). */
  writesWith?: Scope;
}

const read: Operation = { scope: 'crm:read', rate: 'read' };
const write = (scope: Scope): Operation => ({ scope, rate: 'write' });

// Every operation of the platform, by the name it has in the spec (GraphQL field names; REST-only
// operations are named alike). Access policy lives here and only here: REST routes and GraphQL
// resolvers both look their operation up before anything else runs.
export const OPERATIONS = {
  // Customers
  customer: read,
  customers: read,
  // Creates or completes the profile for a token that may write (crm:write).
  resolveCustomer: { ...read, writesWith: 'crm:write' },
  customerTimeline: read,
  customerNotes: read,
  createCustomer: write('crm:write'),
  updateCustomer: write('crm:write'),
  mergeCustomers: write('crm:admin'),
  addNote: write('crm:write'),
  updateNote: write('crm:write'),
  deleteNote: write('crm:write'),
  ingestEvents: write('crm:write'),
  importCustomers: { scope: 'crm:write', rate: 'bulk' },
  // Segments
  segments: read,
  segment: read,
  segmentMembers: read,
  createSegment: write('crm:admin'),
  updateSegment: write('crm:admin'),
  deleteSegment: write('crm:admin'),
  refreshSegment: write('crm:admin'),
  syncSegmentToMessaging: write('crm:admin'),
  // Campaigns
  campaigns: read,
  campaign: read,
  campaignStats: read,
  campaignInteractions: read,
  createCampaign: write('crm:campaigns'),
  updateCampaign: write('crm:campaigns'),
  scheduleCampaign: { scope: 'crm:campaigns', rate: 'campaign' },
  executeCampaign: { scope: 'crm:campaigns', rate: 'campaign' },
  pauseCampaign: { scope: 'crm:campaigns', rate: 'campaign' },
  resumeCampaign: { scope: 'crm:campaigns', rate: 'campaign' },
  cancelCampaign: { scope: 'crm:campaigns', rate: 'campaign' },
  // Message templates (REST only)
  templates: read,
  template: read,
  createTemplate: write('crm:campaigns'),
  updateTemplate: write('crm:campaigns'),
  deleteTemplate: write('crm:campaigns'),
  previewTemplate: write('crm:campaigns'),
  messagingWebhook: { scope: 'crm:campaigns', rate: 'write', signed: true },
  // Journeys
  journeys: read,
  journey: read,
  journeySteps: read,
  journeyStats: read,
  journeyEnrollments: read,
  createJourney: write('crm:campaigns'),
  updateJourney: write('crm:campaigns'),
  addJourneyStep: write('crm:campaigns'),
  updateJourneyStep: write('crm:campaigns'),
  deleteJourneyStep: write('crm:campaigns'),
  activateJourney: write('crm:campaigns'),
  pauseJourney: write('crm:campaigns'),
  archiveJourney: write('crm:campaigns'),
  enrollCustomerInJourney: write('crm:campaigns'),
  exitCustomerFromJourney: write('crm:campaigns'),
  // Social
  socialConnections: read,
  socialPosts: read,
  socialPost: read,
  initiateSocialConnection: write('crm:social'),
  completeSocialConnection: write('crm:social'),
  disconnectSocial: write('crm:social'),
  createSocialPost: write('crm:social'),
  updateSocialPost: write('crm:social'),
  scheduleSocialPost: { scope: 'crm:social', rate: 'social' },
  publishSocialPost: { scope: 'crm:social', rate: 'social' },
  // Promotions
  eventPromotions: read,
  eventPromotion: read,
  createEventPromotion: write('crm:campaigns'),
  updateEventPromotion: write('crm:campaigns'),
  executeEventPromotion: { scope: 'crm:campaigns', rate: 'campaign' },
  // Analytics
  engagementAnalytics: read,
  campaignAnalytics: read,
  journeyAnalytics: read,
  socialAnalytics: read,
} as const satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

export function isSigned(name: OperationName): boolean {
  return (OPERATIONS[name] as Operation).signed === true;
}

export function isOperation(name: string): name is OperationName {
  return Object.hasOwn(OPERATIONS, name);
}

/** The rate class a call is charged in: its operation's, or `write` where this token makes it write. */
export function rateClassOf(name: OperationName, scopes: ReadonlySet<string>): RateClass {
  const operation: Operation = OPERATIONS[name];
  return operation.writesWith && scopes.has(operation.writesWith) ? 'write' : operation.rate;
}
