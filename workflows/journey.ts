import { defineQuery, defineSignal } from '@temporalio/workflow';

// One enrolment of one customer in one journey, interpreting the step graph of the journey version
// it started on. CONTRACT (shared by the enrolment dispatcher and the interpreter; the body is
// being built): the id, the input, the signals and the query below.

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
