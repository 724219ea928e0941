/**
 * skt/kobert-base-v1 style `spiece.model` tokenizers (XlnetSpieceTokenizer) against the Python reference written by
 * test/golden/make_golden_spiece.py: SKT's KoBERTTokenizer (slow XLNetTokenizer rules, SentencePiece ids, BERT
 * layout) on a small unigram model trained on KorNLU and laid out like skt's (ids 0..4 = [UNK] [PAD] [CLS] [SEP]
 * [MASK], then the pieces in string order). Two declarations of the specials: USER_DEFINED (spiece.model, what
 * skt's model does) and CONTROL (control/spiece.model).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { SentenceTransformer } from '../src/sentence-transformer';
import { KoBertTokenizer, PieceType, SentencePieceProcessor } from '../src/tokenizers';
import { pyStrip } from '../src/tokenizers/python-text';
import { SPIECE_MODEL_FILE, XlnetSpieceTokenizer } from '../src/tokenizers/spiece';
import { tinyConfig, tmpDir, writeSyntheticBert } from './helpers/synthetic-bert';

const DIR = path.join(__dirname, 'fixtures', 'spiece');
const CONTROL_DIR = path.join(DIR, 'control');

interface Corpus {
  format: number;
  maxSeqLength: number;
  sentences: Array<[string, number[]]>;
  controlDiffers: Array<[number, number[]]>;
}
interface EdgeCase {
  name: string;
  text: string;
  maxSeqLength: number;
  ids: number[];
  idsControl: number[];
  pieces: string[];
  piecesControl: string[];
}
interface SpRow {
  text: string;
  pieces: string[];
  ids: number[];
  piecesControl: string[];
  idsControl: number[];
}

const corpus = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(DIR, 'kornlu-ids.json.gz'))).toString('utf8')) as Corpus;
const edge = JSON.parse(fs.readFileSync(path.join(DIR, 'edge.json'), 'utf8')) as { cases: EdgeCase[]; sp: SpRow[] };
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as {
  vocabSize: number;
  counts: Record<string, number>;
  facts: { knownText: string; knownIds: number[] };
  files: Record<string, { bytes: number; sha256: string }>;
};

/** Compare many [label, got, expected] triples; fail with the count and the first few diffs. */
function expectAllEqual(rows: Array<[string, unknown, unknown]>): void {
  const diffs: string[] = [];
  let bad = 0;
  for (const [label, got, exp] of rows) {
    if (JSON.stringify(got) !== JSON.stringify(exp)) {
      bad++;
      if (diffs.length < 5) diffs.push(`${label}\n    got:      ${JSON.stringify(got)}\n    expected: ${JSON.stringify(exp)}`);
    }
  }
  if (bad > 0) throw new Error(`${bad} of ${rows.length} mismatched; first diffs:\n  ${diffs.join('\n  ')}`);
}

let tok: KoBertTokenizer;
let tokControl: KoBertTokenizer;
beforeAll(() => {
  tok = XlnetSpieceTokenizer.fromDirectory(DIR);
  tokControl = XlnetSpieceTokenizer.fromDirectory(CONTROL_DIR);
});

describe('fixtures', () => {
  test('files match the manifest written by make_golden_spiece.py', () => {
    for (const [rel, { bytes, sha256 }] of Object.entries(manifest.files)) {
      const buf = fs.readFileSync(path.join(DIR, rel));
      expect([rel, buf.length, crypto.createHash('sha256').update(buf).digest('hex')]).toEqual([rel, bytes, sha256]);
    }
    expect(corpus.sentences.length).toBe(25406);
    expect(manifest.counts.digitCommaSentences).toBeGreaterThan(0); // the digit-comma rule is exercised
  });

  test('models are laid out like skt/kobert-base-v1 (specials 0..4, USER_DEFINED vs CONTROL)', () => {
    const ud = SentencePieceProcessor.fromFile(path.join(DIR, SPIECE_MODEL_FILE)).model.pieces;
    const ctl = SentencePieceProcessor.fromFile(path.join(CONTROL_DIR, SPIECE_MODEL_FILE)).model.pieces;
    expect(ud.length).toBe(manifest.vocabSize);
    expect(ud.slice(0, 5).map((p) => [p.piece, p.type])).toEqual([
      ['[UNK]', PieceType.UNKNOWN],
      ['[PAD]', PieceType.USER_DEFINED],
      ['[CLS]', PieceType.USER_DEFINED],
      ['[SEP]', PieceType.USER_DEFINED],
      ['[MASK]', PieceType.USER_DEFINED],
    ]);
    expect(ctl.slice(0, 5).map((p) => p.type)).toEqual([PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL, PieceType.CONTROL, PieceType.CONTROL]);
    expect(ud.slice(5).every((p) => p.type === PieceType.NORMAL)).toBe(true);
  });
});

describe('XlnetSpieceTokenizer (skt KoBERTTokenizer)', () => {
  test('properties: ids are the SentencePiece ids, BERT layout, model_max_length', () => {
    for (const t of [tok, tokControl]) {
      expect([t.unkTokenId, t.padTokenId, t.clsTokenId, t.sepTokenId, t.maskTokenId]).toEqual([0, 1, 2, 3, 4]);
      expect(t.vocabSize).toBe(manifest.vocabSize);
    }
    expect(tok.modelMaxLength).toBe(512); // tokenizer_config.json
    expect(tok.encode(manifest.facts.knownText)).toEqual(manifest.facts.knownIds);
  });

  test('KorNLU: every one of the 25,406 distinct sentences (USER_DEFINED specials)', () => {
    expectAllEqual(corpus.sentences.map(([text, ids], i) => [`#${i} ${JSON.stringify(text)}`, tok.encode(text, corpus.maxSeqLength), ids]));
  });

  test('KorNLU: every sentence with the CONTROL-specials model', () => {
    const differs = new Map(corpus.controlDiffers);
    expectAllEqual(
      corpus.sentences.map(([text, ids], i) => [`#${i} ${JSON.stringify(text)}`, tokControl.encode(text, corpus.maxSeqLength), differs.get(i) ?? ids]),
    );
  });

  test('edge cases: ids (incl. truncation at 512/128) and pieces, both models', () => {
    expect(edge.cases.length).toBeGreaterThan(60);
    const rows: Array<[string, unknown, unknown]> = [];
    for (const c of edge.cases) {
      const label = `${c.name} (${c.maxSeqLength}) ${JSON.stringify(c.text).slice(0, 80)}`;
      rows.push([`ids ${label}`, tok.encode(c.text, c.maxSeqLength), c.ids]);
      rows.push([`ids control ${label}`, tokControl.encode(c.text, c.maxSeqLength), c.idsControl]);
      rows.push([`pieces ${label}`, tok.tokenize(pyStrip(c.text)), c.pieces]);
      rows.push([`pieces control ${label}`, tokControl.tokenize(pyStrip(c.text)), c.piecesControl]);
    }
    expectAllEqual(rows);
  });

  test('edge cases cover what they claim', () => {
    const byName = new Map(edge.cases.map((c) => [`${c.name}/${c.maxSeqLength}`, c]));
    const long512 = byName.get('long/512')!;
    const long128 = byName.get('long/128')!;
    expect(long512.pieces.length).toBeGreaterThanOrEqual(600);
    expect(long512.ids.length).toBe(512);
    expect(long128.ids.length).toBe(128);
    expect(byName.get('empty/512')!.ids).toEqual([2, 3]);
    expect(byName.get('special_cls_mask/512')!.ids).toContain(4); // literal [MASK] -> its id
    // where the two declarations differ: a special that appears only after NFKD ("[ＣＬＳ]" -> "[CLS]")
    const differ = edge.cases.filter((c) => JSON.stringify(c.ids) !== JSON.stringify(c.idsControl)).map((c) => c.name);
    expect(differ.sort()).toEqual(['fullwidth_special_glued', 'fullwidth_special_only', 'fullwidth_specials']);
  });
});

describe('SentencePieceProcessor with USER_DEFINED pieces (sentencepiece encode, no KoBERT rules)', () => {
  test('pieces and ids equal sentencepiece for both models', () => {
    const ud = SentencePieceProcessor.fromFile(path.join(DIR, SPIECE_MODEL_FILE));
    const ctl = SentencePieceProcessor.fromFile(path.join(CONTROL_DIR, SPIECE_MODEL_FILE));
    const enc = (sp: SentencePieceProcessor, text: string) => sp.unigram.encode(sp.normalizer.normalize(text));
    const rows: Array<[string, unknown, unknown]> = [];
    for (const r of edge.sp) {
      const a = enc(ud, r.text);
      const b = enc(ctl, r.text);
      rows.push([`ud ${JSON.stringify(r.text)}`, [a.map((p) => p.piece), a.map((p) => p.id)], [r.pieces, r.ids]]);
      rows.push([`control ${JSON.stringify(r.text)}`, [b.map((p) => p.piece), b.map((p) => p.id)], [r.piecesControl, r.idsControl]]);
    }
    expectAllEqual(rows);
    // skt's model (SKTBrain/KoBERT issue #11): "[CLS] 감사합니다. [SEP]" -> ['▁', '[CLS]', '▁감사', ...]
    expect(ud.encodeAsPieces('[CLS] 감사합니다. [SEP]').slice(0, 2)).toEqual(['▁', '[CLS]']);
  });
});

describe('a folder with spiece.model + BERT config + safetensors', () => {
  let dir: string;
  let model: SentenceTransformer;
  beforeAll(async () => {
    dir = tmpDir('kst-spiece-');
    writeSyntheticBert(dir, tinyConfig({ vocab_size: manifest.vocabSize, max_position_embeddings: 512 }));
    fs.copyFileSync(path.join(DIR, SPIECE_MODEL_FILE), path.join(dir, SPIECE_MODEL_FILE));
    fs.copyFileSync(path.join(DIR, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
    model = await SentenceTransformer.load(dir, { threads: 1 });
  });
  afterAll(() => {
    model?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('loads through SentenceTransformer.load with the spiece tokenizer', async () => {
    const sample = corpus.sentences.slice(0, 200);
    expect(model.tokenizer).toBeInstanceOf(KoBertTokenizer);
    expect(model.tokenizer.vocabSize).toBe(manifest.vocabSize);
    expect(model.tokenize(sample.map(([t]) => t))).toEqual(sample.map(([, ids]) => ids));
    const emb = await model.encode(['[CLS] 감사합니다. [SEP]', sample[0][0]]);
    expect(emb.length).toBe(2);
    expect(emb[0].length).toBe(16);
    expect(emb.every((e) => e.every(Number.isFinite))).toBe(true);
  });
});
