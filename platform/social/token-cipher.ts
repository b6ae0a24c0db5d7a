import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';

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

function parseKey(value: string, name: string): Buffer {
  const text = value.trim();
  const key = Buffer.from(text, 'base64');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) || key.length !== KEY_BYTES) {
    throw new Error(`${name} must be ${KEY_BYTES} bytes in base64 (e.g. \`openssl rand -base64 32\`)`);
  }
  return key;
}

export const keyIdOf = (key: Buffer) => createHash('sha256').update(key).digest('base64url').slice(0, 8);

// Development convenience, as with the JWT secret: without SOCIAL_TOKEN_KEY one key is generated
// into the data directory on first use and shared by the API and the worker. Production sets it:
// a key generated on one host could not read tokens another host stored.
function developmentKey(config: Config): string {
  if (config.NODE_ENV === 'production') {
    throw new Error('NODE_ENV=production requires SOCIAL_TOKEN_KEY (32 bytes, base64) to encrypt social platform tokens; no key is generated in production.');
  }
  const file = path.join(config.CRM_DATA_DIR, 'social-token-key');
  try {
    return readFileSync(file, 'utf8').trim();
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
}

const ciphers = new Map<string, TokenCipher>();

export function tokenCipher(config: Config): TokenCipher {
  const current = config.SOCIAL_TOKEN_KEY ?? developmentKey(config);
  const memo = `${current}|${config.SOCIAL_TOKEN_KEYS_OLD ?? ''}`;
  const cached = ciphers.get(memo);
  if (cached) return cached;

  const key = parseKey(current, 'SOCIAL_TOKEN_KEY');
  const keyId = keyIdOf(key);
  const keys = new Map<string, Buffer>([[keyId, key]]);
  for (const old of (config.SOCIAL_TOKEN_KEYS_OLD ?? '').split(',').map((k) => k.trim()).filter(Boolean)) {
    const oldKey = parseKey(old, 'SOCIAL_TOKEN_KEYS_OLD');
    keys.set(keyIdOf(oldKey), oldKey);
  }

  const cipher: TokenCipher = {
    keyId,
    encrypt(plain) {
      const iv = randomBytes(IV_BYTES);
      const gcm = createCipheriv('aes-256-gcm', key, iv);
      const ciphertext = Buffer.concat([gcm.update(plain, 'utf8'), gcm.final()]);
      return [keyId, iv.toString('base64url'), gcm.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join(':');
    },
    decrypt(stored) {
      const [id, iv, tag, ciphertext] = stored.split(':');
      const k = id ? keys.get(id) : undefined;
      if (!k || !iv || !tag || ciphertext === undefined) {
        // Never the value itself: it is a token, even if unreadable.
        throw new Error(`a stored social token is encrypted with key ${id ?? '?'}, which is neither SOCIAL_TOKEN_KEY nor in SOCIAL_TOKEN_KEYS_OLD`);
      }
      const gcm = createDecipheriv('aes-256-gcm', k, Buffer.from(iv, 'base64url'));
      gcm.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([gcm.update(Buffer.from(ciphertext, 'base64url')), gcm.final()]).toString('utf8');
    },
    isStale: (stored) => !stored.startsWith(`${keyId}:`),
  };
  ciphers.set(memo, cipher);
  return cipher;
}
