import { describe, expect, it } from 'vitest';
import type { SocialPlatform } from '../db/entities/enums.js';
import { assertPublishable, composePost, normaliseHashtags, platformFaults, type PostParts } from '../domain/social/validation.js';
import { AppError } from '../platform/errors.js';

// The platform rules of issue 10, each on its own, at its limit and one past it.

const post = (set: Partial<PostParts> = {}): PostParts => ({ content: 'Spring Open this Saturday', hashtags: [], linkUrl: null, mediaUrls: [], ...set });
const faults = (platform: SocialPlatform, set: Partial<PostParts>) => platformFaults(platform, post(set));
const IMAGE = 'https://cdn.example.com/p/flag.jpg';
const VIDEO = 'https://cdn.example.com/p/swing.mp4?v=2';

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('X (TWITTER)', () => {
  it('counts 280 characters as X does: a URL counts 23 whatever its length', () => {
    const url = `https://example.com/${'a'.repeat(200)}`;
    // 256 letters + space + URL (23) = 280: allowed although the text is far longer.
    expect(faults('TWITTER', { content: `${'a'.repeat(256)} ${url}` })).toEqual([]);
    const over = faults('TWITTER', { content: `${'a'.repeat(257)} ${url}` });
    expect(over).toEqual([{ field: 'input.content', message: 'input.content: X allows 280 characters as X counts them (a URL counts 23); this post has 281' }]);
  });

  it('counts what is published: the appended hashtags and link too', () => {
    const content = 'a'.repeat(250);
    // content (250) + "\n\n#golf #club" (2 + 11) + "\n\n" + link (2 + 23) = 288
    const [fault] = faults('TWITTER', { content, hashtags: ['golf', 'club'], linkUrl: 'https://example.com/open' });
    expect(fault!.message).toBe('input.content: X allows 280 characters as X counts them (a URL counts 23); this post with its hashtags and link has 288');
    // Wide characters count 2 on X.
    expect(faults('TWITTER', { content: '漢'.repeat(140) })).toEqual([]);
    expect(faults('TWITTER', { content: '漢'.repeat(141) })[0]!.message).toMatch(/this post has 282$/);
  });

  it('takes at most 4 images, or one video alone', () => {
    expect(faults('TWITTER', { mediaUrls: [IMAGE, IMAGE, IMAGE, IMAGE] })).toEqual([]);
    expect(faults('TWITTER', { mediaUrls: [IMAGE, IMAGE, IMAGE, IMAGE, IMAGE] })).toEqual([
      { field: 'input.mediaUrls', message: 'input.mediaUrls: X allows at most 4 images; this post has 5' },
    ]);
    expect(faults('TWITTER', { mediaUrls: [VIDEO] })).toEqual([]);
    expect(faults('TWITTER', { mediaUrls: [VIDEO, IMAGE] })[0]!.field).toBe('input.mediaUrls');
  });
});

describe('Instagram', () => {
  it('needs media', () => {
    expect(faults('INSTAGRAM', {})).toEqual([{ field: 'input.mediaUrls', message: 'input.mediaUrls: Instagram needs media: at least one image or video' }]);
    expect(faults('INSTAGRAM', { mediaUrls: [IMAGE] })).toEqual([]);
  });

  it('allows captions of 2,200 characters', () => {
    expect(faults('INSTAGRAM', { mediaUrls: [IMAGE], content: 'x'.repeat(2_200) })).toEqual([]);
    expect(faults('INSTAGRAM', { mediaUrls: [IMAGE], content: 'x'.repeat(2_201) })).toEqual([
      { field: 'input.content', message: 'input.content: Instagram\'s caption allows 2,200 characters; this post has 2,201' },
    ]);
  });

  it('allows 30 hashtags, the content\'s and the list\'s together, a tag in both counted once', () => {
    const inContent = Array.from({ length: 20 }, (_, i) => `#tag${i}`).join(' ');
    const list = Array.from({ length: 10 }, (_, i) => `more${i}`);
    expect(faults('INSTAGRAM', { mediaUrls: [IMAGE], content: inContent, hashtags: [...list, 'TAG3'] })).toEqual([]);
    expect(faults('INSTAGRAM', { mediaUrls: [IMAGE], content: inContent, hashtags: [...list, 'one_more'] })).toEqual([{
      field: 'input.hashtags',
      message: 'input.hashtags: Instagram allows at most 30 hashtags (the content\'s and the hashtags list together); this post has 31',
    }]);
  });
});

describe('LinkedIn, TikTok, Facebook', () => {
  it('LinkedIn allows 3,000 characters', () => {
    expect(faults('LINKEDIN', { content: 'x'.repeat(3_000) })).toEqual([]);
    expect(faults('LINKEDIN', { content: 'x'.repeat(3_001) })[0]).toEqual({ field: 'input.content', message: 'input.content: LinkedIn allows 3,000 characters; this post has 3,001' });
  });

  it('TikTok needs a video (a media URL ending in .mp4, .mov, .m4v or .webm)', () => {
    expect(faults('TIKTOK', { mediaUrls: [IMAGE] })).toEqual([
      { field: 'input.mediaUrls', message: 'input.mediaUrls: TikTok needs a video: a media URL ending in .mp4, .mov, .m4v or .webm' },
    ]);
    expect(faults('TIKTOK', { mediaUrls: [VIDEO] })).toEqual([]);
    expect(faults('TIKTOK', { mediaUrls: ['https://cdn.example.com/clip.MOV'] })).toEqual([]);
  });

  it('Facebook allows 63,206 characters', () => {
    expect(faults('FACEBOOK', { content: 'x'.repeat(63_206) })).toEqual([]);
    expect(faults('FACEBOOK', { content: 'x'.repeat(63_207) })[0]!.message).toBe('input.content: Facebook allows 63,206 characters; this post has 63,207');
  });

  it('assertPublishable names the first rule broken and lists every one', () => {
    const err = refusal(() => assertPublishable('TIKTOK', post({ content: 'x'.repeat(2_300) })));
    expect(err.code).toBe('VALIDATION_ERROR');
    expect(err.details!.field).toBe('input.mediaUrls');
    expect((err.details!.faults as { field: string }[]).map((f) => f.field)).toEqual(['input.mediaUrls', 'input.content']);
  });
});

describe('hashtags and composition', () => {
  it('normalises hashtags: # and space stripped, duplicates (any case) dropped, order kept', () => {
    expect(normaliseHashtags(['#Golf', ' club ', 'golf', '##SpringOpen', 'CLUB', 'über_19'])).toEqual(['Golf', 'club', 'SpringOpen', 'über_19']);
  });

  it('refuses an invalid hashtag, naming its index', () => {
    for (const [tags, index] of [[['golf', 'spring open'], 1], [['ok', 'fine', '#'], 2], [['2026'], 0], [['a-b'], 0]] as const) {
      const err = refusal(() => normaliseHashtags([...tags]));
      expect(err.details!.field).toBe(`input.hashtags[${index}]`);
      expect(err.message).toMatch(new RegExp(`^input\\.hashtags\\[${index}\\]: `));
    }
  });

  it('composes content, the hashtags it lacks, then the link it lacks', () => {
    expect(composePost(post({ content: 'Spring Open #golf', hashtags: ['Golf', 'club'], linkUrl: 'https://club.example.com/open' })).text)
      .toBe('Spring Open #golf\n\n#club\n\nhttps://club.example.com/open');
    expect(composePost(post({ content: 'See https://club.example.com/open', linkUrl: 'https://club.example.com/open' })).text).toBe('See https://club.example.com/open');
    expect(composePost(post({ content: 'Plain' })).text).toBe('Plain');
  });
});
