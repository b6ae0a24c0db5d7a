// Fetches Temporal's time-skipping test server (io.temporal:temporal-test-server, a Java program)
// and its dependencies from Maven Central into the cache, and writes a launcher that
// `@temporalio/testing` runs as an `existing-path` executable. Tests that need timers to jump
// (days-long waits in seconds) use it; it has no Schedules, so those tests use the dev server.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { searchAttributes } from '../platform/search-attributes.js';
import { cacheDir, say } from './cache.js';
import { stopProcess } from './embedded-postgres.js';
import { freePort } from './ports.js';

export const TEST_SERVER_VERSION = '1.38.0';

export function resolveTemporalTestServer(): string {
  const dir = cacheDir(`temporal-test-server-${TEST_SERVER_VERSION}`);
  const launcher = path.join(dir, 'temporal-test-server');
  const lib = path.join(dir, 'lib');
  if (!(existsSync(lib) && readdirSync(lib).length > 0)) fetchServer(dir, lib);
  // Called as `<executable> <port> [extra args]`; the JVM is tuned for start-up (C1 only, serial
  // GC, shared classes) rather than peak speed.
  const script = `#!/bin/sh\nexec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -cp '${lib}/*' io.temporal.testserver.TestServer "$@"\n`;
  if (!existsSync(launcher) || readFileSync(launcher, 'utf8') !== script) writeFileSync(launcher, script, { mode: 0o755 });
  return launcher;
}

function fetchServer(dir: string, lib: string): void {
  say(`fetching io.temporal:temporal-test-server:${TEST_SERVER_VERSION} and its dependencies with Maven...`);
  writeFileSync(path.join(dir, 'pom.xml'), `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.crm</groupId>
  <artifactId>temporal-test-server-launcher</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${TEST_SERVER_VERSION}</version>
    </dependency>
  </dependencies>
</project>
`);
  // Maven's own output goes to stderr: stdout carries only the launcher path.
  execFileSync('mvn', ['-q', '-B', '-Dstyle.color=never', 'dependency:copy-dependencies', `-DoutputDirectory=${lib}`], {
    cwd: dir,
    stdio: ['ignore', process.stderr, 'inherit'],
  });
  say(`test server fetched into ${lib}`);
}

// temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD (the proto package is not ours to import).
const INDEXED_VALUE_TYPE_KEYWORD = 2;

const listening = (port: number) => new Promise<boolean>((resolve) => {
  const socket = connect({ host: '127.0.0.1', port });
  socket.once('connect', () => {
    socket.destroy();
    resolve(true);
  });
  socket.once('error', () => resolve(false));
});

/**
 * A time-skipping test environment on a test server we start and wait for ourselves. The SDK's
 * own launcher (`createTimeSkipping`) gives the JVM a fixed 5 s to listen (sdk-core's
 * ephemeral_server), which a loaded machine misses, failing a test run by chance. The SDK builds
 * a time-skipping environment on an existing server only through its private `create`.
 */
export async function startTimeSkippingEnvironment(timeoutMs = 180_000): Promise<{ env: TestWorkflowEnvironment; address: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(resolveTemporalTestServer(), [String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const deadline = Date.now() + timeoutMs;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopProcess(child, 'SIGTERM');
      throw new Error(`Temporal test server did not listen on ${port} within ${timeoutMs}ms: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const create = (TestWorkflowEnvironment as unknown as { create(opts: object): Promise<TestWorkflowEnvironment> }).create;
  const env = await create.call(TestWorkflowEnvironment, {
    server: { type: 'existing' }, address: `127.0.0.1:${port}`, namespace: 'default', supportsTimeSkipping: true,
  });
  // The platform's workflows set its search attributes, as on the dev server (which registers them at start).
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(searchAttributes.map((a) => [a.name, INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return {
    env,
    address: `127.0.0.1:${port}`,
    async stop() {
      await env.teardown();
      await stopProcess(child, 'SIGTERM');
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${resolveTemporalTestServer()}\n`);
}
