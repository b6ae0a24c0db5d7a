// Fetches Temporal's time-skipping test server (io.temporal:temporal-test-server, a Java program)
// and its dependencies from Maven Central into the cache, and writes a launcher that
// `@temporalio/testing` runs as an `existing-path` executable. Tests that need timers to jump
// (days-long waits in seconds) use it; it has no Schedules, so those tests use the dev server.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheDir, say } from './cache.js';

export const TEST_SERVER_VERSION = '1.38.0';

export function resolveTemporalTestServer(): string {
  const dir = cacheDir(`temporal-test-server-${TEST_SERVER_VERSION}`);
  const launcher = path.join(dir, 'temporal-test-server');
  const lib = path.join(dir, 'lib');
  if (!(existsSync(lib) && readdirSync(lib).length > 0)) fetchServer(dir, lib);
  // The SDK calls `<executable> <port> [extra args]` and gives the server 5 s to answer, so the JVM
  // is tuned for start-up (C1 only, serial GC, shared classes) rather than peak speed.
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

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${resolveTemporalTestServer()}\n`);
}
