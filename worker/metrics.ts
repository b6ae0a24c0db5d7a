import { CancelledFailure, type Context } from '@temporalio/activity';
import type { MetricCounter } from '@temporalio/common';
import { Runtime, type ActivityInterceptors, type RuntimeOptions } from '@temporalio/worker';
import type { Config } from '../platform/config.js';

/**
 * The Temporal Core runtime serves its own metrics (workflow and activity task latencies, poller
 * and slot use, sticky cache, ...) in the Prometheus format on WORKER_METRICS_PORT, and so do the
 * counters activities add through their metric meter (below). 0 turns the endpoint off.
 */
export function workerTelemetry(config: Config): RuntimeOptions['telemetryOptions'] {
  if (!config.WORKER_METRICS_PORT) return undefined;
  return {
    metrics: {
      prometheus: { bindAddress: `0.0.0.0:${config.WORKER_METRICS_PORT}`, countersTotalSuffix: true, useSecondsForDurations: true },
    },
  };
}

export type ActivityOutcome = 'completed' | 'failed' | 'cancelled';

let outcomes: MetricCounter | undefined;

/**
 * `crm_activity_outcomes_total{activity_type, outcome, namespace, task_queue}`: how each activity
 * execution ended. One counter on the runtime's meter (created on first use, after the runtime is
 * installed), labelled like the SDK's own activity metrics.
 */
export function activityOutcomes(ctx: Context): ActivityInterceptors {
  return {
    inbound: {
      async execute(input, next) {
        const count = (outcome: ActivityOutcome) => {
          outcomes ??= Runtime.instance().metricMeter.createCounter('crm_activity_outcomes', undefined, 'Activity executions by activity type and how they ended');
          outcomes.add(1, { activity_type: ctx.info.activityType, outcome, namespace: ctx.info.activityNamespace, task_queue: ctx.info.taskQueue });
        };
        try {
          const result = await next(input);
          count('completed');
          return result;
        } catch (err) {
          count(err instanceof CancelledFailure ? 'cancelled' : 'failed');
          throw err;
        }
      },
    },
  };
}
