import {
  ActivityFailure, ApplicationFailure, condition, continueAsNew, defineQuery, defineSignal, log, patched, proxyActivities, proxyLocalActivities, setHandler,
  upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { EndStatus, StepDone } from '../activities/journeys.js';
import type { ConditionConfig, SendConfig, SplitConfig, UpdateConfig, VersionStep, WaitConfig } from '../domain/journeys/steps.js';
import { splitYes } from '../domain/journeys/split.js';
import { CustomerId, JourneyId, TenantId } from '../platform/search-attributes.js';

// One enrolment of one customer in one journey, interpreting the step graph of the journey version
// it started on. The dispatcher (worker/outbox.ts) starts it with signalWithStart under the id
// below; the API, archive, merges and events reach it through the signals; ops read the query.

/** `journey-<journeyId>-<customerId>` for a customer's first enrolment; re-entries add `-<sequence>`. */
export const journeyWorkflowId = (journeyId: string, customerId: string, sequence: number) =>
  sequence <= 1 ? `journey-${journeyId}-${customerId}` : `journey-${journeyId}-${customerId}-${sequence}`;

export interface JourneyEnrollmentInput {
  tenantId: string;
  journeyId: string;
  customerId: string;
  enrollmentId: string;
  /** The journey_versions row the enrolment runs on. */
  version: number;
}

/** An upstream event about the customer: the trigger itself, a WAIT's `untilEvent`, or `exitOn`. */
export interface JourneyEvent {
  type: string;
  activityId: string;
  occurredAt: string;
}

export const journeyEventSignal = defineSignal<[JourneyEvent]>('event');
/** Exit now (EXITED): the API, archive, merge, delete. */
export const exitJourneySignal = defineSignal<[{ reason: string }]>('exit');
/** The journey was paused / reactivated: hold before the next step / go on. */
export const pauseJourneySignal = defineSignal('pause');
export const resumeJourneySignal = defineSignal('resume');

export interface JourneyPosition {
  stepId: string | null;
  stepNumber: number | null;
  stepType: string | null;
  waitingUntil: string | null;
  paused: boolean;
}
export const currentStepQuery = defineQuery<JourneyPosition>('currentStep');

// ---------------------------------------------------------------------------------------------
// The interpreter. Pure workflow code: every read and write is an activity (activities/journeys.ts),
// every instant is the workflow's clock. PostgreSQL holds what reads show (per-step records, the
// current step, waitingUntil, the end); the workflow holds only where the enrolment is.

const remote = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
// The steps' short database work (load the version, enter a step, start a wait, judge a condition,
// update the profile, end) runs as local activities: in the worker, within the workflow task, with a
// marker in history instead of a server round trip each, so an enrolment costs the server a few
// tasks rather than a dozen. The send stays a regular activity (heartbeats, minutes, any worker).
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
const sender = proxyActivities<Activities>({
  // The send goes through sendDeliveries, which heartbeats: a dead worker's send is retried soon,
  // and the delivery row's unique key and claim keep the retry from sending twice.
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** A paused enrolment looks at its journey's status this often, should a resume signal be lost. */
const PAUSE_RECHECK_MS = 60 * 60 * 1000;
/** Past this many history events the run continues as new (a journey looping through WAITs forever). */
const MAX_HISTORY = 1_000;
/** Event ids remembered for deduplication (a repeat comes soon after the first, from the outbox). */
const SEEN_EVENTS = 200;

/** What a run hands to its continuation (continueAsNew). */
export interface JourneyCarry {
  steps: VersionStep[];
  timezone: string | null;
  exitOn: string | null;
  /** The next step to enter; null: the enrolment has run off its graph's end (completes). */
  stepId: string | null;
  /** The step finished last, not yet recorded (recorded as the next one is entered). */
  previous: StepDone | null;
  visits: Record<string, number>;
  paused: boolean;
  seen: string[];
  /** A WAIT the run continued as new during (signals filled its history): resumed, not entered again. */
  waiting?: { stepId: string; until: string; untilEvent: string | null };
}

class StepFailed extends Error {}

export async function journeyEnrollmentWorkflow(input: JourneyEnrollmentInput, carried?: JourneyCarry): Promise<string> {
  // Events that came before the workflow could judge them are kept, not dropped: an exitOn event
  // before the version is loaded, an untilEvent event while the WAIT is being started. Runs begun
  // before this change replay as they ran (they dropped them).
  const keepEarlyEvents = patched('journey-early-events');
  // Runs begun with regular activities replay with them.
  const acts = patched('journey-local-activities') ? local : remote;
  // Signals during a long WAIT (events about the customer) continue the run as new mid-wait; runs
  // begun before this change replay as they ran (they waited on, whatever their history).
  const continueWhileWaiting = patched('journey-continue-while-waiting');
  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY;
  const ref = { tenantId: input.tenantId, journeyId: input.journeyId, enrollmentId: input.enrollmentId };
  const now = () => new Date().toISOString();
  /** Events received before the version (and so exitOn) was known. */
  let early: JourneyEvent[] | null = carried ? null : [];

  let paused = carried?.paused ?? false;
  let exit: { reason: string } | undefined;
  // Read through a call: signal handlers set it, which the compiler's narrowing does not see.
  const exitRequest = (): { reason: string } | undefined => exit;
  const seen: string[] = carried?.seen ? [...carried.seen] : [];
  /** The WAIT in progress for an event, and whether it came. */
  let waitingFor: string | null = null;
  let eventCame = false;
  let exitOn: string | null = carried?.exitOn ?? null;
  const position: JourneyPosition = { stepId: null, stepNumber: null, stepType: null, waitingUntil: null, paused };

  setHandler(journeyEventSignal, (event) => {
    if (seen.includes(event.activityId)) return;
    seen.push(event.activityId);
    if (seen.length > SEEN_EVENTS) seen.splice(0, seen.length - SEEN_EVENTS);
    if (keepEarlyEvents && early !== null) {
      early.push(event);
      return;
    }
    if (exitOn !== null && event.type === exitOn) exit ??= { reason: `exitOn:${event.type}` };
    else if (waitingFor !== null && event.type === waitingFor) eventCame = true;
  });
  setHandler(exitJourneySignal, ({ reason }) => {
    exit ??= { reason };
  });
  setHandler(pauseJourneySignal, () => {
    paused = true;
  });
  setHandler(resumeJourneySignal, () => {
    paused = false;
  });
  setHandler(currentStepQuery, () => ({ ...position, paused }));

  // The starter (the dispatcher) sets them; a workflow started otherwise gets them here.
  const attributes = workflowInfo().typedSearchAttributes;
  const missing = [
    [TenantId, input.tenantId], [JourneyId, input.journeyId], [CustomerId, input.customerId],
  ].filter(([key]) => attributes.get(key as typeof TenantId) === undefined) as [typeof TenantId, string][];
  if (missing.length) upsertSearchAttributes(missing.map(([key, value]) => ({ key, value })));

  let state: JourneyCarry;
  if (carried) state = carried;
  else {
    try {
      const loaded = await acts.loadJourneyVersion({ ...ref, version: input.version });
      if (loaded.triggerActivityId && !seen.includes(loaded.triggerActivityId)) seen.push(loaded.triggerActivityId);
      const trigger = loaded.steps.find((s) => s.type === 'TRIGGER') ?? null;
      state = { steps: loaded.steps, timezone: loaded.timezone, exitOn: loaded.exitOn, stepId: trigger?.id ?? null, previous: null, visits: {}, paused, seen };
      exitOn = loaded.exitOn;
      // An exitOn event that came while the version was loading (not the one that enrolled the customer).
      const exitEvent = early?.find((e) => exitOn !== null && e.type === exitOn && e.activityId !== loaded.triggerActivityId);
      if (exitEvent) exit ??= { reason: `exitOn:${exitEvent.type}` };
      early = null;
      if (!trigger) return end('FAILED', 'the version has no TRIGGER step', null);
    } catch (err) {
      return end('FAILED', failureMessage(err), null);
    }
  }
  const byId = new Map(state.steps.map((s) => [s.id, s]));

  async function end(status: EndStatus, reason: string | null, last: StepDone | null): Promise<string> {
    await acts.finishJourneyEnrollment({ ...ref, status, reason, at: now(), last });
    position.waitingUntil = null;
    return status;
  }

  for (;;) {
    if (exit) return end('EXITED', exit.reason, state.previous);
    // A WAIT this run resumes (its predecessor continued as new during it) is not entered again,
    // nor held by a pause: it was under way.
    const resumed = state.waiting?.stepId === state.stepId ? state.waiting : undefined;
    if (!resumed && historyFull()) {
      await continueAsNew<typeof journeyEnrollmentWorkflow>(input, { ...state, paused, seen: [...seen] });
    }
    // Paused: hold before the next step until resumed (or, should the resume be lost, the journey
    // is found ACTIVE again at the next look).
    if (paused && !resumed) {
      if (await condition(() => !paused || exit !== undefined, PAUSE_RECHECK_MS)) continue;
      // No resume yet: a look at the journey (the signal may be lost), which entering the step takes.
    }
    const stepId = state.stepId;
    if (stepId === null) return end('COMPLETED', null, state.previous);
    const step = byId.get(stepId);
    if (!step) return end('FAILED', `step ${stepId} is not in version ${input.version}`, state.previous);

    state.waiting = undefined;
    const visit = resumed ? state.visits[stepId]! : (state.visits[stepId] ?? 0) + 1;
    if (!resumed) {
      const entered = await acts.enterJourneyStep({
        ...ref, step: { id: step.id, stepNumber: step.stepNumber, type: step.type, name: step.name }, visit, at: now(), previous: state.previous,
      });
      state.previous = null;
      if (entered.enrollment !== 'ACTIVE') {
        log.info('the enrolment was ended elsewhere; stopping', { enrollmentId: input.enrollmentId, status: entered.enrollment });
        return entered.enrollment;
      }
      if (entered.journey === 'ARCHIVED') return end('EXITED', 'archived', null);
      if (entered.journey === 'PAUSED') {
        paused = true;
        continue;
      }
      paused = false;
    }
    state.visits[stepId] = visit;
    Object.assign(position, { stepId: step.id, stepNumber: step.stepNumber, stepType: step.type, waitingUntil: null });

    let outcome: string | null = null;
    let next: string | null = step.nextStepId;
    try {
      switch (step.type) {
        case 'TRIGGER':
          break;
        case 'END':
          next = null;
          break;
        case 'SEND': {
          const config = step.config as SendConfig;
          for (;;) {
            const sent = await sender.sendJourneyMessage({ ...ref, customerId: input.customerId, stepId, visit, config, at: now() });
            if (sent.outcome === 'ENDED') return 'ENDED';
            if (sent.outcome !== 'WAIT') {
              outcome = sent.outcome;
              break;
            }
            // Held by the campaign's quiet hours (or a deferred retry): back when it may go.
            await condition(() => exit !== undefined, Math.max(1_000, Date.parse(sent.nextSendAt!) - Date.now()));
            if (exit) break;
          }
          break;
        }
        case 'WAIT': {
          const config = step.config as WaitConfig;
          // Listening from the step's start: the event may come while the wait is being started.
          if (keepEarlyEvents || resumed) {
            waitingFor = config.untilEvent ?? null;
            eventCame = false;
          }
          const until = resumed ? resumed.until : (await acts.startJourneyWait({ ...ref, customerId: input.customerId, config, at: now(), timezone: state.timezone })).until;
          if (until === null) return 'ENDED';
          position.waitingUntil = until;
          if (!keepEarlyEvents && !resumed) {
            waitingFor = config.untilEvent ?? null;
            eventCame = false;
          }
          for (;;) {
            const ms = Date.parse(until) - Date.now();
            if (ms <= 0) break;
            const woken = await condition(() => eventCame || exit !== undefined || (continueWhileWaiting && historyFull()), ms);
            if (!woken || eventCame || exit !== undefined) break;
            // The customer's events filled this run's history during the wait: the next run waits on.
            await continueAsNew<typeof journeyEnrollmentWorkflow>(input, {
              ...state, stepId, paused, seen: [...seen], waiting: { stepId, until, untilEvent: config.untilEvent ?? null },
            });
          }
          if (config.untilEvent !== undefined) outcome = eventCame ? 'EVENT' : 'TIMEOUT';
          waitingFor = null;
          eventCame = false;
          position.waitingUntil = null;
          break;
        }
        case 'CONDITION': {
          const yes = await acts.evaluateJourneyCondition({ ...ref, customerId: input.customerId, config: step.config as ConditionConfig });
          outcome = yes ? 'YES' : 'NO';
          next = yes ? step.nextStepYesId : step.nextStepNoId;
          break;
        }
        case 'SPLIT': {
          const yes = splitYes(input.enrollmentId, step.id, (step.config as SplitConfig).percentYes);
          outcome = yes ? 'YES' : 'NO';
          next = yes ? step.nextStepYesId : step.nextStepNoId;
          break;
        }
        case 'UPDATE': {
          const done = await acts.applyJourneyUpdate({ ...ref, customerId: input.customerId, config: step.config as UpdateConfig });
          if (done === 'ENDED') return 'ENDED';
          outcome = 'UPDATED';
          break;
        }
        default:
          throw new StepFailed(`unknown step type ${String(step.type)}`);
      }
    } catch (err) {
      if (!(err instanceof StepFailed) && !(err instanceof ActivityFailure)) throw err;
      // Failed for good (activities retry the rest): the step and the enrolment are FAILED.
      const error = failureMessage(err);
      return end('FAILED', error, { stepId, status: 'FAILED', outcome: null, error, at: now() });
    }
    const exited = exitRequest();
    if (exited) {
      // Exited during the step. A wait cut short (or a send held back and never made) is closed by the
      // end as SKIPPED; a step that did its work (a message sent, a profile updated) is recorded done.
      const cutShort = step.type === 'WAIT' || (step.type === 'SEND' && outcome === null);
      return end('EXITED', exited.reason, cutShort ? null : { stepId, status: 'COMPLETED', outcome, at: now() });
    }
    state.previous = { stepId, status: 'COMPLETED', outcome, at: now() };
    state.stepId = next;
  }
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type) return `${cause.type}: ${cause.message}`;
  return err instanceof Error ? (cause as Error).message : String(err);
}
