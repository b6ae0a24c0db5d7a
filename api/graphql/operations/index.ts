import type { IResolvers } from '@graphql-tools/utils';
import type { OperationName } from '../../../domain/operations.js';
import type { RootResolver } from '../resolvers.js';
import { analyticsOperations } from './analytics.js';
import { campaignOperations } from './campaigns.js';
import { customerOperations, customerTypeResolvers } from './customers.js';
import { journeyOperations, journeyTypeResolvers } from './journeys.js';
import { journeyEnrollmentOperations, journeyEnrollmentTypeResolvers } from './journey-enrollments.js';
import { promotionOperations, promotionTypeResolvers } from './promotions.js';
import { segmentOperations } from './segments.js';
import { socialConnectionOperations } from './social-connections.js';
import { socialPostOperations, socialPostTypeResolvers } from './social-posts.js';

// Every root field's resolver, by domain.
export const implementedOperations: Partial<Record<OperationName, RootResolver>> = {
  ...customerOperations,
  ...segmentOperations,
  ...campaignOperations,
  ...journeyOperations,
  ...journeyEnrollmentOperations,
  ...socialConnectionOperations,
  ...analyticsOperations,
  ...socialPostOperations,
  ...promotionOperations,
};

// Field resolvers of object types (relationships, computed fields).
export const typeResolvers: IResolvers[] = [
  customerTypeResolvers as IResolvers, journeyTypeResolvers as IResolvers, journeyEnrollmentTypeResolvers as IResolvers, socialPostTypeResolvers as IResolvers,
  promotionTypeResolvers as IResolvers,
];
