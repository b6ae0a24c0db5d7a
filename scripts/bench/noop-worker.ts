// A worker that runs only the baseline workflow (noop-workflow.ts), in its own process so its
// memory can be measured beside the platform worker's; answers on PORT once it polls.
import { createServer } from 'node:http';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';

Runtime.install({ logger: new DefaultLogger('WARN') });

const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! });
const worker = await Worker.create({
  connection, taskQueue: process.env.TEMPORAL_TASK_QUEUE!, workflowsPath: new URL('./noop-workflow.ts', import.meta.url).pathname,
});
const ready = createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => {
  ready.close();
  worker.shutdown();
});
await worker.run();
await connection.close();
