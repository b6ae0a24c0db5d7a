import { chmodSync, chownSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { assertRootOnly } from '../scripts/embedded-postgres.js';

// As root, npm start runs PostgreSQL binaries copied under /var/tmp, which anyone may write to:
// the directory holding them must be root's alone, or a local user could plant a binary there.
describe.skipIf(process.getuid?.() !== 0)('the directory of the copied PostgreSQL binaries', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => (dir = mkdtempSync(path.join(tmpdir(), 'crm-pg-bin-')));

  it('is accepted when root owns it and only root writes it', () => {
    chmodSync(fresh(), 0o755);
    expect(() => assertRootOnly(dir)).not.toThrow();
  });

  it('is refused when another user owns it', () => {
    chmodSync(fresh(), 0o755);
    chownSync(dir, 65534, 65534);
    expect(() => assertRootOnly(dir)).toThrow(/owned by uid 65534/);
  });

  it('is refused when others may write into it', () => {
    chmodSync(fresh(), 0o1777);
    expect(() => assertRootOnly(dir)).toThrow(/mode 1777/);
  });

  it('is refused when it is a symlink to a directory elsewhere', () => {
    const target = fresh();
    const link = `${target}-link`;
    symlinkSync(target, link);
    try {
      expect(() => assertRootOnly(link)).toThrow(/not a directory/);
    } finally {
      rmSync(link);
    }
  });
});
