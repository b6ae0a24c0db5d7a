import { createRequire } from 'node:module';
import type { temporal } from '@temporalio/proto';

// Workflow histories as JSON files, for the replay tests. protobufjs's own object form (enums by
// name, 64-bit integers and bytes as strings): @temporalio/common's historyToJSON needs the
// protobufjs it was built with, which this install nests apart from @temporalio/proto's.

// CommonJS, loaded as such (an ESM import's interop differs between Node and vitest).
const proto = createRequire(import.meta.url)('@temporalio/proto') as { temporal: typeof temporal };
const History = proto.temporal.api.history.v1.History;

export function historyToFile(history: temporal.api.history.v1.IHistory): string {
  const message = History.fromObject(history as Record<string, unknown>);
  return `${JSON.stringify(History.toObject(message, { longs: String, enums: String, bytes: String }), null, 1)}\n`;
}

export function historyFromFile(text: string): temporal.api.history.v1.History {
  return History.fromObject(JSON.parse(text) as Record<string, unknown>);
}
