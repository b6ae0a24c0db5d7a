import { compile as compileHtmlToText } from 'html-to-text';
import { Liquid, type Template } from 'liquidjs';
import type { Channel } from '../../db/entities/enums.js';
import { loadConfig, type Config } from '../../platform/config.js';
import { fullName } from '../customers/customers.js';

// Message templates are Liquid (liquidjs). One campaign sends one template to many recipients, so
// a template is parsed once and rendered per recipient. Templates come from tenants' users: no
// file system (includes and layouts are refused when saved), own properties only, and every
// render is bounded in time and memory.

/** One recipient as the send engine reads it: the customer and their home club. */
export interface RecipientRow {
  id: string;
  email: string | null;
  phoneNumber: string | null;
  firstName: string | null;
  lastName: string | null;
  membershipTier: string | null;
  membershipStatus: string | null;
  lifecycleStage: string;
  handicap: number | null;
  homeClubId: string | null;
  clubName: string | null;
  clubTimezone: string | null;
}

export interface RenderableTemplate {
  channel: Channel;
  subject: string | null;
  body: string;
  textBody: string | null;
}

export interface RenderedMessage {
  subject: string | null;
  body: string;
  textBody: string | null;
}

export type TemplateField = 'subject' | 'body' | 'textBody';

/** A template that does not parse (`compileTemplate`) or did not render (a limit, a filter's error). */
export class TemplateError extends Error {
  constructor(readonly field: TemplateField, readonly detail: string) {
    super(`${field}: ${detail}`);
    this.name = 'TemplateError';
  }
}

export interface TemplateLimits {
  maxChars: number;
  renderLimitMs: number;
  memoryLimit: number;
}

export const templateLimits = (config: Config): TemplateLimits => ({
  maxChars: config.TEMPLATE_MAX_CHARS,
  renderLimitMs: config.TEMPLATE_RENDER_LIMIT_MS,
  memoryLimit: config.TEMPLATE_MEMORY_LIMIT,
});

/**
 * The variables of one recipient: the customer's fields at the top level (`{{ firstName }}`) and
 * under `customer`, the home club as `club` ({id, name, timezone}; null without one), and
 * `unsubscribe_url`. `campaign`: what the campaign gives all its recipients (a promotion's
 * `event`: domain/promotions/sends.ts#campaignVariables); the recipient's own fields win.
 */
export function recipientVariables(r: RecipientRow, unsubscribeUrl: string, campaign: Record<string, unknown> = {}): Record<string, unknown> {
  const customer = {
    id: r.id,
    email: r.email,
    phoneNumber: r.phoneNumber,
    firstName: r.firstName,
    lastName: r.lastName,
    fullName: fullName(r),
    membershipTier: r.membershipTier,
    membershipStatus: r.membershipStatus,
    lifecycleStage: r.lifecycleStage,
    handicap: r.handicap,
    homeClubId: r.homeClubId,
  };
  const club = r.homeClubId ? { id: r.homeClubId, name: r.clubName, timezone: r.clubTimezone } : null;
  return { ...campaign, ...customer, customer, club, unsubscribe_url: unsubscribeUrl };
}

// Reading a file is what these tags do; message templates have none to read.
const FILE_TAGS = ['include', 'render', 'layout'];

const engines = new Map<string, Liquid>();
function engine(limits: TemplateLimits, escapeOutput: boolean): Liquid {
  const key = `${limits.maxChars}/${limits.renderLimitMs}/${limits.memoryLimit}/${escapeOutput}`;
  let liquid = engines.get(key);
  if (!liquid) {
    liquid = new Liquid({
      templates: {}, // lookups go to this empty map, never to the file system
      strictFilters: true, // a misspelt filter is an error when saved, not silent output
      strictVariables: false, // a missing variable renders empty
      ownPropertyOnly: true,
      parseLimit: limits.maxChars,
      renderLimit: limits.renderLimitMs,
      memoryLimit: limits.memoryLimit,
      ...(escapeOutput && { outputEscape: 'escape' as const }),
    });
    for (const tag of FILE_TAGS) {
      liquid.registerTag(tag, {
        parse() {
          throw new Error(`{% ${tag} %} is not available in message templates`);
        },
        render() {},
      });
    }
    engines.set(key, liquid);
  }
  return liquid;
}

// The text part of an email without one of its own, from the rendered HTML.
const htmlToText = compileHtmlToText({
  selectors: [
    // Headings keep their case: html-to-text's upper-casing would shout a customer's name.
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
    { selector: 'img', format: 'skip' },
  ],
});

let defaultLimits: TemplateLimits | undefined;

/** Parses once; render() many times (one campaign = one template, many recipients). */
export function compileTemplate(
  t: RenderableTemplate,
  limits: TemplateLimits = (defaultLimits ??= templateLimits(loadConfig())),
): { render(vars: Record<string, unknown>): Promise<RenderedMessage> } {
  const isEmail = t.channel === 'EMAIL';
  const plain = engine(limits, false);
  const bodyEngine = isEmail ? engine(limits, true) : plain;
  const parse = (field: TemplateField, source: string, liquid: Liquid): Template[] => {
    try {
      return liquid.parse(source);
    } catch (err) {
      throw new TemplateError(field, (err as Error).message);
    }
  };
  const subject = t.subject != null ? parse('subject', t.subject, plain) : null;
  const body = parse('body', t.body, bodyEngine);
  const textBody = isEmail && t.textBody != null ? parse('textBody', t.textBody, plain) : null;

  const render = async (field: TemplateField, liquid: Liquid, template: Template[], vars: Record<string, unknown>): Promise<string> => {
    try {
      return await liquid.render(template, vars);
    } catch (err) {
      throw new TemplateError(field, (err as Error).message);
    }
  };
  return {
    async render(vars) {
      const html = await render('body', bodyEngine, body, vars);
      return {
        // A header is one line, whatever the template's line breaks.
        subject: subject ? (await render('subject', plain, subject, vars)).replace(/\s+/g, ' ').trim() : null,
        body: html,
        textBody: !isEmail ? null : textBody ? await render('textBody', plain, textBody, vars) : htmlToText(html),
      };
    },
  };
}
