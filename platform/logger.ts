import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Defence in depth: secrets are kept out of log calls by the code that holds them (ids, not tokens),
 * and should one be passed by mistake under its usual name, it is censored here.
 */
export const LOG_REDACT = {
  paths: ['accessToken', 'refreshToken', 'clientSecret', 'codeVerifier', 'access_token', 'refresh_token', 'client_secret', 'code_verifier', 'authorization']
    .flatMap((key) => [key, `*.${key}`, `*.*.${key}`]),
  censor: '[redacted]',
};

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'crm' }, redact: LOG_REDACT });
}
