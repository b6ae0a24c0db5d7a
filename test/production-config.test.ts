import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, inject, it } from 'vitest';
import { TEST_JWT_SECRET } from './support/api.js';
import { root } from './support/npm-start.js';

describe('npm run api / npm run worker in production', () => {
  for (const entry of ['api/server.ts', 'worker/main.ts']) {
    it(`${entry} refuses to start without JWT_SECRET or JWT_JWKS_URL`, () => {
      const env: Record<string, string> = { ...process.env, NODE_ENV: 'production', DATABASE_URL: inject('databaseUrl'), TEMPORAL_ADDRESS: inject('temporalAddress'), PORT: '0' } as Record<string, string>;
      delete env.JWT_SECRET;
      delete env.JWT_JWKS_URL;
      const run = spawnSync(process.execPath, ['--import', 'tsx', entry], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('NODE_ENV=production requires JWT_SECRET (HS256) or JWT_JWKS_URL (RS256/ES256)');
    }, 180_000);
  }

  it('starts the API in production with JWT_SECRET, warning that social tokens need SOCIAL_TOKEN_KEY', async () => {
    const env: Record<string, string> = {
      ...process.env, NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: inject('databaseUrl'), TEMPORAL_ADDRESS: inject('temporalAddress'), PORT: '0', LOG_LEVEL: 'info',
    } as Record<string, string>;
    const child = spawn(process.execPath, ['--import', 'tsx', 'api/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let output = '';
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (c: Buffer) => {
          output += c.toString();
          if (output.includes('API listening')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
      });
      // Social platforms are optional: the API starts without their key and says what answers 503.
      expect(output).toContain('SOCIAL_TOKEN_KEY is not set: social connections, posts and refreshes answer 503');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 180_000);
});
