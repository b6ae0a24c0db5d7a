import type { EntityManager } from '@mikro-orm/postgresql';
import type { JourneyStepType } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { AppError, fromZod } from '../../platform/errors.js';
import { compileCriteria, type CriteriaLimits } from '../segments/criteria.js';
import { STEP_CONFIG, TRIGGER_CONFIG, TRIGGER_TYPES, type TriggerType, type VersionStep } from './steps.js';

// Whole-graph validation of a journey's working copy (its trigger and its steps): what must hold
// before a version is published (activateJourney, or any edit of an ACTIVE journey). Every fault is
// collected, not just the first, so one answer tells the builder everything left to fix.
// Fields are named by the step's index in stepNumber order (the order journeySteps answers in):
// `steps[3].config.templateId`.

export interface GraphFault {
  field: string;
  message: string;
}

export interface JourneyGraph {
  triggerType: string;
  triggerConfig: Record<string, unknown> | null | undefined;
  /** The working copy, in stepNumber order. */
  steps: readonly VersionStep[];
}

type Link = 'nextStepId' | 'nextStepYesId' | 'nextStepNoId';
const LINKS: readonly Link[] = ['nextStepId', 'nextStepYesId', 'nextStepNoId'];
const BRANCHING = new Set<JourneyStepType>(['CONDITION', 'SPLIT']);

/** The links a step of `type` must have (and the only ones it may have). */
export function linksOf(type: JourneyStepType): readonly Link[] {
  if (type === 'END') return [];
  return BRANCHING.has(type) ? ['nextStepYesId', 'nextStepNoId'] : ['nextStepId'];
}

const label = (s: VersionStep) => `step ${s.stepNumber}${s.name ? ` "${s.name}"` : ''} (${s.type}, ${s.id})`;

function zodFaults(schema: { safeParse(v: unknown): { success: boolean; error?: unknown } }, value: unknown, prefix: string): GraphFault[] {
  const parsed = schema.safeParse(value);
  if (parsed.success) return [];
  const error = fromZod(parsed.error as never, prefix);
  return (error.details?.fields as GraphFault[] | undefined) ?? [{ field: prefix, message: error.message }];
}

/** The trigger: a known type and its config. */
export function triggerFaults(triggerType: string, triggerConfig: unknown): GraphFault[] {
  if (!TRIGGER_TYPES.includes(triggerType as TriggerType)) {
    return [{ field: 'triggerType', message: `triggerType: ${JSON.stringify(triggerType)} is not one of ${TRIGGER_TYPES.join(', ')}` }];
  }
  return zodFaults(TRIGGER_CONFIG[triggerType as TriggerType], triggerConfig ?? {}, 'triggerConfig').map((f) => ({ field: f.field, message: `${f.field}: ${f.message}` }));
}

/** One step's config on its own (its type's schema; a CONDITION's criteria compile). `prefix` names it. */
export function configFaults(type: JourneyStepType, config: unknown, prefix: string, limits?: CriteriaLimits): GraphFault[] {
  const faults = zodFaults(STEP_CONFIG[type], config, prefix);
  if (!faults.length && type === 'CONDITION') {
    const criteria = (config as { criteria?: unknown }).criteria;
    if (criteria !== undefined) {
      try {
        compileCriteria(criteria, `${prefix}.criteria`, limits);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        faults.push({ field: typeof err.details?.field === 'string' ? err.details.field : `${prefix}.criteria`, message: err.message });
      }
    }
  }
  return faults.map((f) => ({ field: f.field, message: f.message.startsWith(`${f.field}:`) ? f.message : `${f.field}: ${f.message}` }));
}

/**
 * Everything that can be judged from the graph alone: the trigger, each step's config, one
 * TRIGGER, links by type and within the journey, reachability, loops without a WAIT.
 */
export function structuralFaults(graph: JourneyGraph, limits?: CriteriaLimits): GraphFault[] {
  const faults: GraphFault[] = [...triggerFaults(graph.triggerType, graph.triggerConfig)];
  const steps = graph.steps;
  const index = new Map(steps.map((s, i) => [s.id, i]));
  const at = (i: number) => `steps[${i}]`;

  steps.forEach((s, i) => faults.push(...configFaults(s.type, s.config, `${at(i)}.config`, limits)));

  const triggers = steps.map((s, i) => [s, i] as const).filter(([s]) => s.type === 'TRIGGER');
  if (triggers.length !== 1) {
    faults.push({
      field: triggers.length ? `${at(triggers[1]![1])}` : 'steps',
      message: triggers.length
        ? `a journey has exactly one TRIGGER step; found ${triggers.length}: ${triggers.map(([s, i]) => `${at(i)} ${label(s)}`).join(', ')}`
        : 'a journey has exactly one TRIGGER step; found none',
    });
  }

  // Links: the ones its type needs, none it does not, each to a step of this journey.
  steps.forEach((s, i) => {
    const needed = linksOf(s.type);
    for (const link of LINKS) {
      const target = s[link];
      const field = `${at(i)}.${link}`;
      if (needed.includes(link) && !target) {
        faults.push({
          field,
          message: BRANCHING.has(s.type)
            ? `${field}: a ${s.type} step needs both branches (nextStepYesId and nextStepNoId); ${label(s)} has no ${link === 'nextStepYesId' ? 'yes' : 'no'} branch`
            : `${field}: a ${s.type} step goes on to a next step (end a path with an END step); ${label(s)} has none`,
        });
      } else if (!needed.includes(link) && target) {
        faults.push({
          field,
          message: s.type === 'END'
            ? `${field}: an END step has no next step; ${label(s)} links to ${target}`
            : `${field}: a ${s.type} step goes on by ${needed.join(' and ')}, not ${link}; ${label(s)} sets it`,
        });
      } else if (target && !index.has(target)) {
        faults.push({ field, message: `${field}: ${target} is not a step of this journey` });
      }
    }
  });

  // Reachability from the TRIGGER(s), through the links each type uses.
  const next = (s: VersionStep) => linksOf(s.type).map((l) => s[l]).filter((t): t is string => !!t && index.has(t));
  const reached = new Set<string>();
  const pending = triggers.map(([s]) => s.id);
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    if (reached.has(id)) continue;
    reached.add(id);
    pending.push(...next(steps[index.get(id)!]!));
  }
  if (triggers.length) {
    steps.forEach((s, i) => {
      if (!reached.has(s.id)) faults.push({ field: at(i), message: `${at(i)}: ${label(s)} is not reachable from the TRIGGER` });
    });
  }

  // A loop must pass through a WAIT that waits each time round (a duration, an event's timeout), or
  // an enrolment would spin without end: a WAIT until a date waits once, then lets every later
  // visit through at once. Strongly connected components of the graph without those WAIT steps
  // (Tarjan, iterative).
  const waitsEachTime = (s: VersionStep) => s.type === 'WAIT' && s.config?.until === undefined;
  const nodes = steps.filter((s) => !waitsEachTime(s));
  const inGraph = new Set(nodes.map((s) => s.id));
  const succ = (id: string) => next(steps[index.get(id)!]!).filter((t) => inGraph.has(t));
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  let counter = 0;
  for (const root of nodes) {
    if (order.has(root.id)) continue;
    const work: { id: string; children: string[] }[] = [];
    const open = (id: string) => {
      order.set(id, counter);
      low.set(id, counter++);
      stack.push(id);
      onStack.add(id);
      work.push({ id, children: succ(id) });
    };
    open(root.id);
    while (work.length) {
      const frame = work.at(-1)!;
      const child = frame.children.shift();
      if (child !== undefined) {
        if (!order.has(child)) open(child);
        else if (onStack.has(child)) low.set(frame.id, Math.min(low.get(frame.id)!, order.get(child)!));
        continue;
      }
      work.pop();
      const parent = work.at(-1);
      if (parent) low.set(parent.id, Math.min(low.get(parent.id)!, low.get(frame.id)!));
      if (low.get(frame.id) === order.get(frame.id)) {
        const component: string[] = [];
        let id: string;
        do {
          id = stack.pop()!;
          onStack.delete(id);
          component.push(id);
        } while (id !== frame.id);
        const selfLoop = component.length === 1 && succ(component[0]!).includes(component[0]!);
        if (component.length > 1 || selfLoop) {
          const members = component.map((c) => index.get(c)!).sort((x, y) => x - y);
          faults.push({
            field: at(members[0]!),
            message: `${at(members[0]!)}: ${members.map((m) => at(m)).join(', ')} (${members.map((m) => label(steps[m]!)).join(', ')}) form a loop without a WAIT step that waits each time (a duration, or an event with its timeout)`,
          });
        }
      }
    }
  }
  return faults;
}

/**
 * Templates and segments the graph names: each exists in the tenant and fits its use. Read FOR SHARE:
 * a delete running at the same time (deleteTemplate locks the row) either finds this version using
 * it, or goes first and this finds it gone.
 */
export async function referenceFaults(em: EntityManager, tenantId: string, graph: JourneyGraph): Promise<GraphFault[]> {
  const faults: GraphFault[] = [];
  const templateUses: { id: string; field: string; channel: string }[] = [];
  const segmentUses: { id: string; field: string; staticOnly: boolean }[] = [];
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const trigger = graph.triggerConfig as { segmentId?: unknown } | null | undefined;
  if (graph.triggerType === 'SEGMENT_ENTRY' && typeof trigger?.segmentId === 'string' && uuid.test(trigger.segmentId)) {
    segmentUses.push({ id: trigger.segmentId.toLowerCase(), field: 'triggerConfig.segmentId', staticOnly: false });
  }
  graph.steps.forEach((s, i) => {
    const c = s.config as Record<string, unknown>;
    const at = `steps[${i}].config`;
    if (s.type === 'SEND' && typeof c.templateId === 'string' && uuid.test(c.templateId)) {
      templateUses.push({ id: c.templateId.toLowerCase(), field: `${at}.templateId`, channel: String(c.channel) });
    }
    if (s.type === 'CONDITION' && typeof c.inSegment === 'string' && uuid.test(c.inSegment)) {
      segmentUses.push({ id: c.inSegment.toLowerCase(), field: `${at}.inSegment`, staticOnly: false });
    }
    if (s.type === 'CONDITION' && c.criteria !== undefined) {
      try {
        for (const [id, path] of compileCriteria(c.criteria, `${at}.criteria`).segmentRefs) {
          if (uuid.test(id)) segmentUses.push({ id, field: path, staticOnly: false });
          else faults.push({ field: path, message: `${path}: segment ${id} not found` });
        }
      } catch {
        // Reported by structuralFaults.
      }
    }
    if (s.type === 'UPDATE' && typeof c.addToSegment === 'string' && uuid.test(c.addToSegment)) {
      segmentUses.push({ id: c.addToSegment.toLowerCase(), field: `${at}.addToSegment`, staticOnly: true });
    }
  });
  const templateIds = [...new Set(templateUses.map((u) => u.id))];
  const segmentIds = [...new Set(segmentUses.map((u) => u.id))];
  const [templates, segments] = await Promise.all([
    templateIds.length
      ? em.execute<{ id: string; channel: string }[]>('select id, channel from message_templates where tenant_id = ? and id = any(?::uuid[]) for share', [tenantId, pgArray(templateIds)])
      : [],
    segmentIds.length
      ? em.execute<{ id: string; type: string }[]>('select id, type from segments where tenant_id = ? and id = any(?::uuid[]) for share', [tenantId, pgArray(segmentIds)])
      : [],
  ]);
  const templateById = new Map(templates.map((t) => [t.id, t]));
  const segmentById = new Map(segments.map((s) => [s.id, s]));
  for (const use of templateUses) {
    const template = templateById.get(use.id);
    if (!template) {
      faults.push({ field: use.field, message: `${use.field}: template ${use.id} not found` });
      continue;
    }
    // As campaigns take them: an EMAIL template for email, a text template for SMS, PUSH, WHATSAPP, IN_APP.
    const email = use.channel === 'EMAIL';
    if ((template.channel === 'EMAIL') !== email || template.channel === 'SOCIAL') {
      faults.push({
        field: use.field,
        message: `${use.field}: template ${use.id} is a ${template.channel} template; a ${use.channel} step needs ${email ? 'an EMAIL' : 'a text (SMS, PUSH, WHATSAPP, IN_APP)'} template`,
      });
    }
  }
  for (const use of segmentUses) {
    const segment = segmentById.get(use.id);
    if (!segment) faults.push({ field: use.field, message: `${use.field}: segment ${use.id} not found` });
    else if (use.staticOnly && segment.type !== 'STATIC') {
      faults.push({ field: use.field, message: `${use.field}: segment ${use.id} is ${segment.type}; addToSegment needs a STATIC segment` });
    }
  }
  return faults;
}

/**
 * WAIT steps whose `until` has passed at `now`: at a first activation a mistake (every enrolment
 * would pass the wait at once). Not judged on later edits, so a journey whose date has gone by can
 * still be edited.
 */
export function pastUntilFaults(graph: JourneyGraph, now: Date): GraphFault[] {
  const faults: GraphFault[] = [];
  graph.steps.forEach((s, i) => {
    const until = (s.config as { until?: unknown }).until;
    if (s.type !== 'WAIT' || typeof until !== 'string') return;
    const at = Date.parse(until);
    if (Number.isFinite(at) && at <= now.getTime()) {
      const field = `steps[${i}].config.until`;
      faults.push({ field, message: `${field}: ${until} has already passed; a WAIT until a date needs a date still to come` });
    }
  });
  return faults;
}

/** Every fault of the graph: structure first, then what it names. */
export async function graphFaults(em: EntityManager, tenantId: string, graph: JourneyGraph, limits?: CriteriaLimits): Promise<GraphFault[]> {
  return [...structuralFaults(graph, limits), ...(await referenceFaults(em, tenantId, graph))];
}

/** The VALIDATION_ERROR listing every fault: `faults` in details (and in the error body), each in the message. */
export function graphError(journeyId: string, faults: GraphFault[]): AppError {
  return new AppError(
    'VALIDATION_ERROR',
    `journey ${journeyId} is not valid (${faults.length} fault${faults.length === 1 ? '' : 's'}): ${faults.map((f) => f.message).join('; ')}`,
    { field: faults[0]?.field, faults },
  );
}

/** Event types running enrolments of a version listen for: the trigger's exitOn and every WAIT's untilEvent. */
export function eventTypesOf(graph: JourneyGraph): string[] {
  const types = new Set<string>();
  const exitOn = (graph.triggerConfig as { exitOn?: unknown } | null | undefined)?.exitOn;
  if (typeof exitOn === 'string') types.add(exitOn.trim());
  for (const s of graph.steps) {
    const until = (s.config as { untilEvent?: unknown }).untilEvent;
    if (s.type === 'WAIT' && typeof until === 'string') types.add(until.trim());
  }
  return [...types].sort();
}
