import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

// Tools we build or download (Temporal CLI, Java test server) live outside the work tree, so a
// fresh clone, CI and `npm start` on the same machine reuse them instead of rebuilding.
export function cacheDir(...parts: string[]): string {
  const root = process.env.CRM_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'crm-platform');
  const dir = path.join(root, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function say(message: string): void {
  process.stderr.write(`[setup] ${message}\n`);
}
