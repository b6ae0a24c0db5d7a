import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { condition, continueAsNew, defineQuery, defineSignal, log, ParentClosePolicy, proxyActivities, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { PromotionWorkflowInput } from '../domain/promotions/outbox.js';
import { CampaignId, TenantId } from '../platform/search-attributes.js';
import { campaignRunId, campaignWorkflow } from './campaign.js';

// `event-promotion-<promotionId>`: an automatic promotion's announcement and reminders. It holds
// no plan of its own: each time it wakes (a send's time, or `planChanged` from the outbox when the
// promotion or its event changed) it reads what is due and when the next send is, makes the due
// sends (each a ONE_TIME campaign, whose run it starts and leaves), and sleeps until the next one.
// The sends' unique keys (promotion_sends) make a send once however often it is asked for. It ends
// when the promotion is switched off or the event is cancelled or begins.

const { promotionStep, sendPromotion } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export const planChanged = defineSignal('planChanged');
/** When the workflow wakes next (ISO; null: when told of a change). */
export const nextWake = defineQuery<string | null>('nextWake');

export async function eventPromotionWorkflow(input: PromotionWorkflowInput): Promise<string> {
  let changed = false;
  let wake: string | null = null;
  setHandler(planChanged, () => {
    changed = true;
  });
  setHandler(nextWake, () => wake);
  for (;;) {
    // A change told during the read wakes the wait below at once.
    changed = false;
    const step = await promotionStep({ ...input, now: new Date().toISOString() });
    if (step.stop !== undefined) {
      log.info('event promotion ends', { promotionId: input.promotionId, reason: step.stop });
      return step.stop;
    }
    for (const due of step.due) {
      const send = await sendPromotion({ ...input, key: due.key, now: new Date().toISOString() });
      if (send.campaignId) await startCampaignRun(input.tenantId, send.campaignId);
    }
    if (step.due.length) continue;
    // Each wake costs a few events; the next run starts from the plan, as this one does.
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 500) await continueAsNew<typeof eventPromotionWorkflow>(input);
    wake = step.nextAt;
    if (step.nextAt) await condition(() => changed, Math.max(1000, Date.parse(step.nextAt) - Date.now()));
    else await condition(() => changed);
  }
}

/** The send's campaign run, left to itself; a run already started (a retry, a replay) is joined. */
async function startCampaignRun(tenantId: string, campaignId: string): Promise<void> {
  try {
    await startChild(campaignWorkflow, {
      workflowId: campaignRunId(campaignId, 'once'),
      args: [{ tenantId, campaignId, kind: 'ONE_TIME', runKey: 'once', startAt: null }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: TenantId, value: tenantId }, { key: CampaignId, value: campaignId }],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}
