import type { EntityManager } from '@mikro-orm/postgresql';
import type { SocialPlatform } from '../../db/entities/enums.js';
import type { Config } from '../../platform/config.js';

// How publishing (posts, metrics) gets a connection's token: decrypted here, used at once, never
// returned by the API, logged, or passed through a workflow.

export interface PublishCredentials {
  connectionId: string;
  platform: SocialPlatform;
  accountId: string;
  accessToken: string;
  expiresAt: Date | null;
}

/**
 * The connection's decrypted publish token. RESOURCE_NOT_FOUND for another tenant's or a deleted
 * connection; INVALID_STATE (naming the reason) for an inactive one.
 */
export async function publishCredentials(em: EntityManager, config: Config, tenantId: string, connectionId: string): Promise<PublishCredentials> {
  // CONTRACT (issue 10): implemented by the social connections work.
  void em, config, tenantId, connectionId;
  throw new Error('publishCredentials: not built yet');
}

/**
 * Refreshes the connection's token now (after a platform refused it as expired) and returns the new
 * credentials. A refused grant marks the connection inactive with the reason and throws
 * INVALID_STATE. Concurrent callers refresh once (row lock); rotated refresh tokens are saved with
 * the access token in one UPDATE.
 */
export async function refreshCredentials(em: EntityManager, config: Config, tenantId: string, connectionId: string): Promise<PublishCredentials> {
  // CONTRACT (issue 10): implemented by the social connections work.
  void em, config, tenantId, connectionId;
  throw new Error('refreshCredentials: not built yet');
}
