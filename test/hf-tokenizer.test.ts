/**
 * tokenizer.json (WordPiece / Unigram / BPE) parity with Python `tokenizers` on the 25,406 KorNLU sentences.
 * The tokenizers were trained on that text by test/golden/make_golden_arch.py (8,000 pieces each: a klue-style
 * WordPiece, an XLM-R-style Unigram with Metaspace, a RoBERTa-style byte-level BPE); the fixture holds a short
 * md5 of each sentence's Python ids (with special tokens).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

import { HfTokenizer } from '../src/tokenizers/hf-tokenizer';

const FIX = path.join(__dirname, 'fixtures');
const ARCH = path.join(FIX, 'arch');

function gz<T>(file: string): T {
  return JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8')) as T;
}

const texts: string[] = gz<[string, number[]][]>(path.join(FIX, 'kornlu-token-ids.json.gz')).map((x) => x[0]);
const hashes = gz<{ count: number; hashes: Record<string, string> }>(path.join(ARCH, 'token-hashes.json.gz'));

function tokenizerDir(kind: string, extra: Record<string, unknown> = {}): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `kst-${kind}-`));
  fs.writeFileSync(path.join(d, 'tokenizer.json'), zlib.gunzipSync(fs.readFileSync(path.join(ARCH, 'tokenizers', `${kind}.json.gz`))));
  if (Object.keys(extra).length) fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(extra));
  return d;
}

const h4 = (ids: number[]): string => crypto.createHash('md5').update(ids.join(',')).digest('hex').slice(0, 4);

describe.each(['wordpiece', 'unigram', 'bpe'])('%s tokenizer.json vs Python tokenizers', (kind) => {
  const tok = HfTokenizer.fromDirectory(tokenizerDir(kind));

  test('ids equal on all 25,406 KorNLU sentences', () => {
    expect(texts.length).toBe(25406);
    expect(hashes.count).toBe(25406);
    const bad: number[] = [];
    texts.forEach((s, i) => {
      if (h4(tok.encode(s, 1e6)) !== hashes.hashes[kind].slice(4 * i, 4 * i + 4)) bad.push(i);
    });
    if (bad.length) console.log(`${kind}: ${bad.length} mismatches, first: ${bad.slice(0, 5).map((i) => JSON.stringify(texts[i])).join(' ')}`);
    // Unigram runs our port of the Rust pipeline (src/tokenizers/hf-exact.ts). @huggingface/tokenizers alone broke
    // exact score ties differently on 2 sentences (3651, 13820: a run of dots, ['...', '.'] in Python, ['.', '...']
    // in the JS library); the exact pipeline matches on all.
    expect(bad).toEqual([]);
    expect(tok.isExact).toBe(kind === 'unigram');
  });

  test('truncation keeps the special tokens and the first pieces', () => {
    const long = texts.slice(0, 40).join(' ');
    const full = tok.encode(long, 1e6);
    const cut = tok.encode(long, 16);
    expect(cut.length).toBe(16);
    expect(cut.slice(0, 15)).toEqual(full.slice(0, 15));
    expect(cut[15]).toBe(full[full.length - 1]);
  });
});

test('tokenizer_config.json do_lower_case rewrites the BertNormalizer (as BertTokenizerFast does)', () => {
  const plain = HfTokenizer.fromDirectory(tokenizerDir('wordpiece'));
  const lower = HfTokenizer.fromDirectory(tokenizerDir('wordpiece', { do_lower_case: true, model_max_length: 32 }));
  expect(lower.modelMaxLength).toBe(32);
  expect(plain.modelMaxLength).toBe(Infinity);
  expect(lower.encode('ABC abc')).toEqual(plain.encode('abc abc'));
  expect(plain.encode('ABC')).not.toEqual(plain.encode('abc'));
});

test('a tokenizer.json with an unsupported model type is refused with the file named', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-bad-'));
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab: {} } }));
  expect(() => HfTokenizer.fromDirectory(d)).toThrow(/tokenizer\.json: model\.type must be WordPiece, Unigram or BPE/);
});
