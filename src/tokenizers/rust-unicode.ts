/**
 * Unicode normalisation with the semantics of the Rust `tokenizers` crate (what Python `tokenizers` runs), on top
 * of Node's ICU.
 *
 * The crate's NFD/NFKD/NFC/NFKC and StripAccents come from `unicode-normalization-alignments`, whose Unicode tables
 * are much older than Node 20's ICU (Unicode 15-17). Unicode's stability policy means the two agree on every code
 * point both know; they differ only on code points the crate does not know, which it treats as starters with no
 * decomposition that never compose. `NORMALIZATION_OPAQUE` lists the ones Node's ICU would change (measured per
 * code point against the crate by test/golden/make_golden_default_tok.py --tables): the text is split at them,
 * each piece normalised by Node and the opaque code points copied through, which is what the crate computes
 * (a ccc-0 code point with no decomposition blocks reordering and composition across it).
 * StripAccents removes exactly the code points the crate's `is_combining_mark` accepts (a table of the crate's
 * own answers, `STRIP_ACCENTS_REMOVED`), not Node's \p{M} (newer: 448 more marks).
 * Still version-dependent: code points assigned after Node's own Unicode version (both leave them alone).
 */
import { NORMALIZATION_OPAQUE, STRIP_ACCENTS_REMOVED } from './rust-unicode-tables';

function rangeSet(flat: readonly number[]): (cp: number) => boolean {
  const starts = new Int32Array(flat.length / 2);
  const ends = new Int32Array(flat.length / 2);
  for (let i = 0; i < starts.length; i++) {
    starts[i] = flat[2 * i];
    ends[i] = flat[2 * i + 1];
  }
  return (cp: number): boolean => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (cp < starts[mid]) hi = mid - 1;
      else if (cp > ends[mid]) lo = mid + 1;
      else return true;
    }
    return false;
  };
}

const isOpaque = rangeSet(NORMALIZATION_OPAQUE);
const isCombiningMark = rangeSet(STRIP_ACCENTS_REMOVED);
const OPAQUE_MIN = NORMALIZATION_OPAQUE.length > 0 ? NORMALIZATION_OPAQUE[0] : 0x110000;

export type NormalForm = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';

/** `String.prototype.normalize` as the crate's tables would do it (see the file comment). */
export function rustNormalize(text: string, form: NormalForm): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    if (cp >= OPAQUE_MIN && isOpaque(cp)) {
      out += text.slice(from, i).normalize(form) + text.slice(i, i + w);
      from = i + w;
    }
    i += w;
  }
  return from === 0 ? text.normalize(form) : out + text.slice(from).normalize(form);
}

/** The crate's StripAccents: drop every code point its `is_combining_mark` accepts. */
export function rustStripAccents(text: string): string {
  let out = '';
  for (const ch of text) if (!isCombiningMark(ch.codePointAt(0)!)) out += ch;
  return out;
}

/** Rust `char::is_whitespace` (the White_Space property; unlike JS trim(), not U+FEFF). */
const WS = /^\p{White_Space}$/u;
export function isRustWhitespace(ch: string): boolean {
  return WS.test(ch);
}

/** NormalizedString::strip / lstrip / rstrip (char::is_whitespace). */
export function rustStrip(text: string, left: boolean, right: boolean): string {
  const cps = Array.from(text);
  let a = 0;
  let b = cps.length;
  if (left) while (a < b && isRustWhitespace(cps[a])) a++;
  if (right) while (b > a && isRustWhitespace(cps[b - 1])) b--;
  return a === 0 && b === cps.length ? text : cps.slice(a, b).join('');
}

/** NormalizedString::lowercase: char by char `char::to_lowercase` (no final-sigma rule, unlike JS toLowerCase). */
export function rustLowercase(text: string): string {
  let out = '';
  for (const ch of text) out += ch.toLowerCase();
  return out;
}
