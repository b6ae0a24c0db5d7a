import type { EntityManager } from '@mikro-orm/postgresql';
import type { SocialPlatform } from '../../db/entities/enums.js';
import type { Config } from '../../platform/config.js';
import { AppError, notFound } from '../../platform/errors.js';
import { InvalidGrantError, socialClient } from '../../platform/social/index.js';
import { tokenCipher } from '../../platform/social/token-cipher.js';

// How publishing (posts, metrics) gets a connection's token: decrypted here, used at once, never
// returned by the API, logged, or passed through a workflow.

export interface PublishCredentials {
  connectionId: string;
  platform: SocialPlatform;
  accountId: string;
  accessToken: string;
  expiresAt: Date | null;
}

interface ConnectionRow {
  id: string;
  platform: SocialPlatform;
  account_id: string;
  is_active: boolean;
  status_reason: string | null;
  access_token_encrypted: string | null;
  refresh_token_encrypted: string | null;
  token_expiry: Date | null;
  tokens_refreshed_at: Date | null;
}

const COLUMNS = 'id, platform, account_id, is_active, status_reason, access_token_encrypted, refresh_token_encrypted, token_expiry, tokens_refreshed_at';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// A refresh this recent was another caller's answer to the same refused token: use its result.
const JUST_REFRESHED_MS = 30_000;

function usable(row: ConnectionRow | undefined, connectionId: string): asserts row is ConnectionRow & { access_token_encrypted: string } {
  if (!row) throw notFound('social connection', connectionId);
  if (!row.is_active || !row.access_token_encrypted) {
    const reason = row.status_reason ?? 'no token';
    throw new AppError('INVALID_STATE', `social connection ${connectionId} is inactive (${reason}): reconnect the account`, { reason });
  }
}

function credentials(config: Config, row: ConnectionRow & { access_token_encrypted: string }): PublishCredentials {
  return {
    connectionId: row.id,
    platform: row.platform,
    accountId: row.account_id,
    accessToken: tokenCipher(config).decrypt(row.access_token_encrypted),
    expiresAt: row.token_expiry ? new Date(row.token_expiry) : null,
  };
}

/**
 * The connection's decrypted publish token. RESOURCE_NOT_FOUND for another tenant's or a deleted
 * connection; INVALID_STATE (naming the reason) for an inactive one.
 */
export async function publishCredentials(em: EntityManager, config: Config, tenantId: string, connectionId: string): Promise<PublishCredentials> {
  const [row] = UUID.test(connectionId)
    ? await em.execute<ConnectionRow[]>(`update social_connections set last_used_at = now() where tenant_id = ? and id = ? returning ${COLUMNS}`, [tenantId, connectionId])
    : [];
  usable(row, connectionId);
  const found = credentials(config, row);
  await reencryptIfStale(em, config, tenantId, row);
  return found;
}

/**
 * After a key rotation, tokens that are never refreshed (Facebook and Instagram Page tokens) move to
 * the current key on their next use; conditional, so a concurrent refresh's new tokens are kept.
 */
async function reencryptIfStale(em: EntityManager, config: Config, tenantId: string, row: ConnectionRow & { access_token_encrypted: string }) {
  const cipher = tokenCipher(config);
  if (!cipher.isStale(row.access_token_encrypted) && !(row.refresh_token_encrypted && cipher.isStale(row.refresh_token_encrypted))) return;
  const again = (value: string | null) => (value ? cipher.encrypt(cipher.decrypt(value)) : null);
  await em.execute(
    `update social_connections set access_token_encrypted = ?, refresh_token_encrypted = ?
      where tenant_id = ? and id = ? and access_token_encrypted = ? and refresh_token_encrypted is not distinct from ?`,
    [again(row.access_token_encrypted), again(row.refresh_token_encrypted), tenantId, row.id, row.access_token_encrypted, row.refresh_token_encrypted],
  );
}

export type RefreshOutcome =
  | { kind: 'refreshed'; credentials: PublishCredentials }
  /** The grant is gone: the connection is now inactive with `reason`. */
  | { kind: 'inactive'; reason: string };

/**
 * Refreshes under the row's lock, so concurrent refreshers (the refresh workflow, publishing after
 * a refused token) refresh once: a caller that finds the tokens changed since it looked
 * (the token it saw refused is no longer the stored one, the expiry it saw changed, or, knowing
 * neither, a refresh moments ago) takes them as they are. A rotated refresh token
 * is saved with the access token in one UPDATE; a refused grant marks the connection inactive.
 * Other platform failures (rate limits, timeouts) are thrown as they are, nothing changed.
 */
export async function refreshConnection(
  em: EntityManager, config: Config, tenantId: string, connectionId: string, seen: { expiry?: Date | null; refusedToken?: string } = {},
): Promise<RefreshOutcome> {
  if (!UUID.test(connectionId)) throw notFound('social connection', connectionId);
  const cipher = tokenCipher(config);
  return em.transactional(async (tx) => {
    const [row] = await tx.execute<ConnectionRow[]>(`select ${COLUMNS} from social_connections where tenant_id = ? and id = ? for update`, [tenantId, connectionId]);
    usable(row, connectionId);
    const changed = seen.refusedToken !== undefined
      ? cipher.decrypt(row.access_token_encrypted) !== seen.refusedToken
      : seen.expiry !== undefined
        ? (row.token_expiry ? new Date(row.token_expiry).getTime() : null) !== (seen.expiry ? seen.expiry.getTime() : null)
        : !!row.tokens_refreshed_at && Date.now() - new Date(row.tokens_refreshed_at).getTime() < JUST_REFRESHED_MS;
    if (changed) return { kind: 'refreshed', credentials: credentials(config, row) };

    const deactivate = async (reason: string): Promise<RefreshOutcome> => {
      await tx.execute(
        `update social_connections set is_active = false, status_reason = ?, access_token_encrypted = null, refresh_token_encrypted = null, updated_at = now()
          where tenant_id = ? and id = ?`,
        [reason, tenantId, connectionId],
      );
      return { kind: 'inactive', reason };
    };
    if (!row.refresh_token_encrypted) return deactivate(`${row.platform} refused the token and issued no refresh token: reconnect the account`);
    let tokens;
    try {
      tokens = await socialClient(config, row.platform).refresh(cipher.decrypt(row.refresh_token_encrypted));
    } catch (err) {
      if (err instanceof InvalidGrantError) return deactivate(`refresh refused: ${err.message}`.slice(0, 1000));
      throw err;
    }
    const [saved] = await tx.execute<ConnectionRow[]>(
      `update social_connections set access_token_encrypted = ?, refresh_token_encrypted = coalesce(?, refresh_token_encrypted), token_expiry = ?,
          tokens_refreshed_at = now(), updated_at = now()
        where tenant_id = ? and id = ? returning ${COLUMNS}`,
      [cipher.encrypt(tokens.accessToken), tokens.refreshToken ? cipher.encrypt(tokens.refreshToken) : null, tokens.expiresAt ?? null, tenantId, connectionId],
    );
    return { kind: 'refreshed', credentials: credentials(config, saved as ConnectionRow & { access_token_encrypted: string }) };
  });
}

/**
 * Refreshes the connection's token now (after a platform refused it as expired) and returns the new
 * credentials. A refused grant marks the connection inactive with the reason and throws
 * INVALID_STATE. Concurrent callers refresh once (row lock); rotated refresh tokens are saved with
 * the access token in one UPDATE. `refusedToken`, the access token the platform refused, tells a
 * concurrent caller's fresh token from a stale one exactly.
 */
export async function refreshCredentials(
  em: EntityManager, config: Config, tenantId: string, connectionId: string, refusedToken?: string,
): Promise<PublishCredentials> {
  const outcome = await refreshConnection(em, config, tenantId, connectionId, { refusedToken });
  if (outcome.kind === 'inactive') {
    throw new AppError('INVALID_STATE', `social connection ${connectionId} is inactive (${outcome.reason}): reconnect the account`, { reason: outcome.reason });
  }
  return outcome.credentials;
}
