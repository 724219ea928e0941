// The CPU's feature flags as Linux reports them, for tests whose expected precision depends on the instruction
// set (bf16.test.ts, int8.test.ts). Empty where /proc/cpuinfo cannot be read (not Linux): every flag is then absent.
import * as fs from 'fs';

const flags: Set<string> = (() => {
  try {
    const m = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return new Set(m ? m[1].trim().split(/\s+/) : []);
  } catch {
    return new Set<string>();
  }
})();

/** True where /proc/cpuinfo lists `flag` (e.g. 'avx512_bf16', 'avx_vnni'). */
export function cpuHas(flag: string): boolean {
  return flags.has(flag);
}
