import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import { DEFAULT_IMAGE_RULE, imageRuleForModel } from '../../../src/tokens/image-rule.js';
import { imageTokens, maxImageTokens, patchTokens } from '../../../src/tokens/image-tokens.js';
import { TokenCountCache } from '../../../src/tokens/token-count-cache.js';
import { digestMessage } from '../../../src/context/message-digest.js';
import { pngUrl } from '../../support/image-fixtures.js';


describe('imageRuleForModel', () => {
  test.each([
    ['gpt-4o', 'tiles-85-170'],
    ['gpt-4o-2024-08-06', 'tiles-85-170'],
    ['gpt-4.1', 'tiles-85-170'],
    ['gpt-5', 'tiles-85-170'], // publishes 70 + 140: 85 + 170 never counts it low
    ['o3', 'tiles-85-170'], // publishes 75 + 150
    ['llama-3.1-70b', 'tiles-85-170'], // unknown: as before
    ['gpt-4o-mini', 'tiles-2833-5667'],
    ['gpt-4o-mini-2024-07-18', 'tiles-2833-5667'],
    ['ft:gpt-4o-mini-2024-07-18:org::abc', 'tiles-2833-5667'],
    ['openai/gpt-4o-mini', 'tiles-2833-5667'],
    ['gpt-4.1-mini', 'patches-x1.62'],
    ['gpt-4.1-mini-2025-04-14', 'patches-x1.62'],
    ['gpt-4.1-nano', 'patches-x2.46'],
    ['o4-mini', 'patches-x1.72'],
    ['o4-mini-2025-04-16', 'patches-x1.72'],
    ['gpt-5-mini', 'patches-x1.62'],
    ['gpt-5-nano', 'patches-x2.46'],
  ])('%s bills images by %s', (model, id) => {
    expect(imageRuleForModel(model).id).toBe(id);
  });

  test('no model, the default rule', () => {
    expect(imageRuleForModel(undefined)).toBe(DEFAULT_IMAGE_RULE);
  });
});

describe('one image, three models (the vision guide, "Calculating costs")', () => {
  const gpt4o = imageRuleForModel('gpt-4o');
  const mini = imageRuleForModel('gpt-4o-mini');
  const patches = imageRuleForModel('gpt-4.1-mini');

  test.each([
    // 1024x1024: 2x2 tiles after scaling to 768x768; 32x32 patches.
    [1024, 1024, 'high', 765, 2833 + 4 * 5667, Math.ceil(1024 * 1.62)],
    // 2048x4096: 768x1536, 2x3 tiles; 64x128 patches, over the 1536 cap.
    [2048, 4096, 'high', 1105, 2833 + 6 * 5667, Math.ceil(1536 * 1.62)],
    // low detail: the base on the tile rule; the patch rule has no detail levels.
    [4096, 8192, 'low', 85, 2833, Math.ceil(1536 * 1.62)],
    [128, 64, 'low', 85, 2833, Math.ceil(8 * 1.62)],
    // 128x64 at high detail: one tile; 4x2 patches (measured on the API: gpt-4o 85 + 170,
    // gpt-4o-mini 2833 + 5667, gpt-4.1-mini 13 beside the text).
    [128, 64, 'high', 255, 8500, 13],
  ])('%ix%i at %s: gpt-4o %i, gpt-4o-mini %i, gpt-4.1-mini %i', (width, height, detail, onGpt4o, onMini, onPatches) => {
    const url = pngUrl(width, height);
    expect(imageTokens(url, detail, gpt4o)).toBe(onGpt4o);
    expect(imageTokens(url, detail, mini)).toBe(onMini);
    expect(imageTokens(url, detail, patches)).toBe(onPatches);
  });

  test('an image of unknown size counts the most each rule gives', () => {
    const url = 'https://example.com/cat.png';
    expect(imageTokens(url, 'auto', gpt4o)).toBe(1445); // 2x4 tiles
    expect(imageTokens(url, 'auto', mini)).toBe(2833 + 8 * 5667); // 48,169
    expect(imageTokens(url, 'auto', patches)).toBe(2489); // 1536 · 1.62 = 2488.32
    expect(imageTokens(url, 'auto', imageRuleForModel('gpt-4.1-nano'))).toBe(3779); // 1536 · 2.46 = 3778.56
    expect(imageTokens(url, 'auto', imageRuleForModel('o4-mini'))).toBe(2642); // 1536 · 1.72 = 2641.92
    for (const rule of [gpt4o, mini, patches]) expect(imageTokens(url, 'high', rule)).toBe(maxImageTokens(rule));
  });
});

describe('patchTokens', () => {
  test.each([
    [1024, 1024, 1024], // published: 32x32 patches
    [1800, 2400, 1536], // published 1452 after scaling; counted at the cap, as billed for such images
    [4000, 1474, 1536], // billed 2488 on gpt-4.1-mini (1536 · 1.62) where the scaling gives 1449
    [33, 33, 4], // a patch may extend beyond the image
    [32, 32, 1],
    [1, 1, 1],
    [1, 100_000, 1536],
  ])('%ix%i is %i patches', (width, height, patches) => {
    expect(patchTokens(width, height, 1)).toBe(patches);
    expect(patchTokens(height, width, 1)).toBe(patches);
  });

  test('never counts below the guide’s scaled result, never above the cap', () => {
    for (let width = 1; width <= 6000; width += 97) {
      for (let height = 1; height <= 6000; height += 89) {
        const tokens = patchTokens(width, height, 1);
        expect(tokens).toBeLessThanOrEqual(1536);
        expect(tokens).toBeGreaterThanOrEqual(scaledByTheGuide(width, height));
      }
    }
  });

  test('rounds the multiplied count up, without float noise', () => {
    expect(patchTokens(1024, 1024, 1.62)).toBe(1659); // 1658.88
    expect(patchTokens(150 * 32, 32, 1.62)).toBe(243); // 150 · 1.62 is 243.00000000000003 in floats
  });
});

/** The guide's formula, step B: scale by r, then so that one side fits whole patches. */
function scaledByTheGuide(width: number, height: number): number {
  const raw = Math.ceil(width / 32) * Math.ceil(height / 32);
  if (raw <= 1536) return raw;
  let r = Math.sqrt((32 * 32 * 1536) / (width * height));
  r *= Math.min(Math.floor((width * r) / 32) / ((width * r) / 32), Math.floor((height * r) / 32) / ((height * r) / 32));
  return Math.min(Math.ceil((width * r) / 32 - 1e-9) * Math.ceil((height * r) / 32 - 1e-9), 1536);
}

describe('a counter per model', () => {
  const image: ChatMessage = { role: 'user', content: [{ type: 'image_url', image_url: { url: pngUrl(1024, 1024) } }] };

  test('counts a message’s images by the model’s rule', () => {
    const gpt4o = tokenCounterFor('o200k_base', 'gpt-4o');
    const mini = tokenCounterFor('o200k_base', 'gpt-4o-mini');
    const patches = tokenCounterFor('o200k_base', 'gpt-4.1-mini');
    const overhead = gpt4o.countMessage({ role: 'user', content: [] });
    expect(gpt4o.countMessage(image)).toBe(overhead + 765);
    expect(mini.countMessage(image)).toBe(overhead + 2833 + 4 * 5667);
    expect(patches.countMessage(image)).toBe(overhead + 1659);
  });

  test('without a model, or with one of the default rule, it is the encoding’s counter', () => {
    expect(tokenCounterFor('o200k_base', 'gpt-4o')).toBe(tokenCounterFor('o200k_base'));
    expect(tokenCounterFor('o200k_base', 'gpt-4.1-mini')).toBe(tokenCounterFor('o200k_base', 'gpt-4.1-mini-2025-04-14'));
    expect(tokenCounterFor('o200k_base', 'gpt-4o-mini')).not.toBe(tokenCounterFor('o200k_base'));
    expect(tokenCounterFor('o200k_base', 'gpt-4o-mini').encoding).toBe('o200k_base');
  });

  test('the instruction cache keeps one count per rule', async () => {
    const cache = new TokenCountCache(10);
    const digest = digestMessage(image);
    const gpt4o = tokenCounterFor('o200k_base', 'gpt-4o');
    const mini = tokenCounterFor('o200k_base', 'gpt-4o-mini');
    expect(await cache.count(gpt4o, image, digest)).toBe(gpt4o.countMessage(image));
    expect(await cache.count(mini, image, digest)).toBe(mini.countMessage(image));
    expect(cache.size).toBe(2);
  });
});
