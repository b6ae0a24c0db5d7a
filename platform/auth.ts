import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { AppError } from './errors.js';

export const SCOPES = ['crm:read', 'crm:write', 'crm:admin', 'crm:campaigns', 'crm:social'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  sub: string;
  tenantId: string;
  scopes: ReadonlySet<string>;
  name?: string;
}

export interface AuthOptions {
  secret?: string; // HS256, development
  jwksUrl?: string; // RS256/ES256, production
  issuer?: string;
  audience?: string;
}

const Claims = z.object({
  sub: z.string().min(1).max(200),
  tenantId: z.string().min(1).max(100),
  scope: z.string().max(1000).default(''),
  name: z.string().max(255).optional(),
});

export type VerifyToken = (token: string) => Promise<Principal>;

export function createTokenVerifier(opts: AuthOptions): VerifyToken {
  // The algorithm list is fixed per key type: `alg: none` and HS/RS confusion are refused by jose.
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (opts.jwksUrl) {
    key = createRemoteJWKSet(new URL(opts.jwksUrl));
    algorithms = ['RS256', 'ES256'];
  } else if (opts.secret) {
    key = new TextEncoder().encode(opts.secret);
    algorithms = ['HS256'];
  } else {
    throw new Error('No JWT key configured: set JWT_JWKS_URL or JWT_SECRET');
  }
  const verified = new VerifiedTokens();
  return async (token) => {
    const known = verified.get(token);
    if (known) return known;
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, key as Uint8Array, {
        algorithms,
        issuer: opts.issuer,
        audience: opts.audience,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      const reason = (err as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'token expired' : 'invalid token';
      throw new AppError('UNAUTHENTICATED', reason);
    }
    const claims = Claims.safeParse(payload);
    if (!claims.success) {
      throw new AppError('UNAUTHENTICATED', `invalid token claims: ${claims.error.issues.map((i) => i.path.join('.')).join(', ')}`);
    }
    const principal: Principal = {
      sub: claims.data.sub,
      tenantId: claims.data.tenantId,
      scopes: new Set(claims.data.scope.split(/\s+/).filter(Boolean)),
      name: claims.data.name,
    };
    verified.set(token, principal, (payload as { exp: number }).exp * 1000);
    return principal;
  };
}

// How long a verified token is believed without checking its signature again: no longer than a
// JWKS key that was withdrawn would still be served from jose's own cache.
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;

/**
 * Tokens whose signature and claims were verified, by their exact text, until their `exp` or for
 * VERIFIED_TTL_MS, whichever is sooner. A client sends the same token on every request, and
 * checking its signature was a tenth of a list request's CPU. Bounded: the oldest entry goes first.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { principal: Principal; until: number }>();

  get(token: string): Principal | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (Date.now() < entry.until) return entry.principal;
    this.entries.delete(token); // verified again from scratch: an expired token is refused as such
    return undefined;
  }

  set(token: string, principal: Principal, expiresAt: number): void {
    if (this.entries.size >= VERIFIED_MAX) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, { principal, until: Math.min(expiresAt, Date.now() + VERIFIED_TTL_MS) });
  }
}

export async function signDevToken(
  secret: string,
  claims: { tenantId: string; scopes: string[]; sub?: string; name?: string },
  expiresIn: string = '12h',
): Promise<string> {
  return new SignJWT({ tenantId: claims.tenantId, scope: claims.scopes.join(' '), ...(claims.name ? { name: claims.name } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub ?? 'dev-user')
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}
