import twitter from 'twitter-text';
import { z } from 'zod';
import type { SocialPlatform } from '../../db/entities/enums.js';
import { AppError } from '../../platform/errors.js';
import type { PublishRequest } from '../../platform/social/types.js';
import { nonEmptyUpdate, optional } from '../validate.js';

// What a post may hold, per platform, checked before anything is sent: on create and update (for
// the connection's platform) and again when the post is published (its content then).
//
// What is published is `composePost`: the content, then the hashtags the content does not carry
// yet as `#tag` words on a line of their own, then the link unless the content holds it already,
// on its own line. The same function feeds validation and publishing, so what was validated is
// exactly what is sent (a URL counts 23 on X wherever it stands).

export const MAX_MEDIA = 10;
const MAX_URL = 2048;
const MAX_HASHTAGS = 100;
// The longest post any platform takes (Facebook's).
const MAX_CONTENT = 63_206;

const VIDEO = /\.(mp4|mov|m4v|webm)$/i;
/** A video is a media URL whose path ends in .mp4, .mov, .m4v or .webm (query and fragment aside). */
export const isVideo = (url: string) => VIDEO.test(new URL(url).pathname);

const httpUrl = z.string().trim().max(MAX_URL).refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !!u.hostname;
  } catch {
    return false;
  }
}, { message: 'an absolute http(s) URL' });

const content = z.string().max(MAX_CONTENT).refine((s) => s.trim().length > 0, { message: 'must not be empty' })
  .refine((s) => !s.includes('\u0000'), { message: 'text may not contain NUL (\\u0000) characters' });
// Normalised by `normaliseHashtags` (which names the offending entry); here only the bounds.
const hashtags = z.array(z.string().max(200)).max(MAX_HASHTAGS);
const mediaUrls = z.array(httpUrl).max(MAX_MEDIA);
const id = z.string().trim().min(1).max(100);

export const createSocialPostInput = z.object({
  tenantId: z.string().optional(),
  connectionId: id,
  campaignId: id.nullish(),
  content,
  mediaUrls: mediaUrls.nullish(),
  linkUrl: httpUrl.nullish(),
  hashtags: hashtags.nullish(),
}).strict();

export const updateSocialPostInput = nonEmptyUpdate(z.object({
  campaignId: id.nullish(),
  content: optional(content),
  mediaUrls: optional(mediaUrls),
  linkUrl: httpUrl.nullish(),
  hashtags: optional(hashtags),
}).strict());

export const scheduleSocialPostInput = z.object({
  scheduledAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
}).strict();

const HASHTAG = /^[\p{L}\p{M}\p{N}_]{1,100}$/u;

/**
 * Hashtags as published: '#' and surrounding space stripped, each a word of letters, digits and
 * underscores (not digits alone, which no platform links), the first of each case-insensitive
 * duplicate kept, in the order given. An invalid one is named: `input.hashtags[2]`.
 */
export function normaliseHashtags(tags: readonly string[], field = 'input.hashtags'): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  tags.forEach((raw, i) => {
    const tag = raw.trim().replace(/^#+/, '').trim();
    if (!HASHTAG.test(tag) || /^\p{N}+$/u.test(tag)) {
      throw new AppError('VALIDATION_ERROR', `${field}[${i}]: "${raw}" is not a hashtag (letters, digits and _ only, not digits alone, at most 100)`, { field: `${field}[${i}]` });
    }
    const key = tag.toLocaleLowerCase('en');
    if (seen.has(key)) return;
    seen.add(key);
    out.push(tag);
  });
  return out;
}

export interface PostParts {
  content: string;
  hashtags: readonly string[];
  linkUrl?: string | null;
  mediaUrls: readonly string[];
}

const hashtagsIn = (text: string) => twitter.extractHashtags(text).map((t) => t.toLocaleLowerCase('en'));

/** What the platform receives (see the top of this file): one composition for validation and publishing. */
export function composePost(post: PostParts): PublishRequest {
  const present = new Set(hashtagsIn(post.content));
  const extra = post.hashtags.filter((t) => !present.has(t.toLocaleLowerCase('en')));
  const parts = [post.content.trimEnd()];
  if (extra.length) parts.push(extra.map((t) => `#${t}`).join(' '));
  if (post.linkUrl && !post.content.includes(post.linkUrl)) parts.push(post.linkUrl);
  return { text: parts.join('\n\n'), mediaUrls: [...post.mediaUrls], linkUrl: post.linkUrl ?? null };
}

export interface Fault {
  field: string;
  message: string;
}

const chars = (s: string) => [...s].length;
const n = (x: number) => x.toLocaleString('en-US');

/** Every rule of `platform` the post breaks, each naming the rule and the field (README, "Social posts"). */
export function platformFaults(platform: SocialPlatform, post: PostParts, prefix = 'input'): Fault[] {
  const { text, mediaUrls: media } = composePost(post);
  const faults: Fault[] = [];
  const fault = (field: string, message: string) => faults.push({ field: `${prefix}.${field}`, message: `${prefix}.${field}: ${message}` });
  const videos = media.filter(isVideo).length;
  const tail = post.hashtags.length || post.linkUrl ? ' with its hashtags and link' : '';
  const length = (limit: number, what: string) => {
    const used = chars(text);
    if (used > limit) fault('content', `${what} allows ${n(limit)} characters; this post${tail} has ${n(used)}`);
  };
  switch (platform) {
    case 'TWITTER': {
      const { weightedLength } = twitter.parseTweet(text);
      if (weightedLength > 280) fault('content', `X allows 280 characters as X counts them (a URL counts 23); this post${tail} has ${weightedLength}`);
      if (videos && media.length > 1) fault('mediaUrls', `X takes one video alone, or up to 4 images; this post has ${videos} video(s) among ${media.length} media`);
      else if (media.length > 4) fault('mediaUrls', `X allows at most 4 images; this post has ${media.length}`);
      break;
    }
    case 'INSTAGRAM': {
      if (!media.length) fault('mediaUrls', 'Instagram needs media: at least one image or video');
      length(2_200, 'Instagram\'s caption');
      const tags = new Set(hashtagsIn(text)).size;
      if (tags > 30) fault('hashtags', `Instagram allows at most 30 hashtags (the content's and the hashtags list together); this post has ${tags}`);
      break;
    }
    case 'LINKEDIN':
      length(3_000, 'LinkedIn');
      break;
    case 'TIKTOK':
      if (!videos) fault('mediaUrls', 'TikTok needs a video: a media URL ending in .mp4, .mov, .m4v or .webm');
      length(2_200, 'TikTok');
      break;
    case 'FACEBOOK':
      length(63_206, 'Facebook');
      break;
  }
  return faults;
}

/** Throws VALIDATION_ERROR naming the first broken rule (and listing all in `faults`). */
export function assertPublishable(platform: SocialPlatform, post: PostParts, prefix = 'input'): void {
  const faults = platformFaults(platform, post, prefix);
  if (faults.length) throw new AppError('VALIDATION_ERROR', faults.map((f) => f.message).join('; '), { field: faults[0]!.field, faults });
}
