/**
 * SentencePiece's normalizer (normalizer.cc), reproduced byte for byte.
 *
 * The `precompiled_charsmap` of a model's normalizer_spec is
 *   <uint32 LE: trie size in bytes><Darts-clone double-array trie units (uint32 LE)><NUL-terminated strings>
 * The trie maps UTF-8 byte prefixes to an offset into the strings. Normalisation walks the UTF-8 input,
 * at each position takes the LONGEST matching prefix (among the first 32 matches, as sentencepiece does) and emits
 * its replacement; where nothing matches it copies one UTF-8 character unchanged. Around that it applies
 * remove_extra_whitespaces (drop leading spaces, collapse runs, drop trailing), add_dummy_prefix and
 * escape_whitespaces (' ' -> U+2581).
 *
 * Why not tokenizers.js: its `Precompiled` normaliser ignores the charsmap entirely (it strips a fixed set of
 * control characters and runs String.prototype.normalize('NFKC') with the engine's Unicode version), so it differs
 * from sentencepiece wherever the model's nmt_nfkc rules differ from NFKC (e.g. U+200B, U+FEFF, NUL, control
 * characters, ǅ, ...), and wherever ICU's Unicode version differs from the one the charsmap was built with.
 */
import { ModelFormatError, SpNormalizerSpec } from './protobuf';

const FIELD = 'ModelProto.normalizer_spec.precompiled_charsmap';
/** sentencepiece's kMaxTrieResultsSize: only the first 32 prefix matches are considered. */
const MAX_TRIE_RESULTS = 32;
const SPACE = 0x20;
const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581 '▁'
const REPLACEMENT_CHAR = Uint8Array.of(0xef, 0xbf, 0xbd);
const EMPTY = new Uint8Array(0);

/** Length of the UTF-8 sequence starting with `lead` (sentencepiece's OneCharLen table). */
function oneCharLen(lead: number): number {
  return [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][lead >> 4];
}

/** Valid-UTF-8 check of one character at `pos` (string_util::DecodeUTF8 semantics); returns its length or 0. */
function validCharLen(b: Uint8Array, pos: number, end: number): number {
  const c = b[pos];
  if (c < 0x80) return 1;
  const cont = (i: number) => i < end && (b[i] & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(pos + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(pos + 1) || !cont(pos + 2)) return 0;
    const cp = ((c & 0x0f) << 12) | ((b[pos + 1] & 0x3f) << 6) | (b[pos + 2] & 0x3f);
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(pos + 1) || !cont(pos + 2) || !cont(pos + 3)) return 0;
    const cp = ((c & 0x07) << 18) | ((b[pos + 1] & 0x3f) << 12) | ((b[pos + 2] & 0x3f) << 6) | (b[pos + 3] & 0x3f);
    if (cp < 0x10000 || cp > 0x10ffff) return 0;
    return 4;
  }
  return 0;
}

/** The decoded charsmap: a Darts-clone double array plus the replacement strings. */
export class PrecompiledCharsMap {
  private readonly units: Uint32Array;
  private readonly strings: Uint8Array;
  /** replacement bytes by string offset (filled on load by the validating walk). */
  private readonly replacements = new Map<number, Uint8Array>();

  constructor(blob: Uint8Array, file: string) {
    if (blob.length <= 4) throw new ModelFormatError(file, FIELD, `blob of ${blob.length} bytes is too short`);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize > blob.length - 4) {
      throw new ModelFormatError(file, FIELD, `trie size ${trieSize} exceeds the blob (${blob.length - 4} bytes after the header)`);
    }
    if (trieSize % 4 !== 0 || trieSize === 0) {
      throw new ModelFormatError(file, FIELD, `trie size ${trieSize} is not a positive multiple of 4`);
    }
    const n = trieSize / 4;
    this.units = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.strings = blob.subarray(4 + trieSize);
    this.validate(file);
  }

  // Darts-clone unit accessors.
  private static hasLeaf(u: number): boolean {
    return ((u >>> 8) & 1) === 1;
  }
  private static value(u: number): number {
    return u & 0x7fffffff;
  }
  private static label(u: number): number {
    return (u & 0x800000ff) >>> 0;
  }
  private static offset(u: number): number {
    return (u >>> 10) << ((u & (1 << 9)) >>> 6);
  }

  /**
   * Walk every node of the trie once: checks that every leaf points at a NUL-terminated
   * string inside the blob and that each replacement is valid UTF-8; caches the replacements.
   */
  private validate(file: string): void {
    const { units, strings } = this;
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const visited = new Uint8Array(units.length);
    const stack: number[] = [PrecompiledCharsMap.offset(units[0])]; // node positions after applying the offset
    while (stack.length > 0) {
      const base = stack.pop()!;
      for (let b = 0; b < 256; b++) {
        const pos = base ^ b;
        if (pos >= units.length) continue;
        const u = units[pos];
        if (PrecompiledCharsMap.label(u) !== b) continue;
        // Darts-clone builds from a DAWG, so shared suffixes are reached by several paths: check each node once.
        if (visited[pos]) continue;
        visited[pos] = 1;
        const next = pos ^ PrecompiledCharsMap.offset(u);
        if (PrecompiledCharsMap.hasLeaf(u)) {
          if (next >= units.length) throw new ModelFormatError(file, FIELD, `trie leaf ${next} outside the trie (${units.length} units)`);
          const off = PrecompiledCharsMap.value(units[next]);
          if (!this.replacements.has(off)) {
            if (off >= strings.length) throw new ModelFormatError(file, FIELD, `string offset ${off} outside the string table (${strings.length} bytes)`);
            const nul = strings.indexOf(0, off);
            if (nul < 0) throw new ModelFormatError(file, FIELD, `string at offset ${off} is not NUL-terminated`);
            const rep = strings.subarray(off, nul);
            try {
              fatal.decode(rep);
            } catch {
              throw new ModelFormatError(file, FIELD, `string at offset ${off} is not valid UTF-8`);
            }
            this.replacements.set(off, rep);
          }
        }
        stack.push(next);
      }
    }
  }

  /**
   * Longest prefix match at `pos` (considering only the first 32 matches, like sentencepiece).
   * Returns the matched length (0 if none) and sets `this.lastReplacement`.
   */
  lastReplacement: Uint8Array = EMPTY;
  longestMatch(input: Uint8Array, pos: number): number {
    const units = this.units;
    let nodePos = PrecompiledCharsMap.offset(units[0]);
    let count = 0;
    let bestLen = 0;
    let bestValue = 0;
    for (let i = pos; i < input.length; i++) {
      const c = input[i];
      nodePos ^= c;
      if (nodePos >= units.length) break;
      const u = units[nodePos];
      if (PrecompiledCharsMap.label(u) !== c) break;
      nodePos ^= PrecompiledCharsMap.offset(u);
      if (PrecompiledCharsMap.hasLeaf(u)) {
        if (count < MAX_TRIE_RESULTS) {
          bestLen = i + 1 - pos;
          bestValue = PrecompiledCharsMap.value(units[nodePos]);
        }
        count++;
      }
    }
    if (bestLen > 0) this.lastReplacement = this.replacements.get(bestValue)!;
    return bestLen;
  }

  /**
   * The Rust `spm_precompiled` crate's `transform`: the replacement of the FIRST (shortest) prefix of
   * `input[start, end)` that the trie holds, or null (the walk stops at a NUL byte, as `common_prefix_search`
   * does). Whatever follows that prefix in the chunk is dropped by the caller, as the crate does.
   */
  firstMatch(input: Uint8Array, start: number, end: number): Uint8Array | null {
    const units = this.units;
    let nodePos = PrecompiledCharsMap.offset(units[0]);
    for (let i = start; i < end; i++) {
      const c = input[i];
      if (c === 0) break;
      nodePos ^= c;
      if (nodePos >= units.length) return null;
      const u = units[nodePos];
      if (PrecompiledCharsMap.label(u) !== c) return null;
      nodePos ^= PrecompiledCharsMap.offset(u);
      if (PrecompiledCharsMap.hasLeaf(u)) return this.replacements.get(PrecompiledCharsMap.value(units[nodePos])) ?? null;
    }
    return null;
  }
}

/** Growable byte buffer. */
class ByteBuf {
  buf = new Uint8Array(256);
  len = 0;
  push(b: number): void {
    if (this.len === this.buf.length) this.grow(1);
    this.buf[this.len++] = b;
  }
  grow(extra: number): void {
    let cap = this.buf.length * 2;
    while (cap < this.len + extra) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }
}

const utf8Decoder = new TextDecoder('utf-8');

/** sentencepiece's kResultSize in PrefixMatcher::PrefixMatch: only the first 64 matches are considered. */
const MAX_USER_MATCHES = 64;

interface ByteTrieNode {
  next: Map<number, ByteTrieNode>;
  end: boolean;
}

/**
 * normalizer::PrefixMatcher over the model's USER_DEFINED pieces: the longest symbol (in UTF-8 bytes, among the
 * first 64 prefix matches) starting at a position. A matched symbol is copied through unnormalised.
 */
class UserSymbolMatcher {
  private readonly root: ByteTrieNode = { next: new Map(), end: false };

  constructor(symbols: readonly string[]) {
    for (const sym of symbols) {
      let node = this.root;
      for (const b of Buffer.from(sym, 'utf8')) {
        let child = node.next.get(b);
        if (child === undefined) {
          child = { next: new Map(), end: false };
          node.next.set(b, child);
        }
        node = child;
      }
      node.end = true;
    }
  }

  /** Length in bytes of the longest symbol at `pos`, or 0. */
  match(input: Uint8Array, pos: number): number {
    let node: ByteTrieNode | undefined = this.root;
    let found = 0;
    let best = 0;
    for (let i = pos; i < input.length && found < MAX_USER_MATCHES; i++) {
      node = node.next.get(input[i]);
      if (node === undefined) break;
      if (node.end) {
        best = i + 1 - pos;
        found++;
      }
    }
    return best;
  }
}

/** SentencePiece `Normalizer::Normalize` for one normalizer_spec. */
export class SentencePieceNormalizer {
  private readonly charsmap: PrecompiledCharsMap | null;
  private readonly userSymbols: UserSymbolMatcher | null;
  private readonly out = new ByteBuf();

  /** `userDefined`: the model's USER_DEFINED pieces, which sentencepiece leaves unnormalised. */
  constructor(
    readonly spec: SpNormalizerSpec,
    file: string,
    userDefined: readonly string[] = [],
  ) {
    this.charsmap = spec.precompiledCharsmap.length > 0 ? new PrecompiledCharsMap(spec.precompiledCharsmap, file) : null;
    this.userSymbols = userDefined.length > 0 ? new UserSymbolMatcher(userDefined) : null;
  }

  /**
   * NormalizePrefix: a USER_DEFINED symbol at `pos` unchanged, else the replacement for the longest rule matching
   * at `pos`, or the single (valid) UTF-8 character there, or U+FFFD for one malformed byte.
   * Returns [replacement, consumed bytes].
   */
  private prefix(input: Uint8Array, pos: number): [Uint8Array, number] {
    if (this.userSymbols !== null) {
      const len = this.userSymbols.match(input, pos);
      if (len > 0) return [input.subarray(pos, pos + len), len];
    }
    if (this.charsmap !== null) {
      const len = this.charsmap.longestMatch(input, pos);
      if (len > 0) return [this.charsmap.lastReplacement, len];
    }
    const len = validCharLen(input, pos, input.length);
    if (len === 0) return [REPLACEMENT_CHAR, 1];
    return [input.subarray(pos, pos + len), len];
  }

  /** Normalise UTF-8 bytes; returns UTF-8 bytes (a view on an internal buffer, valid until the next call). */
  normalizeBytes(input: Uint8Array): Uint8Array {
    const spec = this.spec;
    const out = this.out;
    out.len = 0;
    let pos = 0;
    const n = input.length;
    if (spec.removeExtraWhitespaces) {
      while (pos < n) {
        const [rep, consumed] = this.prefix(input, pos);
        if (!(rep.length === 1 && rep[0] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos >= n) return out.buf.subarray(0, 0);
    const pushSpace = () => {
      if (spec.escapeWhitespaces) {
        out.push(SPACE_SYMBOL[0]);
        out.push(SPACE_SYMBOL[1]);
        out.push(SPACE_SYMBOL[2]);
      } else {
        out.push(SPACE);
      }
    };
    if (spec.addDummyPrefix) pushSpace();
    let isPrevSpace = spec.removeExtraWhitespaces;
    while (pos < n) {
      const [rep, consumed] = this.prefix(input, pos);
      let s = 0;
      if (isPrevSpace) while (s < rep.length && rep[s] === SPACE) s++;
      if (s < rep.length) {
        for (let k = s; k < rep.length; k++) {
          if (rep[k] === SPACE && spec.escapeWhitespaces) pushSpace();
          else out.push(rep[k]);
        }
        isPrevSpace = rep[rep.length - 1] === SPACE;
      }
      pos += consumed;
      if (!spec.removeExtraWhitespaces) isPrevSpace = false;
    }
    if (spec.removeExtraWhitespaces) {
      const b = out.buf;
      if (spec.escapeWhitespaces) {
        while (out.len >= 3 && b[out.len - 3] === SPACE_SYMBOL[0] && b[out.len - 2] === SPACE_SYMBOL[1] && b[out.len - 1] === SPACE_SYMBOL[2]) {
          out.len -= 3;
        }
      } else {
        while (out.len >= 1 && b[out.len - 1] === SPACE) out.len -= 1;
      }
    }
    return out.buf.subarray(0, out.len);
  }

  /** Normalise a JS string (encoded as UTF-8 first; lone surrogates become U+FFFD, as Buffer.from does). */
  normalize(text: string): string {
    return utf8Decoder.decode(this.normalizeBytes(Buffer.from(text, 'utf8')));
  }
}
