import { codePointsWithOffsets, TrieNode } from './unigram';

/**
 * Unigram segmentation as the Rust `tokenizers` crate does it (models/unigram/model.rs `encode_optimized`,
 * `tokenize`), which differs from SentencePiece's (unigram.ts) and from @huggingface/tokenizers':
 *  - every vocab entry is in the trie (also [UNK], [CLS], <s>, ...), scores are f64 as parsed from the JSON, and
 *    the unknown score is min(all scores) - 10;
 *  - candidates ending at a position are visited by start position, then by increasing length, and replace the
 *    best one only with a strictly greater f64 path score (so exact ties keep the earlier start);
 *  - an unknown piece (one char) is added only where no one-char piece starts at that position;
 *  - consecutive unknown pieces are fused (fuse_unk); each resulting string maps to its id through the vocab
 *    (for a duplicated string, the last id, as the crate's HashMap insert does), else to unk_id.
 * byte_fallback is not supported (refused at load).
 * Trie ids here are vocab ids (for a duplicated piece string, the last one).
 */
export class RustUnigram {
  private readonly root: TrieNode = { next: new Map(), id: -1 };
  private readonly scores: Float64Array;
  private readonly ids = new Map<string, number>();
  readonly unkId: number;
  readonly unkScore: number;

  constructor(vocab: ReadonlyArray<readonly [string, number]>, unkId: number | null, file: string) {
    this.scores = new Float64Array(vocab.length);
    let min = Infinity;
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') {
        throw new Error(`${file}: model.vocab[${i}] must be [piece, score]`);
      }
      const [piece, score] = entry;
      this.scores[i] = score;
      if (score < min) min = score;
      this.ids.set(piece, i);
      let node = this.root;
      for (const ch of piece) {
        const cp = ch.codePointAt(0)!;
        let child = node.next.get(cp);
        if (child === undefined) {
          child = { next: new Map(), id: -1 };
          node.next.set(cp, child);
        }
        node = child;
      }
      node.id = i; // the last id of a duplicated piece
    });
    if (unkId !== null && (unkId < 0 || unkId >= vocab.length)) throw new Error(`${file}: model.unk_id ${unkId} is not in the vocab`);
    this.unkId = unkId ?? -1;
    this.unkScore = min - 10.0;
  }

  /** Pieces of one pre-tokenized word. */
  encodePieces(text: string): string[] {
    const { cps, offs } = codePointsWithOffsets(text);
    const n = cps.length;
    if (n === 0) return [];
    const best = new Float64Array(n + 1);
    const startsAt = new Int32Array(n + 1).fill(-1);
    const ids = new Int32Array(n + 1);
    const scores = this.scores;
    for (let start = 0; start < n; start++) {
      const till = best[start];
      let node: TrieNode | undefined = this.root;
      let hasSingle = false;
      for (let k = start; k < n; k++) {
        node = node.next.get(cps[k]);
        if (node === undefined) break;
        if (node.id >= 0) {
          const target = k + 1;
          const cand = scores[node.id] + till;
          if (startsAt[target] === -1 || cand > best[target]) {
            best[target] = cand;
            startsAt[target] = start;
            ids[target] = node.id;
          }
          if (target === start + 1) hasSingle = true;
        }
      }
      if (!hasSingle) {
        if (this.unkId < 0) throw new Error('Unigram: the text needs an unknown piece but the model has no unk_id');
        const target = start + 1;
        const cand = this.unkScore + till;
        if (startsAt[target] === -1 || cand > best[target]) {
          best[target] = cand;
          startsAt[target] = start;
          ids[target] = this.unkId;
        }
      }
    }
    const rev: string[] = [];
    let unk = '';
    for (let end = n; end > 0; ) {
      const s = startsAt[end];
      const piece = text.slice(offs[s], offs[end]);
      if (ids[end] === this.unkId) {
        unk = piece + unk;
      } else {
        if (unk) {
          rev.push(unk);
          unk = '';
        }
        rev.push(piece);
      }
      end = s;
    }
    if (unk) rev.push(unk);
    return rev.reverse();
  }

  /** Ids of one pre-tokenized word. */
  encode(text: string): number[] {
    return this.encodePieces(text).map((p) => this.ids.get(p) ?? this.unkId);
  }
}
