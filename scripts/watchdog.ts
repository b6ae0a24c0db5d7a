// Kills what `npm start` started if `npm start` itself dies without cleaning up (SIGKILL, OOM):
// PostgreSQL and the Temporal dev server are not Node processes and cannot watch their parent.
// The supervisor writes `watch <pid> <signal>` / `forget <pid>` lines to our stdin; when stdin
// ends (the supervisor is gone, however it went) every pid still watched gets its signal, then
// SIGKILL after a grace period. It runs in its own process group and ignores the signals a
// terminal sends to the group, so Ctrl-C cannot take it down before the supervisor.
import { createInterface } from 'node:readline';

const GRACE_MS = 20_000; // as long as PostgreSQL may take for a fast shutdown under load
const watched = new Map<number, NodeJS.Signals>();

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const [verb, pid, signal] = line.trim().split(/\s+/);
    if (verb === 'watch') watched.set(Number(pid), (signal as NodeJS.Signals) ?? 'SIGTERM');
    if (verb === 'forget') watched.delete(Number(pid));
  })
  .on('close', async () => {
    if (!watched.size) process.exit(0);
    for (const [pid, signal] of watched) {
      try {
        process.kill(pid, signal);
        process.stderr.write(`[watchdog] npm start went away; sent ${signal} to ${pid}\n`);
      } catch {
        watched.delete(pid);
      }
    }
    const deadline = Date.now() + GRACE_MS;
    while ([...watched.keys()].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    for (const pid of watched.keys()) if (alive(pid)) process.kill(pid, 'SIGKILL');
    process.exit(0);
  });
