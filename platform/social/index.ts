import type { SocialPlatform } from '../../db/entities/enums.js';
import type { Config } from '../config.js';
import type { SocialPlatformClient } from './types.js';

export * from './types.js';

/** The client of one platform, configured from `P_CLIENT_ID`, `P_CLIENT_SECRET`, `P_AUTH_URL`, `P_API_URL`. */
export function socialClient(config: Config, platform: SocialPlatform): SocialPlatformClient {
  // CONTRACT (issue 10): the social connections work replaces this with the five clients.
  void config;
  throw new Error(`no ${platform} client yet`);
}
