// Parts of a request that no published rule covers count as their JSON text: whatever of
// the value the model is shown as text, the JSON spells out, plus its quoting.

export function jsonText(value: unknown): string {
  return JSON.stringify(value) ?? '';
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
