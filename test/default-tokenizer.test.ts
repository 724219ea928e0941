/**
 * The default model's tokenizer (weights/default/tokenizer.json: KoBERT Unigram, Precompiled nmt_nfkc charsmap,
 * Metaspace) through what users get — `SentenceTransformer.load('weights/default')`'s tokenizer — against Python
 * `tokenizers` (test/golden/make_golden_default_tok.py): ids of all 25,406 KorNLU sentences, edge cases
 * (graphemes of 6+ bytes, combining sequences, emoji ZWJ, jamo, full-width, controls, special tokens in the text,
 * Viterbi ties, code points newer than the crate's Unicode tables) and truncation to max_seq_length 64.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { SentenceTransformer } from '../src';
import { HfTokenizer } from '../src/tokenizers/hf-tokenizer';

const FIX = path.join(__dirname, 'fixtures');
const WEIGHTS = path.join(__dirname, '..', 'weights', 'default');

function gz<T>(file: string): T {
  return JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8')) as T;
}

interface Golden {
  versions: Record<string, string>;
  kornlu: number[][];
  edge: [string, number[]][];
  truncated64: [number, number[]][];
}

const golden = gz<Golden>(path.join(FIX, 'default-tok', 'ids.json.gz'));
const texts: string[] = gz<[string, number[]][]>(path.join(FIX, 'kornlu-token-ids.json.gz')).map((x) => x[0]);
const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

describe('default model tokenizer vs Python tokenizers', () => {
  let model: SentenceTransformer;
  let tok: { encode(text: string, maxLength?: number): number[]; readonly modelMaxLength: number };
  beforeAll(async () => {
    model = await SentenceTransformer.load(WEIGHTS);
    tok = model.tokenizer as typeof tok;
  });
  afterAll(async () => {
    await model?.dispose?.();
  });

  test('the loader picks tokenizer.json and runs the exact pipeline', () => {
    expect(tok).toBeInstanceOf(HfTokenizer);
    expect((tok as unknown as HfTokenizer).isExact).toBe(true);
  });

  test('ids equal on all 25,406 KorNLU sentences (untruncated)', () => {
    expect(texts.length).toBe(25406);
    expect(golden.kornlu.length).toBe(25406);
    const bad = texts.map((s, i) => i).filter((i) => !same(tok.encode(texts[i], 1e6), golden.kornlu[i]));
    if (bad.length) console.log(`${bad.length} mismatches, first: ${bad.slice(0, 5).map((i) => JSON.stringify(texts[i])).join(' ')}`);
    expect(bad).toEqual([]);
  });

  test('ids equal on the edge cases', () => {
    expect(golden.edge.length).toBeGreaterThan(100);
    const bad = golden.edge.filter(([s, ids]) => !same(tok.encode(s, 1e6), ids)).map(([s]) => s);
    expect(bad).toEqual([]);
  });

  test('truncation to max_seq_length 64 as sentence-transformers does it', () => {
    expect(tok.modelMaxLength).toBe(64);
    expect(golden.truncated64.length).toBeGreaterThan(0);
    for (const [i, ids] of golden.truncated64) {
      expect(ids.length).toBe(64);
      expect(tok.encode(texts[i])).toEqual(ids);
    }
  });

  test('tokenizers.js alone is not exact on this file (why the exact pipeline exists)', () => {
    const hf = tok as unknown as HfTokenizer;
    let bad = 0;
    texts.forEach((s, i) => {
      if (!same([2, ...hf.encodeRawTokenizersJs(s), 3], golden.kornlu[i])) bad++;
    });
    const badEdge = golden.edge.filter(([s, ids]) => !same([2, ...hf.encodeRawTokenizersJs(s), 3], ids)).length;
    console.log(`tokenizers.js: ${bad} / ${texts.length} KorNLU and ${badEdge} / ${golden.edge.length} edge mismatches`);
    expect(bad + badEdge).toBeGreaterThan(0);
  });
});
