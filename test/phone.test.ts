import { getCountries, getCountryCallingCode, parsePhoneNumberFromString } from 'libphonenumber-js';
import examples from 'libphonenumber-js/mobile/examples';
import { describe, expect, it } from 'vitest';
import { normalizePhone } from '../domain/customers/identifiers.js';

// normalizePhone takes a shortcut for numbers already in E.164: it must answer what parsing the
// text does, for every country's numbers, valid or not, with and without a national prefix.
const parsed = (text: string) => {
  const number = parsePhoneNumberFromString(text.trim(), 'ZA');
  return number?.isValid() ? number.number : undefined;
};

describe('normalizePhone', () => {
  it('answers an E.164 number as parsing its text does, for every country', () => {
    let seed = 42;
    const digit = () => String((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 10);
    const cases: string[] = [];
    for (const country of getCountries()) {
      const code = getCountryCallingCode(country);
      const national = (examples as Record<string, string>)[country];
      if (!national) continue;
      for (let i = 0; i < 40; i++) {
        // The example with its last digits changed: mostly valid numbers, some not.
        const changed = national.slice(0, -3) + digit() + digit() + digit();
        cases.push(`+${code}${changed}`, `+${code}0${changed}`, `+${code}${changed.slice(1)}`, `+${code}${changed}${digit()}`, ` +${code}${changed} `);
      }
    }
    const answers = cases.map((c) => [c, normalizePhone(c, 'ZA')] as const);
    expect(answers.filter(([, a]) => a !== undefined).length).toBeGreaterThan(cases.length / 4);
    expect(answers.filter(([c, a]) => a !== parsed(c))).toEqual([]);
  });

  it('reads local and formatted numbers in the default region', () => {
    expect(normalizePhone('082 123 0000', 'ZA')).toBe('+27821230000');
    expect(normalizePhone('+27 (82) 123-0000', 'ZA')).toBe('+27821230000');
    expect(normalizePhone('+27 0821230000', 'ZA')).toBe('+27821230000');
    expect(normalizePhone('+27821', 'ZA')).toBeUndefined();
    expect(normalizePhone('phone: +27 82 123 0000', 'ZA')).toBe('+27821230000');
  });
});
