import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadConfig } from '../platform/config.js';
import { LOG_REDACT } from '../platform/logger.js';
import { keyIdOf, tokenCipher, tokenKeyWarning } from '../platform/social/token-cipher.js';

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

  it('a key that is not 32 bytes of base64 stops the processes at start (loadConfig), naming the variable', () => {
    for (const bad of [randomBytes(16).toString('base64'), 'not base64 at all!', randomBytes(33).toString('base64')]) {
      expect(() => config({ SOCIAL_TOKEN_KEY: bad })).toThrow(/^Invalid environment: SOCIAL_TOKEN_KEY: must be 32 bytes in base64/);
    }
    expect(() => config({ SOCIAL_TOKEN_KEY: key(), SOCIAL_TOKEN_KEYS_OLD: `${key()},short` })).toThrow(/SOCIAL_TOKEN_KEYS_OLD: each \(comma-separated\) must be 32 bytes/);
  });

  it('refuses a value whose GCM tag was cut short or whose IV is not 12 bytes, and never names the value', () => {
    const cipher = tokenCipher(config({ SOCIAL_TOKEN_KEY: key() }));
    const [id, iv, tag, ct] = cipher.encrypt('secret-token-value').split(':');
    const short = Buffer.from(tag!, 'base64url').subarray(0, 4).toString('base64url');
    for (const bad of [[id, iv, short, ct], [id, Buffer.alloc(1).toString('base64url'), tag, ct], [id, iv, tag, ct, 'x']]) {
      expect(() => cipher.decrypt(bad.join(':'))).toThrow(new RegExp(`^a stored social token \\(key ${id}\\) is malformed$`));
    }
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
  });

  it('without a usable key: 503 SERVICE_UNAVAILABLE naming what to set, and a warning for the start', () => {
    const production = loadConfig({ CRM_DATA_DIR: dataDir(), NODE_ENV: 'production' });
    expect(() => tokenCipher(production)).toThrow(expect.objectContaining({ code: 'SERVICE_UNAVAILABLE', status: 503, message: expect.stringMatching(/NODE_ENV=production requires SOCIAL_TOKEN_KEY/) }));
    expect(tokenKeyWarning(production)).toMatch(/^SOCIAL_TOKEN_KEY is not set: social connections, posts and refreshes answer 503/);
    expect(tokenKeyWarning(loadConfig({ NODE_ENV: 'production', SOCIAL_TOKEN_KEY: key() }))).toBeUndefined();
    expect(tokenKeyWarning(loadConfig({}))).toBeUndefined();

    const dir = dataDir();
    writeFileSync(path.join(dir, 'social-token-key'), 'truncated\n');
    expect(() => tokenCipher(loadConfig({ CRM_DATA_DIR: dir }))).toThrow(expect.objectContaining({ code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/social-token-key is not 32 bytes in base64/) }));

    const rotatedAway = tokenCipher(loadConfig({ SOCIAL_TOKEN_KEY: key() })).encrypt('t');
    expect(() => tokenCipher(loadConfig({ SOCIAL_TOKEN_KEY: key() })).decrypt(rotatedAway)).toThrow(expect.objectContaining({ code: 'SERVICE_UNAVAILABLE' }));
  });

  it('the logger censors a token passed under its usual names, should one ever be logged by mistake', () => {
    const lines: string[] = [];
    const log = pino({ redact: LOG_REDACT }, { write: (line: string) => lines.push(line) });
    log.warn({ accessToken: 'tok-a', tokens: { refresh_token: 'tok-r' }, req: { headers: { authorization: 'Bearer tok-b' } } }, 'oops');
    expect(lines.join('')).not.toMatch(/tok-/);
    expect(lines.join('')).toContain('[redacted]');
  });
});
