/**
 * Python `str` semantics used by KoBertTokenizer, with Python 3.11's Unicode tables (unicode-tables.ts, generated
 * by scripts/gen-unicode-tables.py). All indexing is by code point, as in Python.
 */
import { COMBINING_RANGES, DIGIT_RANGES, SPACE_RANGES, UNASSIGNED_RANGES } from './unicode-tables';

function inRanges(cp: number, r: readonly number[]): boolean {
  // binary search over [start0, end0, start1, end1, ...]
  let lo = 0;
  let hi = r.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < r[2 * mid]) hi = mid - 1;
    else if (cp > r[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

/** str.isspace() for one code point. */
export function pyIsSpace(cp: number): boolean {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20);
  return inRanges(cp, SPACE_RANGES);
}

/** str.isdigit() for one code point. */
export function pyIsDigit(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x30 && cp <= 0x39;
  return inRanges(cp, DIGIT_RANGES);
}

/** unicodedata.combining(c) != 0 */
export function pyIsCombining(cp: number): boolean {
  if (cp < 0x300) return false;
  if (cp >= 0xac00 && cp <= 0xd7a3) return false;
  return inRanges(cp, COMBINING_RANGES);
}

/** unicodedata.category(c) == 'Cn' in Python's Unicode version. */
export function pyIsUnassigned(cp: number): boolean {
  if (cp < 0x378) return false;
  if (cp >= 0xac00 && cp <= 0xd7a3) return false;
  return inRanges(cp, UNASSIGNED_RANGES);
}

/** Code points of a string (a lone surrogate is one code point, as in Python). */
export function codePoints(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    out.push(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

/** Python `len(s)`. */
export function pyLen(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Python `s.strip()` (no argument). */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  // Every Python whitespace character is in the BMP, so UTF-16 units suffice here.
  while (a < b && pyIsSpace(s.charCodeAt(a))) a++;
  while (b > a && pyIsSpace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Python `" ".join(s.split())` (which already implies strip). */
export function pyJoinSplit(s: string): string {
  const words: string[] = [];
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    if (pyIsSpace(s.charCodeAt(i))) {
      if (start >= 0) {
        words.push(s.slice(start, i));
        start = -1;
      }
    } else if (start < 0) {
      start = i;
    }
  }
  if (start >= 0) words.push(s.slice(start));
  return words.join(' ');
}

/**
 * `unicodedata.normalize("NFKD", s)` with Python's Unicode version.
 *
 * Node's ICU implements a newer Unicode (Node 20.20 ships ICU 78 = Unicode 17) than Python 3.11 (14.0); e.g.
 * U+1E030 (new in 15.0) has a compatibility decomposition in Node but is unassigned, so unchanged, in Python. By Unicode's
 * normalization stability policy, decompositions and combining classes of characters assigned in 14.0 never
 * change, so the only difference is characters unassigned in 14.0 that newer versions decompose or give a
 * non-zero combining class: Python leaves them alone and treats them as starters. Cutting the string at every such
 * character, normalising the pieces with String.prototype.normalize and keeping those characters verbatim is
 * therefore exactly Python's result (a starter blocks canonical reordering).
 */
export function pyNfkd(s: string): string {
  let hasUnassigned = false;
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    if (pyIsUnassigned(cp)) {
      hasUnassigned = true;
      break;
    }
    i += cp > 0xffff ? 2 : 1;
  }
  if (!hasUnassigned) return s.normalize('NFKD');
  let out = '';
  let segStart = 0;
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (pyIsUnassigned(cp)) {
      out += s.slice(segStart, i).normalize('NFKD') + s.slice(i, i + w);
      segStart = i + w;
    }
    i += w;
  }
  return out + s.slice(segStart).normalize('NFKD');
}

/** `"".join(c for c in s if not unicodedata.combining(c))` */
export function pyDropCombining(s: string): string {
  let out = '';
  let runStart = 0;
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (pyIsCombining(cp)) {
      out += s.slice(runStart, i);
      runStart = i + w;
    }
    i += w;
  }
  return runStart === 0 ? s : out + s.slice(runStart);
}
