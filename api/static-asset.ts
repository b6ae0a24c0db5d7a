import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Context } from 'hono';

const require = createRequire(import.meta.url);

// Files that npm packages ship but do not export (UMD bundles, CSS): found from the package root.
function packageFile(pkg: string, file: string): string {
  let dir = path.dirname(require.resolve(pkg));
  while (!existsSync(path.join(dir, 'package.json')) || path.basename(dir) !== pkg.split('/').pop()) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package root of ${pkg} not found`);
    dir = parent;
  }
  return path.join(dir, file);
}

const cache = new Map<string, Uint8Array>();

/** Serves `file` of npm package `pkg`, read once and kept in memory. */
export function serveAsset(c: Context, pkg: string, file: string, type: string) {
  const key = `${pkg}/${file}`;
  let body = cache.get(key);
  if (!body) {
    body = new Uint8Array(readFileSync(packageFile(pkg, file)));
    cache.set(key, body);
  }
  return c.body(body as Uint8Array<ArrayBuffer>, 200, { 'content-type': type, 'cache-control': 'public, max-age=86400' });
}
