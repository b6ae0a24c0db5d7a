// Finds the Temporal CLI (which carries the dev server and its Web UI), building it when needed.
// Order: TEMPORAL_CLI_PATH, `temporal` on PATH, the cache, `go install` into the cache, and
// finally `undefined`, which tells the caller to fall back to the SDK's own download.
// Run directly (`npm run temporal-cli`) it prints the path, which is how .ci/run pre-builds it.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheDir, say } from './cache.js';

// Later tags carry a `replace` directive in go.mod, which `go install pkg@version` refuses.
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && executable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

export function resolveTemporalCli(): string | undefined {
  const configured = process.env.TEMPORAL_CLI_PATH;
  if (configured) {
    if (!executable(configured)) throw new Error(`TEMPORAL_CLI_PATH=${configured} is not an executable file`);
    return configured;
  }
  const found = onPath('temporal');
  if (found) return found;

  const binDir = cacheDir('bin');
  const cached = path.join(binDir, 'temporal');
  if (executable(cached)) return cached;

  if (spawnSync('go', ['version']).status === 0) {
    say(`building the Temporal CLI (go install ${TEMPORAL_CLI_MODULE}); the first build takes a few minutes...`);
    const started = Date.now();
    execFileSync('go', ['install', TEMPORAL_CLI_MODULE], {
      env: { ...process.env, GOBIN: binDir, GOFLAGS: `${process.env.GOFLAGS ?? ''} -buildvcs=false`.trim() },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    say(`built ${cached} in ${Math.round((Date.now() - started) / 1000)}s`);
    return cached;
  }
  say('no Temporal CLI found and no Go toolchain to build one; falling back to the SDK download');
  return undefined;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cli = resolveTemporalCli();
  if (!cli) process.exit(1);
  process.stdout.write(`${cli}\n`);
}
