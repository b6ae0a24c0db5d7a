import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { EmailSender } from '../platform/channels/email.js';
import { answers, api, banner, childPid, dataDirectory, eventually, freePorts, killLeftovers, npmStart, root, stackEnv, stop, type Started } from './support/npm-start.js';

describe('npm start', () => {
  it('runs PostgreSQL, migrations, Temporal with its UI, the worker and the API as supervised children; keeps its data across stops and SIGKILLs', async () => {
    const dataDir = dataDirectory();
    const ports = await freePorts();
    const env = stackEnv(dataDir, ports);
    const leftovers: Started[] = [];
    const start = async () => {
      const s = npmStart(env);
      leftovers.push(s);
      await s.waitFor(banner);
      return s;
    };
    try {
      let s = await start();
      expect(s.output()).toContain(`http://127.0.0.1:${ports.TEMPORAL_UI_PORT}`);
      expect((await fetch(`http://127.0.0.1:${ports.PORT}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${ports.TEMPORAL_UI_PORT}/`)).status).toBe(200);

      // The mail catcher: its web UI beside the Temporal UI, and an email sent to its SMTP port listed there.
      const mailUi = `http://127.0.0.1:${ports.MAILDEV_WEB_PORT}`;
      expect(s.output()).toMatch(new RegExp(`Mail UI +${mailUi} .*SMTP smtp://127\\.0\\.0\\.1:${ports.MAILDEV_SMTP_PORT}`));
      const page = await fetch(`${mailUi}/`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<title>MailDev</title>');
      const mailer = new EmailSender({ smtpUrl: `smtp://127.0.0.1:${ports.MAILDEV_SMTP_PORT}`, from: 'Club <club@stack.test>', maxConnections: 1, timeoutMs: 10_000 });
      await mailer.send({
        deliveryId: 'stack-test', tenantId: 'demo', campaignId: 'c', channel: 'EMAIL', to: { customerId: 'x', email: 'member@stack.test', phoneNumber: null },
        content: { subject: 'Caught', body: '<p>caught</p>', textBody: 'caught' },
      });
      await mailer.close();
      const caught = (await (await fetch(`${mailUi}/api/email/summary`)).json()) as unknown;
      expect(JSON.stringify(caught)).toContain('Caught');

      const connection = await Connection.connect({ address: `127.0.0.1:${ports.TEMPORAL_PORT}` });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      await connection.close();
      for (const name of ['TenantId', 'CustomerId', 'SegmentId', 'CampaignId', 'JourneyId']) expect(Object.keys(customAttributes ?? {})).toContain(name);
      expect(existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);

      // `npm run token` signs with the secret the running API generated into the data directory.
      const minted = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/token.ts', '--tenant', 'demo', '--scopes', 'crm:read,crm:write,crm:campaigns'], {
        cwd: root, env, encoding: 'utf8',
      });
      expect(minted.status).toBe(0);
      const auth = minted.stdout.trim();
      expect(auth.split('.')).toHaveLength(3);
      expect((await fetch(`http://127.0.0.1:${ports.PORT}/api/v1/journeys`, { headers: { authorization: `Bearer ${auth}` } })).status).toBe(200);
      const secret = readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim();
      const { payload } = await jwtVerify(auth, new TextEncoder().encode(secret));
      expect(payload).toMatchObject({ tenantId: 'demo', scope: 'crm:read crm:write crm:campaigns' });

      const created = await api(ports.PORT, 'POST', '/customers', auth, { firstName: 'Kept', email: 'kept@restart.test' });
      expect(created.status).toBe(201);
      const id = created.body.data.id as string;

      // The API is a child process of its own: when it crashes, it is restarted (and says so).
      const apiPid = await childPid(s, 'api');
      const workerPid = await childPid(s, 'worker');
      expect(apiPid).not.toBe(s.child.pid);
      expect(apiPid).not.toBe(workerPid);
      process.kill(apiPid, 'SIGKILL');
      await s.waitFor(new RegExp(`"child":"api","pid":${apiPid},"code":null,"signal":"SIGKILL","restartInMs":\\d+,"msg":"child exited; restarting"`));
      expect(await childPid(s, 'api', 2)).not.toBe(apiPid);
      await eventually('the restarted API is ready', async () => (await fetch(`http://127.0.0.1:${ports.PORT}/readyz`).catch(() => undefined))?.status === 200);

      // SIGTERM stops everything it started: the ports are free again.
      await stop(s, 'SIGTERM');
      for (const port of Object.values(ports)) expect(await answers(port), `port ${port} still answers`).toBe(false);

      // The same data on the next start; SIGHUP (the terminal closing) stops it as cleanly.
      s = await start();
      expect((await api(ports.PORT, 'GET', `/customers/${id}`, auth)).body.data.email).toBe('kept@restart.test');
      await stop(s, 'SIGHUP');

      // SIGKILL of npm start alone: the API and worker exit with it, the watchdog stops PostgreSQL and Temporal.
      s = await start();
      s.child.kill('SIGKILL');
      await s.exited;
      await eventually('every port is free after npm start was killed', async () => !(await Promise.all(Object.values(ports).map(answers))).some(Boolean));

      // SIGKILL of npm start and its watchdog together: PostgreSQL is left running (Temporal may be
      // too, until it writes to the closed pipe of its log and dies of SIGPIPE).
      s = await start();
      process.kill(Number(s.output().match(/"watchdog":(\d+)/)![1]), 'SIGKILL');
      s.child.kill('SIGKILL');
      await s.exited;
      await eventually('the API is gone', async () => !(await answers(ports.PORT)));
      expect(await answers(ports.PG_PORT)).toBe(true);

      // The next start stops the orphans of its data directory and starts on the same data.
      s = await start();
      expect(s.output()).toContain(`left running on ${path.join(dataDir, 'pg')}`);
      expect((await fetch(`http://127.0.0.1:${ports.TEMPORAL_UI_PORT}/`)).status).toBe(200);
      const read = await api(ports.PORT, 'GET', `/customers/${id}`, auth);
      expect(read.status).toBe(200);
      expect(read.body.data).toMatchObject({ id, firstName: 'Kept', email: 'kept@restart.test' });
      await stop(s, 'SIGTERM');
      for (const port of Object.values(ports)) expect(await answers(port), `port ${port} still answers`).toBe(false);
    } finally {
      for (const s of leftovers) s.child.kill('SIGKILL');
      killLeftovers(dataDir);
    }
  }, 900_000);
});
