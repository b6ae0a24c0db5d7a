// The baseline workflow of the journey benchmarks: it takes the same signal an enrolment does and,
// given an instant, sleeps until it on a durable timer. No activity, no database.
import { condition, defineSignal, setHandler } from '@temporalio/workflow';

export const benchEvent = defineSignal<[unknown]>('event');

export async function benchNoopWorkflow(until?: string): Promise<void> {
  setHandler(benchEvent, () => undefined);
  if (until) await condition(() => false, Math.max(1, Date.parse(until) - Date.now()));
}
