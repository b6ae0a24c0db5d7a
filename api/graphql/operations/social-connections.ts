import {
  completeSocialConnection, disconnectSocial, initiateSocialConnection, listSocialConnections,
} from '../../../domain/social/connections.js';
import type { RootResolver } from '../resolvers.js';

// Social connections over GraphQL, through the same service as REST. SocialConnection has no
// statusReason in the spec: an inactive connection shows as isActive false (REST names the reason).

export const socialConnectionOperations = {
  socialConnections: ({ platform }, ctx) => listSocialConnections(ctx, { platform }),
  initiateSocialConnection: ({ input }, ctx) => initiateSocialConnection(ctx, { ...input }),
  completeSocialConnection: ({ input }, ctx) => completeSocialConnection(ctx, { ...input }),
  // true: disconnected (or already was); another tenant's or an unknown id is RESOURCE_NOT_FOUND.
  disconnectSocial: async ({ id }, ctx) => !!(await disconnectSocial(ctx, id)),
} satisfies Record<string, RootResolver>;
