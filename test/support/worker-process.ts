// A campaign worker as its own process, for tests that kill one (SIGKILL) mid-send. Unlike
// `npm run worker` it creates no platform schedules (the suite's Temporal server is shared by every
// test file). Configured by the environment; says `polling <pid>` on stdout once it polls.
import { activityDbTimeouts, openOrm } from '../../db/orm.js';
import { loadConfig } from '../../platform/config.js';
import { createLogger } from '../../platform/logger.js';
import { installTemporalLogging } from '../../worker/main.js';
import { createWorker } from '../../worker/worker.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL);
installTemporalLogging(log);
const orm = await openOrm(config.DATABASE_URL!, activityDbTimeouts(config));
const worker = await createWorker(config, { orm, config, log });
const running = worker.run();
process.stdout.write(`polling ${process.pid}\n`);
await running;
await orm.close();
