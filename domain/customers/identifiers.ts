import { parsePhoneNumberFromString, PhoneNumber, type CountryCode, type E164Number } from 'libphonenumber-js';
import { z } from 'zod';

// Identifiers are stored normalised so that identity resolution and the per-tenant uniqueness of
// live profiles work by plain equality: email trimmed and lower-cased, phone in E.164.

const normalizeEmail = (value: string) => value.trim().toLowerCase();

const E164 = /^\+[1-9]\d{6,14}$/;

/** E.164, or undefined when the number is not a valid one. Local numbers use `region`. */
export function normalizePhone(value: string, region: string): string | undefined {
  const text = value.trim();
  // A number already in E.164 that is valid as it stands is its own answer. Parsing it as free
  // text costs five times as much (5 KB of garbage a number, the most of an import's rows): the
  // parser looks for a number inside the text, its extension and a national prefix to strip.
  if (E164.test(text)) {
    const number = new PhoneNumber(text as E164Number);
    if (number.isValid()) return number.number;
  }
  const parsed = parsePhoneNumberFromString(text, region.toUpperCase() as CountryCode);
  return parsed?.isValid() ? parsed.number : undefined;
}

export const emailField = z
  .string()
  .trim()
  .max(254)
  .transform(normalizeEmail)
  .pipe(z.email({ message: 'invalid email address' }));

export const phoneField = (region: string) =>
  z
    .string()
    .max(40)
    .transform((value, ctx) => {
      const e164 = normalizePhone(value, region);
      if (!e164) {
        ctx.addIssue({ code: 'custom', message: `invalid phone number (numbers without a country code are read as ${region})` });
        return z.NEVER;
      }
      return e164;
    });

export type Identifier = 'authUserId' | 'email' | 'phone';

// Resolution weights: an auth user id is issued by our own identity system, an email address is
// personal, a phone number is sometimes shared (households, club landlines).
export const IDENTIFIER_WEIGHT: Record<Identifier, number> = { authUserId: 3, email: 2, phone: 1 };
export const IDENTIFIER_COLUMN = { authUserId: 'authUserId', email: 'email', phone: 'phoneNumber' } as const;
