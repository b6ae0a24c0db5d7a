import { Client, Connection, ScheduleNotFoundError, WorkflowNotFoundError, type ScheduleOptions } from '@temporalio/client';
import type { Config } from './config.js';
import { temporalAddress } from './config.js';

// Lazy: the API starts (and /readyz reports 503) while Temporal is still coming up.
export function createTemporalClient(config: Config): Client {
  const connection = Connection.lazy({ address: temporalAddress(config) });
  return new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
}

export interface TemporalProbe {
  /** Resolves when the frontend answers within `timeoutMs`; one attempt, nothing left running. */
  check(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Readiness checks get a connection of their own without the SDK's gRPC retry interceptor: its
 * retries outlive the check (a timer re-dials after the caller gave up), and one that fires after
 * the connection closed throws "Channel has been shut down" from a timer, where nobody catches it.
 */
export function createTemporalProbe(config: Config): TemporalProbe {
  const connection = Connection.lazy({ address: temporalAddress(config), interceptors: [] });
  return {
    check: (timeoutMs) => connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.getSystemInfo({})).then(() => undefined),
    close: () => connection.close(),
  };
}

/**
 * Creates the schedule, or brings an existing one to `options`' spec, action and paused state
 * (its other state, such as counts and a note, stays): the call is the same for create and update.
 */
export async function upsertSchedule(client: Client, options: ScheduleOptions & { state: { paused: boolean; note?: string } }): Promise<void> {
  const { scheduleId, spec, action, state } = options;
  try {
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action, state: { ...previous.state, paused: state.paused } }));
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create(options);
  }
}

/**
 * A signalWithStart, made once more if it answers "workflow not found": the run it found closed
 * before the signal reached it (the time-skipping test server answers so), and the second call,
 * finding none running, starts one. Without it the caller would fail, or back off, for nothing.
 */
export async function signalWithStartAgainIfClosed<T>(signalWithStart: () => Promise<T>): Promise<T> {
  try {
    return await signalWithStart();
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    return signalWithStart();
  }
}
