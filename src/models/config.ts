/** Small helpers to read and validate JSON config files (DESIGN rule 7: errors name the file and field). */
import * as fs from 'fs';

export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

export function readJsonObject(file: string): Record<string, unknown> {
  const v = readJsonFile(file);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${file}: must hold a JSON object`);
  return v as Record<string, unknown>;
}

export function intField(file: string, obj: Record<string, unknown>, key: string, min: number, max = 2 ** 31 - 1): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new Error(`${file}: field "${key}" must be an integer, got ${JSON.stringify(v)}`);
  }
  if (v < min || v > max) throw new Error(`${file}: field "${key}" must be in [${min}, ${max}], got ${v}`);
  return v;
}

export function optionalBool(file: string, obj: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new Error(`${file}: field "${key}" must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}
