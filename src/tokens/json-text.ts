// Parts of a request that no published rule covers are counted as their JSON text: the
// model cannot see more of a value than its serialization spells out.

export function jsonText(value: unknown): string {
  return JSON.stringify(value) ?? '';
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
