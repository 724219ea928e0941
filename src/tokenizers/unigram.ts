/**
 * SentencePiece unigram segmentation (unigram_model.cc `Model::EncodeOptimized` + the unknown-piece merge of
 * `SentencePieceProcessor::Encode`), and a tokenizers.js Unigram built from the same model for cross-checking.
 *
 * Why the Viterbi is written here rather than taken from tokenizers.js (`Unigram` / `TokenLattice`):
 *  - sentencepiece accumulates path scores in float32 (`float best_path_score`, `float unk_score = min_score -
 *    kUnkPenalty`), tokenizers.js in float64. Float32 addition is not associative, so two segmentations with equal
 *    exact scores, e.g. "000" = "00"+"0" vs "0"+"00" after a prefix P ((P+a)+b vs (P+b)+a), get different float32
 *    sums, and sentencepiece's choice is decided by that rounding; tokenizers.js decides differently. Measured:
 *    tokenizers.js differs from sentencepiece on 4 of the 25,406 KorNLU sentences (e.g. "38,000" -> "0","00"
 *    instead of "00","0"), and on ~10 of 20,000 fuzz strings; the float32 Viterbi below on none
 *    (test/tokenizer.test.ts, "Unigram: float32 path scores ...").
 *  - tokenizers.js puts every vocab entry (incl. <unk>, <s>, </s> and UNUSED pieces) into its trie, and its
 *    unknown-score uses the minimum over all scores; sentencepiece's trie holds only NORMAL/USER_DEFINED pieces
 *    (UNUSED are skipped) and min_score is over NORMAL pieces. (The cross-check builder below works around this.)
 *  - it is several times slower (it clones lattice nodes for every edge).
 * The segmentation rules are otherwise the same: candidates are visited by start position then length, ties keep
 * the earlier start (strict `>`), an unknown piece covers exactly one character and is added only where no
 * one-character piece exists, and consecutive unknown pieces are merged into one.
 * USER_DEFINED pieces (e.g. skt/kobert-base-v1's [CLS] [SEP]) are in the trie too, scored as sentencepiece scores
 * them so that they always win: `length_in_bytes * max_score - 0.1` (max_score = the highest NORMAL score, at least
 * FLT_MIN), computed in double as the C++ expression is (float product, double difference), the candidate path
 * score compared in double and stored as float.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFormatError, PieceType, SpModelProto } from './protobuf';

/** sentencepiece unigram_model.h: kUnkPenalty. */
const UNK_PENALTY = 10.0;

/** A code-point trie over the pieces (shared with rust-unigram.ts). */
export interface TrieNode {
  next: Map<number, TrieNode>;
  /** id of the piece ending here, or -1 */
  id: number;
}

/** The code points of a string and the UTF-16 offset of each, plus the end offset (lattice positions). */
export function codePointsWithOffsets(text: string): { cps: number[]; offs: number[] } {
  const cps: number[] = [];
  const offs: number[] = [];
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    cps.push(cp);
    offs.push(i);
    i += cp > 0xffff ? 2 : 1;
  }
  offs.push(text.length);
  return { cps, offs };
}

export interface UnigramPiece {
  piece: string;
  /** index in the SentencePiece model (not the KoBERT vocab id) */
  id: number;
  unknown: boolean;
}

export class SentencePieceUnigram {
  private readonly root: TrieNode = { next: new Map(), id: -1 };
  private readonly scores: Float32Array;
  /** per piece: the double score of a USER_DEFINED piece, NaN for every other piece */
  private readonly userScores: Float64Array;
  readonly unkId: number;
  readonly unkScore: number;

  constructor(
    readonly model: SpModelProto,
    file: string,
  ) {
    const { pieces } = model;
    this.scores = new Float32Array(pieces.length);
    this.userScores = new Float64Array(pieces.length).fill(NaN);
    let minScore = 3.4028234663852886e38; // FLT_MAX
    let maxScore = 1.1754943508222875e-38; // FLT_MIN, as in unigram_model.cc
    let unk = -1;
    pieces.forEach((p, i) => {
      this.scores[i] = p.score;
      if (p.type === PieceType.NORMAL) {
        minScore = Math.min(minScore, p.score);
        maxScore = Math.max(maxScore, p.score);
      }
      if (p.type === PieceType.UNKNOWN) unk = i;
      // NORMAL and USER_DEFINED pieces go into the trie; UNUSED are skipped by the encoder; CONTROL/UNKNOWN/BYTE
      // never match text.
      if (p.type !== PieceType.NORMAL && p.type !== PieceType.USER_DEFINED) return;
      let node = this.root;
      for (const ch of p.piece) {
        const cp = ch.codePointAt(0)!;
        let child = node.next.get(cp);
        if (child === undefined) {
          child = { next: new Map(), id: -1 };
          node.next.set(cp, child);
        }
        node = child;
      }
      if (node.id >= 0) throw new ModelFormatError(file, `ModelProto.pieces[${i}].piece`, `${JSON.stringify(p.piece)} is already defined`);
      node.id = i;
    });
    pieces.forEach((p, i) => {
      if (p.type !== PieceType.USER_DEFINED) return;
      if (p.piece.length === 0) throw new ModelFormatError(file, `ModelProto.pieces[${i}].piece`, 'piece must not be empty');
      // C++: `length * max_score_ - 0.1` with size_t length (bytes) and float max_score_: a float product, then double.
      this.userScores[i] = Math.fround(Buffer.byteLength(p.piece, 'utf8') * maxScore) - 0.1;
    });
    this.unkId = unk;
    this.unkScore = Math.fround(Math.fround(minScore) - UNK_PENALTY);
  }

  /** Segment an already normalised string (e.g. "▁한국어"). Pieces are substrings of the input. */
  encode(normalized: string): UnigramPiece[] {
    const { cps, offs } = codePointsWithOffsets(normalized);
    const n = cps.length;
    if (n === 0) return [];
    const best = new Float32Array(n + 1);
    const startsAt = new Int32Array(n + 1).fill(-1);
    const ids = new Int32Array(n + 1);
    const scores = this.scores;
    const userScores = this.userScores;
    for (let start = 0; start < n; start++) {
      const till = best[start];
      let node: TrieNode | undefined = this.root;
      let hasSingle = false;
      for (let k = start; k < n; k++) {
        node = node.next.get(cps[k]);
        if (node === undefined) break;
        if (node.id >= 0) {
          const target = k + 1;
          const user = userScores[node.id];
          // float + float for NORMAL pieces; double for USER_DEFINED ones (rounded to float when stored)
          const cand = user === user ? user + till : Math.fround(scores[node.id] + till);
          if (startsAt[target] === -1 || cand > best[target]) {
            best[target] = cand;
            startsAt[target] = start;
            ids[target] = node.id;
          }
          if (target - start === 1) hasSingle = true;
        }
      }
      if (!hasSingle) {
        const target = start + 1;
        const cand = Math.fround(this.unkScore + till);
        if (startsAt[target] === -1 || cand > best[target]) {
          best[target] = cand;
          startsAt[target] = start;
          ids[target] = this.unkId;
        }
      }
    }
    const rev: Array<[number, number, number]> = [];
    for (let end = n; end > 0; ) {
      const s = startsAt[end];
      rev.push([s, end, ids[end]]);
      end = s;
    }
    const out: UnigramPiece[] = [];
    let prevUnk = false;
    for (let i = rev.length - 1; i >= 0; i--) {
      const [s, e, id] = rev[i];
      const piece = normalized.slice(offs[s], offs[e]);
      const unknown = id === this.unkId;
      if (unknown && prevUnk) out[out.length - 1].piece += piece;
      else out.push({ piece, id, unknown });
      prevUnk = unknown;
    }
    return out;
  }
}

/**
 * A tokenizers.js Tokenizer with the model's Unigram (no normaliser, no pre-tokenizer: feed it text already
 * normalised by `SentencePieceNormalizer`). Only NORMAL pieces are given to it, plus the unknown piece renamed to a
 * lone surrogate so that it can never match text (tokenizers.js would otherwise match "<unk>", "<s>", "</s>"
 * literally and, for "<unk>", drop the unknown characters that follow in its fuse_unk step).
 * Used by the tests to cross-check the float32 Viterbi above; not used for encoding.
 */
export function buildTokenizersJsUnigram(model: SpModelProto): Tokenizer {
  const normal = model.pieces.filter((p) => p.type === PieceType.NORMAL);
  const minScore = Math.min(...normal.map((p) => p.score));
  const vocab: Array<[string, number]> = [['\ud800', minScore]];
  for (const p of normal) vocab.push([p.piece, p.score]);
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: false },
    model: { type: 'Unigram', unk_id: 0, vocab, byte_fallback: false },
  };
  return new Tokenizer(json as never, {} as never);
}
