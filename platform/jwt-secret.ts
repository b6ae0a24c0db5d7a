import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';

/**
 * In production every API and worker host must verify the same tokens, so the key comes from the
 * operator; a secret generated on one host would reject tokens minted for another.
 */
export function requireTokenKeys(config: Config): void {
  if (config.NODE_ENV === 'production' && !config.JWT_SECRET && !config.JWT_JWKS_URL) {
    throw new Error('NODE_ENV=production requires JWT_SECRET (HS256) or JWT_JWKS_URL (RS256/ES256) to verify tokens; ' +
      'no secret is generated in production, because each host would generate a different one.');
  }
}

// Development convenience: without JWT_SECRET, one secret is generated into the data directory on
// first start and shared by the API and `npm run token`. Production sets JWT_SECRET or JWT_JWKS_URL.
export function jwtSecret(config: Config): string | undefined {
  requireTokenKeys(config);
  if (config.JWT_SECRET) return config.JWT_SECRET;
  if (config.JWT_JWKS_URL) return undefined;
  const file = path.join(config.CRM_DATA_DIR, 'jwt-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(config.CRM_DATA_DIR, { recursive: true });
    const secret = randomBytes(32).toString('base64url');
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      // Another process (the API, the worker, `npm run token`) wrote it first: use theirs.
      return readFileSync(file, 'utf8').trim();
    }
  }
}
