import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/ports.js';

const root = path.resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(path.join(tmpdir(), 'crm-stack-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function waitForOutput(child: ReturnType<typeof spawn>, marker: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no "${marker}" within ${timeoutMs}ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(marker)) {
        clearTimeout(timer);
        resolve(output);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before "${marker}":\n${output}`));
    });
  });
}

describe('npm start', () => {
  it('runs PostgreSQL, migrations, Temporal with its UI and search attributes, the worker and the API, and stops cleanly', async () => {
    const ports = { PORT: await freePort(), PG_PORT: await freePort(), TEMPORAL_PORT: await freePort(), TEMPORAL_UI_PORT: await freePort() };
    const env: Record<string, string> = { ...process.env, CRM_DATA_DIR: dataDir, LOG_LEVEL: 'warn' } as Record<string, string>;
    for (const [k, v] of Object.entries(ports)) env[k] = String(v);
    delete env.DATABASE_URL;
    delete env.TEMPORAL_ADDRESS;
    delete env.JWT_SECRET;

    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const banner = await waitForOutput(child, 'Ctrl-C stops everything', 150_000);
      expect(banner).toContain(`http://127.0.0.1:${ports.TEMPORAL_UI_PORT}`);

      const ready = await fetch(`http://127.0.0.1:${ports.PORT}/readyz`);
      expect(ready.status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${ports.TEMPORAL_UI_PORT}/`)).status).toBe(200);

      const connection = await Connection.connect({ address: `127.0.0.1:${ports.TEMPORAL_PORT}` });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      await connection.close();
      for (const name of ['TenantId', 'CustomerId', 'SegmentId', 'CampaignId', 'JourneyId']) expect(Object.keys(customAttributes ?? {})).toContain(name);
      expect(existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);

      // `npm run token` signs with the secret the running API generated into the data directory.
      const minted = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/token.ts', '--tenant', 'demo', '--scopes', 'crm:read,crm:campaigns'], {
        cwd: root, env, encoding: 'utf8',
      });
      expect(minted.status).toBe(0);
      const jwt = minted.stdout.trim();
      expect(jwt.split('.')).toHaveLength(3);
      const res = await fetch(`http://127.0.0.1:${ports.PORT}/api/v1/campaigns`, { headers: { authorization: `Bearer ${jwt}` } });
      expect(res.status).toBe(501);
      const secret = readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim();
      const { payload } = await jwtVerify(jwt, new TextEncoder().encode(secret));
      expect(payload).toMatchObject({ tenantId: 'demo', scope: 'crm:read crm:campaigns' });
    } finally {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
    // Everything it started is gone: the ports are free again.
    for (const port of Object.values(ports)) {
      const refused = await fetch(`http://127.0.0.1:${port}/`).then(() => false, () => true);
      expect(refused, `port ${port} still answers`).toBe(true);
    }
  });
});
