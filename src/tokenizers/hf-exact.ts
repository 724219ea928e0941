/**
 * The encode pipeline of the Rust `tokenizers` crate (tokenizer/mod.rs `encode_single_sequence`), for the
 * tokenizer.json files that @huggingface/tokenizers does not tokenize exactly: Unigram models, and any file with
 * a `Precompiled` normaliser (tokenizers.js ignores its charsmap and runs plain NFKC).
 *
 *   added tokens (not normalized) split off the raw text (leftmost-longest; lstrip / rstrip / single_word)
 *   -> each other piece: normaliser chain (exact versions below) -> added tokens (normalized) split off
 *   -> pre-tokenizer (Metaspace / WhitespaceSplit / Sequence exact; others through tokenizers.js)
 *   -> model per word (Unigram: rust-unigram.ts; WordPiece / BPE: tokenizers.js's model, measured exact).
 * Normalisers done here: Sequence, Replace (String; Regex as a JS /gu regex — the crate uses Oniguruma, the same
 * for the simple patterns in real files), NFC/NFD/NFKC/NFKD and StripAccents (rust-unicode.ts: the crate's older
 * Unicode tables), Lowercase, Strip, Prepend, Precompiled (rust-precompiled.ts). Any other normaliser runs
 * through tokenizers.js.
 */
import * as tjs from '@huggingface/tokenizers';

import { RustPrecompiled } from './rust-precompiled';
import { RustUnigram } from './rust-unigram';
import { isRustWhitespace, NormalForm, rustLowercase, rustNormalize, rustStrip, rustStripAccents } from './rust-unicode';

type Json = Record<string, unknown>;
type Normalize = (s: string) => string;
/** A pre-tokenized word list from one normalised piece; `first` = the piece starts the original text. */
type PreTokenize = (s: string, first: boolean) => string[];

function tjsComponent(kind: 'Normalizer' | 'PreTokenizer', cfg: Json, file: string): unknown {
  const name = `${String(cfg.type)}${kind}`;
  const C = (tjs as unknown as Record<string, new (c: Json) => unknown>)[name];
  if (typeof C !== 'function') throw new Error(`${file}: ${kind.toLowerCase()} type ${JSON.stringify(cfg.type)} is not supported`);
  return new C(cfg);
}

function regexOf(pattern: unknown, file: string, what: string): RegExp | string {
  const p = pattern as Json | undefined;
  if (p && typeof p.String === 'string') return p.String;
  if (p && typeof p.Regex === 'string') return new RegExp(p.Regex, 'gu');
  throw new Error(`${file}: ${what}.pattern must be {String} or {Regex}`);
}

export function buildNormalizer(cfg: unknown, file: string): Normalize {
  if (cfg === null || cfg === undefined) return (s) => s;
  const c = cfg as Json;
  switch (c.type) {
    case 'Sequence': {
      const parts = ((c.normalizers as unknown[]) ?? []).map((x) => buildNormalizer(x, file));
      return (s) => parts.reduce((t, f) => f(t), s);
    }
    case 'Replace': {
      const pat = regexOf(c.pattern, file, 'normalizer');
      const content = String(c.content ?? '');
      return typeof pat === 'string' ? (s) => (pat.length === 0 ? s : s.split(pat).join(content)) : (s) => s.replace(pat, () => content);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = c.type as NormalForm;
      return (s) => rustNormalize(s, form);
    }
    case 'StripAccents':
      return rustStripAccents;
    case 'Lowercase':
      return rustLowercase;
    case 'Strip': {
      const l = c.strip_left !== false;
      const r = c.strip_right !== false;
      return (s) => rustStrip(s, l, r);
    }
    case 'Prepend': {
      const p = String(c.prepend ?? '');
      return (s) => (s.length === 0 ? s : p + s);
    }
    case 'Precompiled': {
      if (typeof c.precompiled_charsmap !== 'string' || c.precompiled_charsmap.length === 0) return (s) => s;
      const pc = RustPrecompiled.fromBase64(c.precompiled_charsmap, file);
      return (s) => pc.normalize(s);
    }
    default: {
      const n = tjsComponent('Normalizer', c, file) as { normalize(s: string): string };
      return (s) => n.normalize(s);
    }
  }
}

/** NormalizedString::split(delim, MergedWithNext): each delimiter starts a new piece; empty pieces dropped. */
function splitMergedWithNext(s: string, delim: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = s.indexOf(delim); i >= 0; i = s.indexOf(delim, i + delim.length)) {
    if (i > from) out.push(s.slice(from, i));
    from = i;
  }
  if (from < s.length) out.push(s.slice(from));
  return out;
}

export function buildPreTokenizer(cfg: unknown, file: string): PreTokenize {
  if (cfg === null || cfg === undefined) return (s) => [s];
  const c = cfg as Json;
  switch (c.type) {
    case 'Sequence': {
      const parts = ((c.pretokenizers as unknown[]) ?? []).map((x) => buildPreTokenizer(x, file));
      return (s, first) => parts.reduce<string[]>((words, f) => words.flatMap((w, i) => f(w, first && i === 0)), [s]);
    }
    case 'Metaspace': {
      const rep = String(c.replacement ?? '\u2581');
      const scheme = String(c.prepend_scheme ?? (c.add_prefix_space === false ? 'never' : 'always'));
      const split = c.split !== false;
      return (s, first) => {
        let t = s.split(' ').join(rep);
        if (!t.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && first))) t = rep + t;
        return split ? splitMergedWithNext(t, rep) : [t];
      };
    }
    case 'WhitespaceSplit':
      return (s) => {
        const out: string[] = [];
        let cur = '';
        for (const ch of s) {
          if (isRustWhitespace(ch)) {
            if (cur) out.push(cur);
            cur = '';
          } else cur += ch;
        }
        if (cur) out.push(cur);
        return out;
      };
    default: {
      const p = tjsComponent('PreTokenizer', c, file) as { pre_tokenize_text(s: string, o?: unknown): string[] };
      return (s, first) => p.pre_tokenize_text(s, { section_index: first ? 0 : 1 });
    }
  }
}

interface Added {
  content: string;
  id: number;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

const WORD = /^[\p{L}\p{N}_\p{M}]$/u;

/** AddedVocabulary::find_matches: [text, id | null] pieces, added tokens matched leftmost-longest. */
function splitAdded(text: string, tokens: readonly Added[]): Array<[string, number | null]> {
  if (tokens.length === 0 || text.length === 0) return [[text, null]];
  const out: Array<[string, number | null]> = [];
  let startOffset = 0;
  let pos = 0;
  while (pos < text.length) {
    let best: Added | null = null;
    for (const t of tokens) if (t.content.length > 0 && text.startsWith(t.content, pos) && (best === null || t.content.length > best.content.length)) best = t;
    if (best === null) {
      pos += 1;
      continue;
    }
    let start = pos;
    let stop = pos + best.content.length;
    pos = stop;
    if (best.singleWord) {
      const before = text.slice(0, start);
      const after = text.slice(stop);
      const lastBefore = Array.from(before).pop();
      const firstAfter = after.length ? String.fromCodePoint(after.codePointAt(0)!) : undefined;
      if ((lastBefore !== undefined && WORD.test(lastBefore)) || (firstAfter !== undefined && WORD.test(firstAfter))) continue;
    }
    if (best.lstrip) {
      let s = start;
      while (s > 0) {
        const cu = text.charCodeAt(s - 1);
        const w = cu >= 0xdc00 && cu <= 0xdfff && s >= 2 ? 2 : 1;
        if (!isRustWhitespace(text.slice(s - w, s))) break;
        s -= w;
      }
      start = Math.max(s, startOffset);
    }
    if (best.rstrip) {
      while (stop < text.length) {
        const ch = String.fromCodePoint(text.codePointAt(stop)!);
        if (!isRustWhitespace(ch)) break;
        stop += ch.length;
      }
      pos = stop;
    }
    if (startOffset < start) out.push([text.slice(startOffset, start), null]);
    out.push([text.slice(start, stop), best.id]);
    startOffset = stop;
  }
  if (startOffset !== text.length) out.push([text.slice(startOffset), null]);
  return out;
}

export class ExactPipeline {
  private readonly normalize: Normalize;
  private readonly preTokenize: PreTokenize;
  private readonly raw: Added[] = [];
  private readonly normalized: Added[] = [];
  private readonly model: (word: string) => number[];

  constructor(json: Json, file: string, tok: tjs.Tokenizer) {
    this.normalize = buildNormalizer(json.normalizer, file);
    this.preTokenize = buildPreTokenizer(json.pre_tokenizer, file);
    for (const a of (json.added_tokens as Json[] | undefined) ?? []) {
      const t: Added = { content: String(a.content), id: Number(a.id), singleWord: !!a.single_word, lstrip: !!a.lstrip, rstrip: !!a.rstrip };
      if (a.normalized === true && a.special !== true) this.normalized.push({ ...t, content: this.normalize(t.content) });
      else this.raw.push(t);
    }
    const model = json.model as Json;
    if (model.type === 'Unigram') {
      if (model.byte_fallback === true) throw new Error(`${file}: Unigram with byte_fallback is not supported`);
      const u = new RustUnigram(model.vocab as Array<[string, number]>, model.unk_id === null || model.unk_id === undefined ? null : Number(model.unk_id), file);
      this.model = (w) => u.encode(w);
    } else {
      const m = (tok as unknown as { model: ((words: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number } }).model;
      this.model = (w) => m([w]).map((t) => m.tokens_to_ids.get(t) ?? (m.unk_token_id as number));
    }
  }

  /** Ids without special tokens. */
  encode(text: string): number[] {
    const ids: number[] = [];
    let first = true;
    for (const [piece, id] of splitAdded(text, this.raw)) {
      if (id !== null) {
        ids.push(id);
        first = false;
        continue;
      }
      const norm = this.normalize(piece);
      for (const [sub, id2] of splitAdded(norm, this.normalized)) {
        if (id2 !== null) ids.push(id2);
        else if (sub.length > 0) for (const w of this.preTokenize(sub, first)) ids.push(...this.model(w));
        first = false;
      }
      first = false;
    }
    return ids;
  }
}

/** True when the exact pipeline must be used: a Unigram model or a Precompiled normaliser anywhere. */
export function needsExactPipeline(json: Json): boolean {
  const model = json.model as Json | undefined;
  if (model?.type === 'Unigram') return true;
  const has = (n: unknown): boolean => {
    if (!n || typeof n !== 'object') return false;
    const o = n as Json;
    return o.type === 'Precompiled' || (o.type === 'Sequence' && Array.isArray(o.normalizers) && o.normalizers.some(has));
  };
  return has(json.normalizer);
}
