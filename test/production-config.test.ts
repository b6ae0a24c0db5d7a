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

  it('starts the API in production with JWT_SECRET', async () => {
    const env: Record<string, string> = {
      ...process.env, NODE_ENV: 'production', JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: inject('databaseUrl'), TEMPORAL_ADDRESS: inject('temporalAddress'), PORT: '0', LOG_LEVEL: 'info',
    } as Record<string, string>;
    const child = spawn(process.execPath, ['--import', 'tsx', 'api/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        let output = '';
        child.stdout!.on('data', (c: Buffer) => {
          output += c.toString();
          if (output.includes('API listening')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
      });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 180_000);
});
