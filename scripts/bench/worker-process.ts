// The worker as its own process for benchmarks (so its memory can be measured), with a trivial
// HTTP answer on PORT once it polls, so the bench knows it is ready.
import { createServer } from 'node:http';
import { loadConfig } from '../../platform/config.js';
import { createLogger } from '../../platform/logger.js';
import { installTemporalLogging, startWorker } from '../../worker/main.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL);
installTemporalLogging(log);
const worker = await startWorker(config, log);
const ready = createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => {
  ready.close();
  void worker.stop();
});
await worker.done;
