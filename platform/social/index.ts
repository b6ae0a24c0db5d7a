import type { SocialPlatform } from '../../db/entities/enums.js';
import type { Config } from '../config.js';
import { FacebookClient, InstagramClient } from './facebook.js';
import { LinkedInClient } from './linkedin.js';
import { TikTokClient } from './tiktok.js';
import { TwitterClient } from './twitter.js';
import type { SocialPlatformClient } from './types.js';

export * from './types.js';

/** The client of one platform, configured from `P_CLIENT_ID`, `P_CLIENT_SECRET`, `P_AUTH_URL`, `P_API_URL`. */
export function socialClient(config: Config, platform: SocialPlatform): SocialPlatformClient {
  switch (platform) {
    case 'FACEBOOK': return new FacebookClient(config);
    case 'INSTAGRAM': return new InstagramClient(config);
    case 'TWITTER': return new TwitterClient(config);
    case 'LINKEDIN': return new LinkedInClient(config);
    case 'TIKTOK': return new TikTokClient(config);
  }
}
