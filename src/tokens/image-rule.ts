// How a model bills an image. OpenAI's vision guide ("Calculating costs", images-vision) publishes
// two rules, per model:
// - tiles: "low" detail costs a base; otherwise the image is fitted into 2048x2048, its short side
//   scaled to 768 px, and each 512 px tile costs a set amount, plus the base. The table:
//   4o / 4.1 / 4.5 85 + 170 a tile; 4o-mini 2833 + 5667; o1, o1-pro, o3 75 + 150;
//   gpt-5, gpt-5-chat-latest 70 + 140; computer-use-preview 65 + 129.
// - patches: the number of 32x32 px patches that cover the image, at most 1536 (a larger image
//   is scaled down to fit), times a per-model multiplier: gpt-4.1-mini and gpt-5-mini 1.62,
//   gpt-4.1-nano and gpt-5-nano 2.46, o4-mini 1.72. `detail` does not change it.
//
// Only rules dearer than 85 + 170 get an entry here. The models that publish a cheaper tile
// (gpt-5, o1, o3, computer-use-preview) keep 85 + 170: at most 21% high on their images, never
// low, and no table to keep in step with prices that have moved more than once. A model this
// table does not know keeps 85 + 170 too, as contextd counted every model before.

import { baseModelName } from './encoding-for-model.js';

export interface TileImageRule {
  readonly kind: 'tiles';
  /** Names the rule in cache keys (a count made under one rule is no count under another). */
  readonly id: string;
  readonly baseTokens: number;
  readonly tileTokens: number;
}

export interface PatchImageRule {
  readonly kind: 'patches';
  readonly id: string;
  /** Tokens per 32 px patch. */
  readonly multiplier: number;
}

export type ImageRule = TileImageRule | PatchImageRule;

export const DEFAULT_IMAGE_RULE: TileImageRule = Object.freeze({ kind: 'tiles', id: 'tiles-85-170', baseTokens: 85, tileTokens: 170 });
const GPT_4O_MINI_RULE: ImageRule = Object.freeze({ kind: 'tiles', id: 'tiles-2833-5667', baseTokens: 2833, tileTokens: 5667 });
const patches = (multiplier: number): ImageRule => Object.freeze({ kind: 'patches', id: `patches-x${multiplier}`, multiplier });

// Prefixes of the base name (dated, fine-tuned and provider-prefixed names resolve as for the
// encoding: `gpt-4o-mini-2024-07-18`, `ft:gpt-4.1-mini:org::id`, `openai/o4-mini`).
const RULES_BY_PREFIX: readonly (readonly [string, ImageRule])[] = [
  ['gpt-4o-mini', GPT_4O_MINI_RULE],
  ['gpt-4.1-mini', patches(1.62)],
  ['gpt-4.1-nano', patches(2.46)],
  ['gpt-5-mini', patches(1.62)],
  ['gpt-5-nano', patches(2.46)],
  ['o4-mini', patches(1.72)],
];

/** The image rule `model` is billed by; DEFAULT_IMAGE_RULE (85 + 170) for any model without a dearer published rule. */
export function imageRuleForModel(model: string | undefined): ImageRule {
  if (model === undefined) return DEFAULT_IMAGE_RULE;
  const base = baseModelName(model);
  return RULES_BY_PREFIX.find(([prefix]) => base.startsWith(prefix))?.[1] ?? DEFAULT_IMAGE_RULE;
}
