import type { JourneyStatus } from '../../db/entities/enums.js';
import { AppError } from '../../platform/errors.js';

// The journey state machine (graphql-api.md: activateJourney, pauseJourney, archiveJourney), in one
// place, like domain/campaigns/state.ts. Every move happens in a transaction holding the journey's
// row lock (domain/journeys/journeys.ts), so two concurrent actions see each other's outcome.

export type JourneyAction = 'activate' | 'pause' | 'archive';

const TRANSITIONS: Record<JourneyAction, { from: readonly JourneyStatus[]; to: JourneyStatus }> = {
  // PAUSED → ACTIVE resumes the enrolments held by the pause.
  activate: { from: ['DRAFT', 'PAUSED'], to: 'ACTIVE' },
  pause: { from: ['ACTIVE'], to: 'PAUSED' },
  // Running enrolments exit (EXITED, reason `archived`).
  archive: { from: ['DRAFT', 'ACTIVE', 'PAUSED'], to: 'ARCHIVED' },
};

const ACTIONS = Object.keys(TRANSITIONS) as JourneyAction[];

export function allowedJourneyActions(status: JourneyStatus): JourneyAction[] {
  return ACTIONS.filter((a) => TRANSITIONS[a].from.includes(status));
}

export function targetStatus(action: JourneyAction): JourneyStatus {
  return TRANSITIONS[action].to;
}

export function invalidJourneyState(id: string, status: JourneyStatus, action: JourneyAction | 'edit'): AppError {
  const allowed = allowedJourneyActions(status);
  const what = action === 'edit' ? 'it cannot be edited' : `cannot ${action} it`;
  return new AppError(
    'INVALID_STATE',
    `journey ${id} is ${status}: ${what}; allowed: ${allowed.length ? allowed.join(', ') : 'none'}`,
    { currentStatus: status, allowedActions: allowed },
  );
}

/** Throws INVALID_STATE unless `action` is allowed from `status`. */
export function assertJourneyTransition(id: string, status: JourneyStatus, action: JourneyAction): void {
  if (!TRANSITIONS[action].from.includes(status)) throw invalidJourneyState(id, status, action);
}

/** ARCHIVED journeys are history: neither the journey nor its steps change any more. */
export function assertEditable(id: string, status: JourneyStatus): void {
  if (status === 'ARCHIVED') throw invalidJourneyState(id, status, 'edit');
}
