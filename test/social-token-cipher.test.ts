import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../platform/config.js';
import { keyIdOf, tokenCipher } from '../platform/social/token-cipher.js';

// The cipher of stored OAuth tokens: AES-256-GCM, key ids, rotation, and the development key.

const dirs: string[] = [];
const dataDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'social-key-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const key = () => randomBytes(32).toString('base64');
const config = (env: Record<string, string>) => loadConfig({ CRM_DATA_DIR: dataDir(), ...env });

describe('token cipher', () => {
  it('encrypts with a fresh IV each time, tagged with the key id, and refuses a tampered value', () => {
    const k = key();
    const cipher = tokenCipher(config({ SOCIAL_TOKEN_KEY: k }));
    const a = cipher.encrypt('secret-token-value');
    const b = cipher.encrypt('secret-token-value');
    expect(a).not.toBe(b);
    expect(a).not.toContain('secret-token-value');
    expect(a.split(':')[0]).toBe(keyIdOf(Buffer.from(k, 'base64')));
    expect(cipher.decrypt(a)).toBe('secret-token-value');
    const [id, iv, tag, ct] = a.split(':');
    const flipped = Buffer.from(ct!, 'base64url');
    flipped[0]! ^= 1;
    expect(() => cipher.decrypt([id, iv, tag, flipped.toString('base64url')].join(':'))).toThrow();
  });

  it('refuses a key that is not 32 bytes of base64', () => {
    for (const bad of [randomBytes(16).toString('base64'), 'not base64 at all!', randomBytes(33).toString('base64')]) {
      expect(() => tokenCipher(config({ SOCIAL_TOKEN_KEY: bad }))).toThrow(/SOCIAL_TOKEN_KEY must be 32 bytes in base64/);
    }
    expect(() => tokenCipher(config({ SOCIAL_TOKEN_KEY: key(), SOCIAL_TOKEN_KEYS_OLD: 'short' }))).toThrow(/SOCIAL_TOKEN_KEYS_OLD must be 32 bytes/);
  });

  it('rotates: the new key writes, old keys in SOCIAL_TOKEN_KEYS_OLD still read; an unknown key id names the id, not the value', () => {
    const [k1, k2, k3] = [key(), key(), key()];
    const before = tokenCipher(config({ SOCIAL_TOKEN_KEY: k1 })).encrypt('old-token');
    const rotated = tokenCipher(config({ SOCIAL_TOKEN_KEY: k2, SOCIAL_TOKEN_KEYS_OLD: `${k3}, ${k1}` }));
    expect(rotated.decrypt(before)).toBe('old-token');
    expect(rotated.isStale(before)).toBe(true);
    const after = rotated.encrypt('new-token');
    expect(rotated.isStale(after)).toBe(false);
    expect(after.startsWith(`${keyIdOf(Buffer.from(k2, 'base64'))}:`)).toBe(true);
    const withoutOld = tokenCipher(config({ SOCIAL_TOKEN_KEY: k2 }));
    expect(() => withoutOld.decrypt(before)).toThrow(new RegExp(`encrypted with key ${before.split(':')[0]}, which is neither`));
  });

  it('generates a development key into CRM_DATA_DIR once, and requires SOCIAL_TOKEN_KEY in production', () => {
    const dir = dataDir();
    const first = tokenCipher(loadConfig({ CRM_DATA_DIR: dir }));
    const stored = readFileSync(path.join(dir, 'social-token-key'), 'utf8').trim();
    expect(Buffer.from(stored, 'base64')).toHaveLength(32);
    expect(tokenCipher(loadConfig({ CRM_DATA_DIR: dir })).decrypt(first.encrypt('t'))).toBe('t');
    expect(() => tokenCipher(loadConfig({ CRM_DATA_DIR: dataDir(), NODE_ENV: 'production' }))).toThrow(/NODE_ENV=production requires SOCIAL_TOKEN_KEY/);
  });
});
