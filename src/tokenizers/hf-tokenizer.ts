/**
 * Any Hugging Face `tokenizer.json` (WordPiece, Unigram, BPE) through `@huggingface/tokenizers`, with the
 * settings transformers applies on top of the file: tokenizer_config.json (`do_lower_case`, `strip_accents`,
 * `tokenize_chinese_chars` rewrite a BertNormalizer like BertTokenizerFast does; `model_max_length`) and
 * special_tokens_map.json (read for completeness; the ids come from tokenizer.json's post-processor).
 *
 * Truncation matches transformers' `truncation=True` (longest_first, right side) for one text: the text is
 * encoded without special tokens, cut to `maxLength - (number of special tokens)`, then wrapped in the
 * post-processor's prefix and suffix ids (e.g. [CLS] … [SEP], <s> … </s>).
 *
 * Unigram models, and files with a `Precompiled` normaliser, are tokenized by our own port of the Rust crate's
 * pipeline (hf-exact.ts) instead: tokenizers.js ignores the Precompiled charsmap (plain NFKC), its Metaspace does
 * not split words, and its Unigram Viterbi breaks score ties differently. WordPiece and BPE files stay on
 * tokenizers.js (measured exact on the KorNLU sentences, test/hf-tokenizer.test.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';

import { readJsonObject } from '../models/config';
import { ExactPipeline, needsExactPipeline } from './hf-exact';

/** What the word-embedding module needs from a tokenizer. */
export interface TextTokenizer {
  readonly modelMaxLength: number;
  readonly vocabSize: number;
  /** Token ids with special tokens, at most `maxLength` of them. */
  encode(text: string, maxLength?: number): number[];
}

const HUGE = 1e6;

function specialsOf(file: string, pp: unknown): { prefix: number[]; suffix: number[] } {
  const none = { prefix: [] as number[], suffix: [] as number[] };
  if (pp === null || pp === undefined) return none;
  if (typeof pp !== 'object') throw new Error(`${file}: "post_processor" must be an object`);
  const o = pp as Record<string, unknown>;
  const pairId = (v: unknown, what: string): number => {
    if (!Array.isArray(v) || v.length !== 2 || !Number.isInteger(v[1])) throw new Error(`${file}: post_processor.${what} must be [token, id]`);
    return v[1] as number;
  };
  switch (o.type) {
    case 'BertProcessing':
    case 'RobertaProcessing':
      return { prefix: [pairId(o.cls, 'cls')], suffix: [pairId(o.sep, 'sep')] };
    case 'ByteLevel':
      return none;
    case 'TemplateProcessing': {
      const single = o.single;
      const st = o.special_tokens as Record<string, { ids?: unknown }> | undefined;
      if (!Array.isArray(single)) throw new Error(`${file}: post_processor.single must be a list`);
      const out = { prefix: [] as number[], suffix: [] as number[] };
      let seen = false;
      for (const piece of single as Record<string, Record<string, unknown>>[]) {
        if (piece.Sequence) {
          if (seen) throw new Error(`${file}: post_processor.single holds the sequence twice`);
          seen = true;
        } else if (piece.SpecialToken) {
          const id = String(piece.SpecialToken.id);
          const ids = st?.[id]?.ids;
          if (!Array.isArray(ids) || ids.some((x) => !Number.isInteger(x))) {
            throw new Error(`${file}: post_processor.special_tokens has no ids for "${id}"`);
          }
          (seen ? out.suffix : out.prefix).push(...(ids as number[]));
        } else {
          throw new Error(`${file}: post_processor.single has an unknown piece ${JSON.stringify(piece)}`);
        }
      }
      return out;
    }
    case 'Sequence': {
      const out = { prefix: [] as number[], suffix: [] as number[] };
      for (const p of (o.processors as unknown[]) ?? []) {
        const s = specialsOf(file, p);
        out.prefix.push(...s.prefix);
        out.suffix.push(...s.suffix);
      }
      return out;
    }
  }
  throw new Error(`${file}: post_processor type ${JSON.stringify(o.type)} is not supported`);
}

export class HfTokenizer implements TextTokenizer {
  readonly modelMaxLength: number;
  readonly vocabSize: number;
  readonly prefix: number[];
  readonly suffix: number[];
  readonly specialTokensMap: Record<string, unknown>;

  /** the exact (Rust-semantics) pipeline, or null where tokenizers.js is used */
  private readonly exact: ExactPipeline | null;

  private constructor(
    private readonly tok: Tokenizer,
    tokenizerJson: Record<string, unknown>,
    file: string,
    modelMaxLength: number,
    specialTokensMap: Record<string, unknown>,
  ) {
    this.modelMaxLength = modelMaxLength;
    this.exact = needsExactPipeline(tokenizerJson) ? new ExactPipeline(tokenizerJson, file, tok) : null;
    const s = specialsOf(file, tokenizerJson.post_processor);
    this.prefix = s.prefix;
    this.suffix = s.suffix;
    this.specialTokensMap = specialTokensMap;
    const model = tokenizerJson.model as Record<string, unknown>;
    let n = 0;
    const vocab = model.vocab;
    if (Array.isArray(vocab)) n = vocab.length;
    else if (vocab && typeof vocab === 'object') for (const v of Object.values(vocab)) n = Math.max(n, (v as number) + 1);
    for (const a of (tokenizerJson.added_tokens as { id: number }[] | undefined) ?? []) n = Math.max(n, a.id + 1);
    this.vocabSize = n;
  }

  /** True when the folder has a tokenizer.json. */
  static existsIn(dir: string): boolean {
    return fs.existsSync(path.join(dir, 'tokenizer.json'));
  }

  static fromDirectory(dir: string): HfTokenizer {
    const file = path.join(dir, 'tokenizer.json');
    const json = readJsonObject(file);
    const model = json.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object' || !['WordPiece', 'Unigram', 'BPE'].includes(String(model.type))) {
      throw new Error(`${file}: model.type must be WordPiece, Unigram or BPE, got ${JSON.stringify(model?.type)}`);
    }
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const cfg = fs.existsSync(cfgFile) ? readJsonObject(cfgFile) : {};
    const stmFile = path.join(dir, 'special_tokens_map.json');
    const stm = fs.existsSync(stmFile) ? readJsonObject(stmFile) : {};
    // BertTokenizerFast: tokenizer_config's do_lower_case / strip_accents / tokenize_chinese_chars override the
    // BertNormalizer stored in tokenizer.json.
    const norm = json.normalizer as Record<string, unknown> | null | undefined;
    if (norm && norm.type === 'BertNormalizer') {
      if (typeof cfg.do_lower_case === 'boolean') norm.lowercase = cfg.do_lower_case;
      if (cfg.strip_accents === null || typeof cfg.strip_accents === 'boolean') norm.strip_accents = cfg.strip_accents;
      if (typeof cfg.tokenize_chinese_chars === 'boolean') norm.handle_chinese_chars = cfg.tokenize_chinese_chars;
    } else if (cfg.do_lower_case === true && !norm) {
      json.normalizer = { type: 'Lowercase' };
    }
    let mml = Infinity;
    if (typeof cfg.model_max_length === 'number' && Number.isInteger(cfg.model_max_length) && cfg.model_max_length >= 2 && cfg.model_max_length <= HUGE) {
      mml = cfg.model_max_length;
    }
    let tok: Tokenizer;
    try {
      // The library reads only a few tokenizer_config fields; pass none that would change tokenization.
      tok = new Tokenizer(json as never, {} as never);
    } catch (e) {
      throw new Error(`${file}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    return new HfTokenizer(tok, json, file, mml, stm);
  }

  /** Whether this tokenizer runs the exact Rust-semantics pipeline (Unigram / Precompiled) rather than tokenizers.js. */
  get isExact(): boolean {
    return this.exact !== null;
  }

  /** Ids without special tokens (no truncation), always through tokenizers.js (for comparisons). */
  encodeRawTokenizersJs(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Ids without special tokens (no truncation). */
  encodeRaw(text: string): number[] {
    if (this.exact !== null) return this.exact.encode(text);
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  encode(text: string, maxLength: number = this.modelMaxLength): number[] {
    const body = this.encodeRaw(text);
    const room = maxLength - this.prefix.length - this.suffix.length;
    if (room < 0) throw new RangeError(`maxLength ${maxLength} leaves no room for the ${this.prefix.length + this.suffix.length} special tokens`);
    const cut = body.length > room ? body.slice(0, room) : body;
    return [...this.prefix, ...cut, ...this.suffix];
  }
}
