/**
 * KoBertTokenizer: monologg's KoBertTokenizer (KoBERT-Transformers, the tokenizer of the seed
 * ko-sentence-transformers) as used by the seed's module, reproduced exactly:
 *
 *   text.strip()                                  (the seed module, Python whitespace)
 *   split on the literal special tokens [UNK] [SEP] [PAD] [CLS] [MASK]   (transformers PreTrainedTokenizer)
 *   each other chunk -> _tokenize:
 *     " ".join(chunk.strip().split()); "``" and "''" -> '"'; NFKD; drop combining characters
 *     sp.encode(text, out_type=str)              (SentencePieceProcessor: charsmap normaliser + unigram)
 *     digit-comma rule: a piece like "▁18," is re-encoded as sp("18") + [","]
 *   pieces -> ids through vocab.txt (not SentencePiece ids), unknown -> [UNK]
 *   [CLS] + ids[: maxLength - 2] + [SEP]
 */
import * as fs from 'fs';
import * as path from 'path';
import { SentencePieceProcessor } from './sentencepiece';
import { codePoints, pyDropCombining, pyIsDigit, pyJoinSplit, pyNfkd, pyStrip } from './python-text';

export const KOBERT_SP_MODEL_FILE = 'tokenizer_78b3253a26.model';
export const KOBERT_VOCAB_FILE = 'vocab.txt';
const SPIECE_UNDERLINE = '\u2581';
const DEFAULT_MODEL_MAX_LENGTH = 512;

const UNK = '[UNK]';
const SEP = '[SEP]';
const PAD = '[PAD]';
const CLS = '[CLS]';
const MASK = '[MASK]';
const SPECIAL_TOKENS = [UNK, SEP, PAD, CLS, MASK];

/**
 * vocab.txt as monologg's loader reads it: text mode (universal newlines), one token per line, `token.strip()`,
 * line index = id (a later duplicate overrides an earlier one, as `token2idx[token] = idx` does).
 */
export function parseVocabTxt(text: string, file: string): Map<string, number> {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new Error(`${file}: vocab file is empty`);
  const map = new Map<string, number>();
  lines.forEach((line, i) => map.set(pyStrip(line), i));
  return map;
}

export interface KoBertTokenizerOptions {
  /** tokenizer_config.json's model_max_length (default 512) */
  modelMaxLength?: number;
}

export class KoBertTokenizer {
  readonly vocabSize: number;
  readonly padTokenId: number;
  readonly clsTokenId: number;
  readonly sepTokenId: number;
  readonly unkTokenId: number;
  readonly maskTokenId: number;
  readonly modelMaxLength: number;
  /** special token -> id (they are matched literally in the input text) */
  private readonly specialIds: Map<string, number>;

  constructor(
    readonly sp: SentencePieceProcessor,
    readonly vocab: Map<string, number>,
    vocabFile: string,
    options: KoBertTokenizerOptions = {},
  ) {
    const need = (tok: string): number => {
      const id = vocab.get(tok);
      if (id === undefined) throw new Error(`${vocabFile}: vocab has no ${tok} token`);
      return id;
    };
    this.unkTokenId = need(UNK);
    this.sepTokenId = need(SEP);
    this.padTokenId = need(PAD);
    this.clsTokenId = need(CLS);
    this.maskTokenId = need(MASK);
    this.specialIds = new Map(SPECIAL_TOKENS.map((t) => [t, vocab.get(t)!]));
    this.vocabSize = vocab.size;
    const mml = options.modelMaxLength ?? DEFAULT_MODEL_MAX_LENGTH;
    if (!Number.isInteger(mml) || mml < 2) throw new RangeError(`modelMaxLength must be an integer >= 2, got ${mml}`);
    this.modelMaxLength = mml;
  }

  static fromFiles(spModelPath: string, vocabPath: string, options: KoBertTokenizerOptions = {}): KoBertTokenizer {
    const sp = SentencePieceProcessor.fromFile(spModelPath);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(vocabPath));
    } catch (e) {
      throw new Error(`${vocabPath}: cannot read vocab file: ${(e as Error).message}`);
    }
    return new KoBertTokenizer(sp, parseVocabTxt(text, vocabPath), vocabPath, options);
  }

  /**
   * Load from a directory holding tokenizer_78b3253a26.model (or exactly one other *.model) and vocab.txt;
   * model_max_length is read from tokenizer_config.json when present.
   */
  static async fromDirectory(dir: string): Promise<KoBertTokenizer> {
    let entries: string[];
    try {
      entries = await fs.promises.readdir(dir);
    } catch (e) {
      throw new Error(`${dir}: cannot read tokenizer directory: ${(e as Error).message}`);
    }
    let modelFile: string;
    if (entries.includes(KOBERT_SP_MODEL_FILE)) {
      modelFile = KOBERT_SP_MODEL_FILE;
    } else {
      const models = entries.filter((e) => e.endsWith('.model')).sort();
      if (models.length !== 1) {
        throw new Error(
          `${dir}: expected ${KOBERT_SP_MODEL_FILE} or exactly one *.model SentencePiece file, found ${models.length ? models.join(', ') : 'none'}`,
        );
      }
      modelFile = models[0];
    }
    if (!entries.includes(KOBERT_VOCAB_FILE)) throw new Error(`${path.join(dir, KOBERT_VOCAB_FILE)}: vocab file not found`);
    const options: KoBertTokenizerOptions = {};
    const cfgPath = path.join(dir, 'tokenizer_config.json');
    if (entries.includes('tokenizer_config.json')) {
      let cfg: unknown;
      try {
        cfg = JSON.parse(await fs.promises.readFile(cfgPath, 'utf8'));
      } catch (e) {
        throw new Error(`${cfgPath}: cannot parse: ${(e as Error).message}`);
      }
      const mml = (cfg as { model_max_length?: unknown } | null)?.model_max_length;
      // transformers writes a huge sentinel (VERY_LARGE_INTEGER ~1e30) when no limit is known: keep 512 then.
      if (typeof mml === 'number' && Number.isInteger(mml) && mml >= 2 && mml <= 1e6) options.modelMaxLength = mml;
    }
    return KoBertTokenizer.fromFiles(path.join(dir, modelFile), path.join(dir, KOBERT_VOCAB_FILE), options);
  }

  /** KoBertTokenizer.preprocess_text (remove_space=True, keep_accents=False, do_lower_case=False). */
  static preprocessText(text: string): string {
    let out = pyJoinSplit(text);
    out = out.replaceAll('``', '"').replaceAll("''", '"');
    return pyDropCombining(pyNfkd(out));
  }

  /** KoBertTokenizer._tokenize for one chunk without special tokens. */
  private tokenizeChunk(text: string): string[] {
    const pieces = this.sp.encodeAsPieces(KoBertTokenizer.preprocessText(text));
    const out: string[] = [];
    for (const piece of pieces) {
      // Python: len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()  (code points)
      if (piece.length > 1 && piece.endsWith(',')) {
        const cps = codePoints(piece);
        if (cps.length > 1 && pyIsDigit(cps[cps.length - 2])) {
          const body = piece.slice(0, -1).replaceAll(SPIECE_UNDERLINE, '');
          const cur = this.sp.encodeAsPieces(body);
          if (cur.length === 0) {
            // Python would raise IndexError on cur_pieces[0]; cannot happen for a digit.
            throw new Error(`KoBertTokenizer: SentencePiece returned no pieces for ${JSON.stringify(body)}`);
          }
          if (!piece.startsWith(SPIECE_UNDERLINE) && cur[0].startsWith(SPIECE_UNDERLINE)) {
            // cur[0][0] == "▁": "▁" is one UTF-16 unit, so slicing by 1 equals Python's [1:]
            if (cur[0] === SPIECE_UNDERLINE) cur.shift();
            else cur[0] = cur[0].slice(1);
          }
          cur.push(',');
          out.push(...cur);
          continue;
        }
      }
      out.push(piece);
    }
    return out;
  }

  /** Split on literal special tokens (earliest occurrence first). */
  private splitSpecial(text: string): Array<{ special: boolean; text: string }> {
    const parts: Array<{ special: boolean; text: string }> = [];
    let pos = 0;
    if (!text.includes('[')) return [{ special: false, text }];
    while (pos < text.length) {
      let best = -1;
      let bestTok = '';
      for (const tok of SPECIAL_TOKENS) {
        const i = text.indexOf(tok, pos);
        if (i >= 0 && (best < 0 || i < best || (i === best && tok.length > bestTok.length))) {
          best = i;
          bestTok = tok;
        }
      }
      if (best < 0) break;
      if (best > pos) parts.push({ special: false, text: text.slice(pos, best) });
      parts.push({ special: true, text: bestTok });
      pos = best + bestTok.length;
    }
    if (pos < text.length) parts.push({ special: false, text: text.slice(pos) });
    return parts;
  }

  /** tokenizer.tokenize(text): pieces after the digit-comma rule; literal special tokens stay as themselves. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const part of this.splitSpecial(text)) {
      if (part.special) out.push(part.text);
      else out.push(...this.tokenizeChunk(part.text));
    }
    return out;
  }

  /** Pieces/special tokens -> ids through vocab.txt ([UNK] for anything else). */
  convertTokensToIds(tokens: string[]): number[] {
    return tokens.map((t) => this.specialIds.get(t) ?? this.vocab.get(t) ?? this.unkTokenId);
  }

  /**
   * Ids as the seed module produces them: the text is stripped (Python str.strip), tokenized, truncated to
   * `maxLength` tokens including [CLS] and [SEP] (default modelMaxLength), and wrapped in [CLS] ... [SEP].
   */
  encode(text: string, maxLength: number = this.modelMaxLength): number[] {
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
    if (typeof text !== 'string') throw new TypeError(`encode expects a string, got ${typeof text}`);
    const ids = this.convertTokensToIds(this.tokenize(pyStrip(text)));
    if (ids.length > maxLength - 2) ids.length = maxLength - 2;
    return [this.clsTokenId, ...ids, this.sepTokenId];
  }

  encodeBatch(texts: string[], maxLength: number = this.modelMaxLength): number[][] {
    return texts.map((t) => this.encode(t, maxLength));
  }
}
