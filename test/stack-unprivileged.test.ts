import { chownSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { newTenant, TEST_JWT_SECRET, token } from './support/api.js';
import { api, banner, dataDirectory, freePorts, killLeftovers, npmStart, stackEnv, stop, type Started } from './support/npm-start.js';

describe('npm start as an unprivileged user', () => {
  it('keeps its data across restarts when not run as root', async () => {
    // As root, run it as `nobody`; PostgreSQL then runs as that user too, in a directory it owns.
    const dataDir = dataDirectory();
    const as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (as.uid !== undefined) chownSync(dataDir, as.uid, as.gid!);
    const ports = await freePorts();
    const env = stackEnv(dataDir, ports, {
      JWT_SECRET: TEST_JWT_SECRET, HOME: dataDir,
      TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_TASK_QUEUE: `stack-${path.basename(dataDir)}`,
    });
    const tenant = newTenant();
    const auth = await token(tenant);
    const leftovers: Started[] = [];
    const start = async () => {
      const s = npmStart(env, as);
      leftovers.push(s);
      await s.waitFor(banner);
      return s;
    };
    try {
      let s = await start();
      const created = await api(ports.PORT, 'POST', '/customers', auth, { firstName: 'Plain', email: 'plain@restart.test' });
      expect(created.status).toBe(201);
      await stop(s, 'SIGTERM');
      s = await start();
      await stop(s, 'SIGINT');
      s = await start();
      const read = await api(ports.PORT, 'GET', `/customers/${created.body.data.id}`, auth);
      expect(read.body.data).toMatchObject({ firstName: 'Plain', email: 'plain@restart.test' });
      await stop(s, 'SIGTERM');
      const pgVersion = path.join(dataDir, 'pg', 'PG_VERSION');
      expect(existsSync(pgVersion)).toBe(true);
      if (as.uid !== undefined) expect(spawnSync('stat', ['-c', '%u', path.join(dataDir, 'pg')], { encoding: 'utf8' }).stdout.trim()).toBe('65534');
    } finally {
      for (const s of leftovers) s.child.kill('SIGKILL');
      killLeftovers(dataDir);
    }
  }, 900_000);
});
