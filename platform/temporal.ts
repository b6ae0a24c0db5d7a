import { Client, Connection } from '@temporalio/client';
import type { Config } from './config.js';
import { temporalAddress } from './config.js';

// Lazy: the API starts (and /readyz reports 503) while Temporal is still coming up.
export function createTemporalClient(config: Config): Client {
  const connection = Connection.lazy({ address: temporalAddress(config) });
  return new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
}
