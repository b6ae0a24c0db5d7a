import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { SocialConnection } from '../../db/entities/index.js';
import { pgArray } from '../../db/sql.js';
import { SocialPlatform } from '../../db/entities/enums.js';
import type { Config } from '../../platform/config.js';
import { AppError, notFound } from '../../platform/errors.js';
import { jwtSecret } from '../../platform/jwt-secret.js';
import { InvalidGrantError, socialClient, SocialApiError, type SocialPlatformClient, type TokenSet } from '../../platform/social/index.js';
import { tokenCipher } from '../../platform/social/token-cipher.js';
import type { ServiceContext } from '../context.js';
import { optional, validate } from '../validate.js';
import { enqueueTokenRefresh, stopTokenRefresh } from './workflows.js';

// Connecting a club's social accounts (OAuth 2.0 authorisation code flow). `initiate` hands out the
// platform's authorisation URL and a `state`: a JWT signed with a key of its own, naming a row of
// social_oauth_states that holds what the state is bound to (tenant, club, platform, redirectUri)
// and the PKCE code_verifier, encrypted. `complete` verifies the state, consumes the row (one
// DELETE ... RETURNING: a state works once), exchanges the code and stores the connection with its
// tokens encrypted. Tokens never leave this module and credentials.ts except towards the platform.

export const STATE_TTL_MS = 10 * 60_000;
const STATE_AUDIENCE = 'crm:social-oauth-state';

const httpUrl = z.string().max(2000).refine((value) => {
  try {
    const url = new URL(value);
    // RFC 6749 §3.1.2: a redirection URI has no fragment; credentials in it only serve to mislead.
    return (url.protocol === 'https:' || url.protocol === 'http:') && !!url.hostname && !url.hash && !value.includes('#') && !url.username && !url.password;
  } catch {
    return false;
  }
}, { message: 'an absolute http(s) URL, without a fragment or credentials' });

export const initiateInput = z.object({
  tenantId: z.string().optional(),
  clubId: z.string().trim().min(1).max(100),
  platform: z.enum(SocialPlatform),
  redirectUri: httpUrl,
});
export const completeInput = z.object({
  platform: z.enum(SocialPlatform),
  code: z.string().min(1).max(4000),
  state: z.string().min(1).max(4000),
});
export const listInput = z.object({
  platform: optional(z.enum(SocialPlatform)),
  clubId: optional(z.string().max(100)),
});

const STATE_SECRET_MISSING = 'SOCIAL_STATE_SECRET is not set (at least 32 characters); it may only be left unset when JWT_SECRET is, from which it is then derived';

/** The warning the API logs at start when connecting would answer 503. */
export const stateSecretWarning = (config: Config) => (config.SOCIAL_STATE_SECRET || config.JWT_SECRET || !config.JWT_JWKS_URL ? undefined : STATE_SECRET_MISSING);

/** The key states are signed with: SOCIAL_STATE_SECRET, else derived from the JWT secret under a label of its own. */
export function oauthStateKey(config: Config): Uint8Array {
  const secret = config.SOCIAL_STATE_SECRET ?? jwtSecret(config);
  // An operator's omission, not the request's fault: 503 naming what to set (logged at start too).
  if (!secret) throw new AppError('SERVICE_UNAVAILABLE', `social connections are unavailable: ${STATE_SECRET_MISSING}`);
  return new Uint8Array(hkdfSync('sha256', secret, '', `crm social oauth state v1 (${config.SOCIAL_STATE_SECRET ? 'state' : 'jwt'} secret)`, 32));
}

/** The platform's client, refusing a platform this deployment has no app credentials for. */
function configuredClient(config: Config, platform: SocialPlatform): SocialPlatformClient {
  if (!config[`${platform}_CLIENT_ID`] || !config[`${platform}_CLIENT_SECRET`]) {
    throw new AppError('VALIDATION_ERROR', `input.platform: ${platform} is not configured here (${platform}_CLIENT_ID and ${platform}_CLIENT_SECRET)`, { field: 'input.platform' });
  }
  return socialClient(config, platform);
}

export async function initiateSocialConnection(ctx: ServiceContext, raw: unknown): Promise<{ authUrl: string; state: string }> {
  const input = validate(initiateInput, raw, 'input');
  const client = configuredClient(ctx.config, input.platform);
  const cipher = tokenCipher(ctx.config);
  const id = uuidv7();
  const expiresAt = new Date(Date.now() + STATE_TTL_MS);
  const verifier = client.pkce ? randomBytes(32).toString('base64url') : null;
  // States nobody completed are dropped as new ones are made.
  await ctx.em.execute('delete from social_oauth_states where expires_at < now()');
  await ctx.em.execute(
    `insert into social_oauth_states (id, tenant_id, club_id, platform, redirect_uri, code_verifier_encrypted, expires_at) values (?, ?, ?, ?, ?, ?, ?)`,
    [id, ctx.tenantId, input.clubId, input.platform, input.redirectUri, verifier ? cipher.encrypt(verifier) : null, expiresAt],
  );
  const state = await new SignJWT({ tid: ctx.tenantId, club: input.clubId, platform: input.platform })
    .setProtectedHeader({ alg: 'HS256' })
    .setJti(id)
    .setAudience(STATE_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
    .sign(oauthStateKey(ctx.config));
  const codeChallenge = verifier ? createHash('sha256').update(verifier).digest('base64url') : undefined;
  return { authUrl: client.authorizationUrl({ state, redirectUri: input.redirectUri, codeChallenge }), state };
}

const badState = (message: string) => new AppError('VALIDATION_ERROR', `input.state: ${message}`, { field: 'input.state' });

/** The state's row, consumed: every check a state must pass, in the order that tells the caller most. */
async function consumeState(ctx: ServiceContext, state: string, platform: SocialPlatform) {
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(state, oauthStateKey(ctx.config), { audience: STATE_AUDIENCE, algorithms: ['HS256'] }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw badState('expired: a state is valid for 10 minutes; initiate the connection again');
    throw badState('not a state this platform issued');
  }
  if (claims.tid !== ctx.tenantId) throw badState('issued to another tenant');
  if (claims.platform !== platform) throw badState(`issued for ${String(claims.platform)}, not ${platform}`);
  const [row] = await ctx.em.execute<{ id: string; club_id: string; redirect_uri: string; code_verifier_encrypted: string | null; expires_at: Date }[]>(
    `delete from social_oauth_states where id = ? and tenant_id = ? and platform = ? returning id, club_id, redirect_uri, code_verifier_encrypted, expires_at`,
    [claims.jti, ctx.tenantId, platform],
  );
  if (!row) throw badState('already used (a state completes one connection)');
  if (new Date(row.expires_at).getTime() <= Date.now()) throw badState('expired: a state is valid for 10 minutes; initiate the connection again');
  return row;
}

/** A platform's refusal or failure during the connection, as the API's error. */
function connectError(err: unknown): unknown {
  if (err instanceof InvalidGrantError) {
    return new AppError('VALIDATION_ERROR', `input.code: the platform refused the authorisation code (${err.message})`, { field: 'input.code' });
  }
  if (err instanceof SocialApiError) {
    return err.retryable
      ? new AppError('SERVICE_UNAVAILABLE', `${err.message}; try connecting again shortly`, { retryAfter: 5 })
      : new AppError('INVALID_STATE', err.message);
  }
  return err;
}

export async function completeSocialConnection(ctx: ServiceContext, raw: unknown): Promise<SocialConnection> {
  const input = validate(completeInput, raw, 'input');
  const client = configuredClient(ctx.config, input.platform);
  const row = await consumeState(ctx, input.state, input.platform);
  const cipher = tokenCipher(ctx.config);
  let tokens: TokenSet;
  let account;
  try {
    tokens = await client.exchangeCode({
      code: input.code,
      redirectUri: row.redirect_uri,
      codeVerifier: row.code_verifier_encrypted ? cipher.decrypt(row.code_verifier_encrypted) : undefined,
    });
    account = await client.account(tokens);
  } catch (err) {
    throw connectError(err);
  }
  const stored = account.publishToken ?? tokens;
  // Reconnecting the same account updates its row in place; a refresh token the platform did not
  // send again is kept (a still valid one must not be lost). The refresh workflow is started from
  // the outbox, committed with the connection: Temporal being down does not fail the connection.
  const saved = await ctx.em.transactional(async (em) => {
    const [upserted] = await em.execute<{ id: string }[]>(
      `insert into social_connections (id, tenant_id, club_id, platform, account_id, account_name, account_type, is_active, permissions,
          access_token_encrypted, refresh_token_encrypted, token_expiry, tokens_refreshed_at, status_reason)
        values (?, ?, ?, ?, ?, ?, ?, true, ?::text[], ?, ?, ?, null, null)
        on conflict (tenant_id, platform, account_id) do update set
          club_id = excluded.club_id, account_name = excluded.account_name, account_type = excluded.account_type, is_active = true,
          permissions = excluded.permissions, access_token_encrypted = excluded.access_token_encrypted,
          refresh_token_encrypted = coalesce(excluded.refresh_token_encrypted, social_connections.refresh_token_encrypted),
          token_expiry = excluded.token_expiry, tokens_refreshed_at = null, status_reason = null, updated_at = now()
        returning id`,
      [
        uuidv7(), ctx.tenantId, row.club_id, input.platform, account.accountId, account.accountName.slice(0, 255), account.accountType?.slice(0, 100) ?? null,
        pgArray(account.permissions), cipher.encrypt(stored.accessToken), stored.refreshToken ? cipher.encrypt(stored.refreshToken) : null, stored.expiresAt ?? null,
      ],
    );
    await enqueueTokenRefresh(em, ctx.tenantId, upserted!.id, row.id);
    return upserted!;
  });
  ctx.log.info({ connectionId: saved.id, platform: input.platform }, 'social account connected');
  return getSocialConnection(ctx, saved.id);
}

export async function getSocialConnection(ctx: ServiceContext, id: string): Promise<SocialConnection> {
  const key = uuidOrNull(id);
  const connection = key ? await ctx.em.findOne(SocialConnection, { tenantId: ctx.tenantId, id: key }, { refresh: true }) : null;
  if (!connection) throw notFound('social connection', id);
  return connection;
}

const uuidOrNull = (id: string) => (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ? id.toLowerCase() : null);

export async function listSocialConnections(ctx: ServiceContext, raw: unknown): Promise<SocialConnection[]> {
  const filter = validate(listInput, raw);
  return ctx.em.find(
    SocialConnection,
    { tenantId: ctx.tenantId, ...(filter.platform && { platform: filter.platform }), ...(filter.clubId && { clubId: filter.clubId }) },
    { orderBy: { createdAt: 'desc', id: 'desc' } },
  );
}

/**
 * Disconnects: the tokens are deleted and the connection kept, inactive (`disconnected`), so the
 * posts published through it keep their connection (they reference it ON DELETE CASCADE). The grant
 * is revoked at the platform where it allows that, best effort; the refresh workflow stops.
 */
export async function disconnectSocial(ctx: ServiceContext, id: string): Promise<SocialConnection> {
  const key = uuidOrNull(id);
  const [old] = key
    ? await ctx.em.execute<{ platform: SocialPlatform; access: string | null; refresh: string | null }[]>(
      `with old as (select id, access_token_encrypted, refresh_token_encrypted from social_connections where tenant_id = ? and id = ? for update)
       update social_connections c set access_token_encrypted = null, refresh_token_encrypted = null, token_expiry = null, is_active = false,
         status_reason = 'disconnected', updated_at = now()
       from old where c.id = old.id
       returning c.platform, old.access_token_encrypted as access, old.refresh_token_encrypted as refresh`,
      [ctx.tenantId, key],
    )
    : [];
  if (!old) throw notFound('social connection', id);
  try {
    await stopTokenRefresh(ctx.temporal, key!);
  } catch (err) {
    // The disconnect stands: the workflow finds the connection inactive when it next wakes, and ends.
    ctx.log.warn({ connectionId: key, error: err instanceof Error ? err.message : String(err) }, 'social disconnect: the token refresh workflow was not stopped');
  }
  if (old.access) {
    const cipher = tokenCipher(ctx.config);
    try {
      const revoked = await socialClient(ctx.config, old.platform).revoke({ accessToken: cipher.decrypt(old.access), refreshToken: old.refresh ? cipher.decrypt(old.refresh) : null });
      ctx.log.info({ connectionId: key, platform: old.platform, revoked }, 'social account disconnected');
    } catch (err) {
      // The tokens are gone from here either way; the platform's message never carries them.
      ctx.log.warn({ connectionId: key, platform: old.platform, error: err instanceof Error ? err.message : String(err) }, 'social disconnect: revocation failed');
    }
  }
  return getSocialConnection(ctx, key!);
}
