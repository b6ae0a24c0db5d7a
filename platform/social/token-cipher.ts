import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isTokenKey, type Config } from '../config.js';
import { AppError } from '../errors.js';

// OAuth tokens at rest: AES-256-GCM under SOCIAL_TOKEN_KEY. A stored value is
// `<keyId>:<iv>:<tag>:<ciphertext>` (base64url), the key id being a short hash of the key, so after
// a rotation (the new key in SOCIAL_TOKEN_KEY, the old one in SOCIAL_TOKEN_KEYS_OLD) every value
// still names the key that opens it, and each write uses the new one.

export interface TokenCipher {
  /** The id of the key new values are written with. */
  readonly keyId: string;
  encrypt(plain: string): string;
  decrypt(stored: string): string;
  /** Whether a stored value was written with an older key (re-encrypt it when convenient). */
  isStale(stored: string): boolean;
}

const KEY_BYTES = 32;
const IV_BYTES = 12;
// The full GCM tag, always: Node would otherwise accept a tag cut down to 4 bytes, and with it a
// forgery found by trying 2^32 values instead of 2^128.
const TAG_BYTES = 16;

/**
 * Without a usable key, social operations answer 503 naming what to set, not a 500: the process
 * started (configuration checks at start refuse only malformed keys, so a deployment that does not
 * use social platforms needs none) and the fault is the operator's, not the request's.
 */
const unavailable = (message: string) => new AppError('SERVICE_UNAVAILABLE', `social platform tokens are unavailable: ${message}`);

/** The warning the API and the worker log at start when social operations would answer 503. */
export function tokenKeyWarning(config: Config): string | undefined {
  if (config.NODE_ENV !== 'production' || config.SOCIAL_TOKEN_KEY) return undefined;
  return 'SOCIAL_TOKEN_KEY is not set: social connections, posts and refreshes answer 503 until it is (32 bytes, base64; NODE_ENV=production generates none)';
}

export const keyIdOf = (key: Buffer) => createHash('sha256').update(key).digest('base64url').slice(0, 8);

// Development convenience, as with the JWT secret: without SOCIAL_TOKEN_KEY one key is generated
// into the data directory on first use and shared by the API and the worker. Production sets it:
// a key generated on one host could not read tokens another host stored.
function developmentKey(config: Config): string {
  if (config.NODE_ENV === 'production') {
    throw unavailable('NODE_ENV=production requires SOCIAL_TOKEN_KEY (32 bytes, base64) to encrypt them; no key is generated in production.');
  }
  const file = path.join(config.CRM_DATA_DIR, 'social-token-key');
  let existing: string;
  try {
    existing = readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(config.CRM_DATA_DIR, { recursive: true });
    const key = randomBytes(KEY_BYTES).toString('base64');
    try {
      writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
      return key;
    } catch {
      // Another process wrote it first: use theirs.
      return readFileSync(file, 'utf8').trim();
    }
  }
  if (!isTokenKey(existing)) throw unavailable(`${file} is not 32 bytes in base64; set SOCIAL_TOKEN_KEY or remove the file (tokens stored with it are then lost)`);
  return existing;
}

const ciphers = new Map<string, TokenCipher>();

export function tokenCipher(config: Config): TokenCipher {
  const current = config.SOCIAL_TOKEN_KEY ?? developmentKey(config);
  const memo = `${current}|${config.SOCIAL_TOKEN_KEYS_OLD ?? ''}`;
  const cached = ciphers.get(memo);
  if (cached) return cached;

  // Both were checked by loadConfig (platform/config.ts), the development key above.
  const key = Buffer.from(current, 'base64');
  const keyId = keyIdOf(key);
  const keys = new Map<string, Buffer>([[keyId, key]]);
  for (const old of (config.SOCIAL_TOKEN_KEYS_OLD ?? '').split(',').map((k) => k.trim()).filter(Boolean)) {
    const oldKey = Buffer.from(old, 'base64');
    keys.set(keyIdOf(oldKey), oldKey);
  }

  const cipher: TokenCipher = {
    keyId,
    encrypt(plain) {
      const iv = randomBytes(IV_BYTES);
      const gcm = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      const ciphertext = Buffer.concat([gcm.update(plain, 'utf8'), gcm.final()]);
      return [keyId, iv.toString('base64url'), gcm.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join(':');
    },
    decrypt(stored) {
      const [id, iv, tag, ciphertext, extra] = stored.split(':');
      const k = id ? keys.get(id) : undefined;
      // Never the value itself in a message: it is a token, even if unreadable.
      if (!k) throw unavailable(`a stored token is encrypted with key ${id ?? '?'}, which is neither SOCIAL_TOKEN_KEY nor in SOCIAL_TOKEN_KEYS_OLD`);
      const ivBytes = Buffer.from(iv ?? '', 'base64url');
      const tagBytes = Buffer.from(tag ?? '', 'base64url');
      if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES || ciphertext === undefined || extra !== undefined) {
        throw new Error(`a stored social token (key ${id}) is malformed`);
      }
      const gcm = createDecipheriv('aes-256-gcm', k, ivBytes, { authTagLength: TAG_BYTES });
      gcm.setAuthTag(tagBytes);
      try {
        return Buffer.concat([gcm.update(Buffer.from(ciphertext, 'base64url')), gcm.final()]).toString('utf8');
      } catch {
        throw new Error(`a stored social token (key ${id}) failed its integrity check: it was altered`);
      }
    },
    isStale: (stored) => !stored.startsWith(`${keyId}:`),
  };
  ciphers.set(memo, cipher);
  return cipher;
}
