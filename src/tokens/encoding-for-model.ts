// Which BPE encoding a model counts with. The table follows tiktoken's model.py
// (MODEL_TO_ENCODING / MODEL_PREFIX_TO_ENCODING) for the families OpenAI serves.

/** The encodings gpt-tokenizer ships that a chat model can use (p50k_edit and o200k_harmony add only special tokens). */
export const ENCODINGS = ['o200k_base', 'cl100k_base', 'p50k_base', 'r50k_base'] as const;
export type EncodingName = (typeof ENCODINGS)[number];

const O200K_FAMILIES = ['gpt-4o', 'chatgpt-4o', 'gpt-4.1', 'gpt-4.5', 'gpt-5', 'o1', 'o3', 'o4', 'gpt-oss'];
const CL100K_FAMILIES = ['gpt-4', 'gpt-3.5', 'gpt-35', 'text-embedding-', 'davinci-002', 'babbage-002'];
const P50K_FAMILIES = ['text-davinci-002', 'text-davinci-003', 'text-davinci-edit', 'code-davinci', 'code-cushman', 'davinci-codex', 'cushman-codex'];
const R50K_FAMILIES = ['text-davinci-001', 'text-curie-', 'text-babbage-', 'text-ada-', 'text-similarity-', 'text-search-', 'code-search-'];
// GPT-3 base names; matched whole, because "ada" as a prefix would also catch unrelated models.
const R50K_MODELS = new Set(['davinci', 'curie', 'babbage', 'ada']);

/**
 * 'auto' follows the model family; any other setting is the route's explicit choice.
 * Dated, fine-tuned and provider-prefixed names resolve to their family:
 * `gpt-4o-2024-08-06`, `ft:gpt-4o-mini:org::id`, `davinci:ft-org-2023`, `openai/gpt-4.1`.
 */
export function encodingForModel(model: string, setting: 'auto' | EncodingName): EncodingName {
  if (setting !== 'auto') return setting;
  const base = baseModelName(model);
  // o200k families first: "gpt-4o" and "gpt-4.1" also start with "gpt-4".
  if (O200K_FAMILIES.some((family) => base.startsWith(family))) return 'o200k_base';
  if (CL100K_FAMILIES.some((family) => base.startsWith(family))) return 'cl100k_base';
  if (P50K_FAMILIES.some((family) => base.startsWith(family))) return 'p50k_base';
  if (R50K_MODELS.has(base) || R50K_FAMILIES.some((family) => base.startsWith(family))) return 'r50k_base';
  // Unknown models get o200k_base: every model OpenAI has released since gpt-4o uses it, so
  // a name this table has not learned yet is most likely a new o200k model. No OpenAI
  // encoding is exact for other vendors' models (Llama, Qwen, Mistral behind vLLM); those
  // routes should set `budget.encoding`, and keep headroom, since o200k's large vocabulary
  // tends to count fewer tokens than smaller-vocabulary tokenizers do.
  return 'o200k_base';
}

/** The model's family name: lower-cased, without a provider prefix or fine-tune suffix. */
export function baseModelName(model: string): string {
  let name = model.trim().toLowerCase();
  name = name.slice(name.lastIndexOf('/') + 1); // "openai/gpt-4o" (LiteLLM, OpenRouter)
  if (name.startsWith('ft:')) name = name.slice('ft:'.length); // ft:gpt-4o-mini-2024-07-18:org::id
  const colon = name.indexOf(':'); // legacy fine-tunes: davinci:ft-org-2023-01-01
  return colon === -1 ? name : name.slice(0, colon);
}
