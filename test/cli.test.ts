/**
 * The `ko-sbert` CLI (src/cli.ts), run as a user runs it: `node dist/src/cli.js ...` (built by pretest),
 * with the committed random-weight fixture model. Outputs are compared with the library called in-process.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';

import { DEMO_CORPUS, DEMO_QUERIES, defaultModelDir, float32Text, npyHeader } from '../src/cli';
import { evaluateSts, SIMILARITY_NAMES } from '../src/evaluation';
import { SentenceTransformer } from '../src/sentence-transformer';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const MODEL = path.join(ROOT, 'test', 'fixtures', 'kobert-tiny');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-cli-'));

function cli(args: string[], input?: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Reads a float32 .npy written by the CLI (format 1.0, C order). */
function readNpy(file: string): { shape: number[]; data: Float32Array } {
  const buf = fs.readFileSync(file);
  expect(buf.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
  const hlen = buf.readUInt16LE(8);
  expect((10 + hlen) % 64).toBe(0);
  const header = buf.subarray(10, 10 + hlen).toString('latin1');
  expect(header).toContain("'descr': '<f4'");
  expect(header).toContain("'fortran_order': False");
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(',').filter((s) => s.trim()).map(Number);
  const body = buf.subarray(10 + hlen);
  const data = new Float32Array(body.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = body.readFloatLE(i * 4);
  return { shape, data };
}

let model: SentenceTransformer;
beforeAll(async () => {
  if (!fs.existsSync(CLI)) {
    const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  }
  model = await SentenceTransformer.load(MODEL);
});
afterAll(() => {
  model?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('helpers', () => {
  test('float32Text gives the shortest text that reads back as the same float32', () => {
    const xs = Float32Array.from([0, 1, -1, 0.1, 1 / 3, 1e-30, -3.4e38, 123456.789, 2 ** -149]);
    for (const x of xs) {
      const s = float32Text(x);
      expect(Math.fround(Number(s))).toBe(x);
      expect(s.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').length).toBeLessThanOrEqual(9);
    }
    expect(float32Text(Math.fround(0.1))).toBe('0.1');
    expect(() => float32Text(NaN)).toThrow(/NaN/);
  });

  test('npyHeader: v1.0, header padded so data starts at a multiple of 64', () => {
    for (const shape of [[3, 64], [0, 768], [12345, 1024], [7]]) {
      const h = npyHeader(shape);
      expect(h.length % 64).toBe(0);
      expect(h[h.length - 1]).toBe(0x0a);
    }
    expect(npyHeader([7]).toString('latin1')).toContain("'shape': (7,)");
  });
});

describe('embed', () => {
  const lines = ['한 남자가 음식을 먹는다.', '', '그 여자가 아이를 돌본다.', '"따옴표" 와\t탭'];

  test('stdin → JSONL, one line per input line (empty ones too), exact float32 values', async () => {
    const r = cli(['embed', '--model', MODEL], lines.join('\r\n') + '\r\n');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => x.text)).toEqual(lines);
    const want = await model.encode(lines);
    rows.forEach((row, i) => {
      expect(row.embedding).toHaveLength(64);
      row.embedding.forEach((v: number, k: number) => expect(Math.abs(v - want[i][k])).toBeLessThan(1e-5));
    });
  });

  test('file → .npy float32 rows; --normalize gives unit rows; same numbers as JSONL', () => {
    const input = path.join(tmp, 'in.txt');
    fs.writeFileSync(input, lines.join('\n'));
    const npy = path.join(tmp, 'out.npy');
    const r = cli(['embed', input, '--model', MODEL, '-o', npy]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/wrote 4 × 64 float32 embeddings/);
    const { shape, data } = readNpy(npy);
    expect(shape).toEqual([4, 64]);
    const jsonl = cli(['embed', input, '--model', MODEL]).stdout.trim().split('\n').map((l) => JSON.parse(l).embedding as number[]);
    expect(Array.from(data)).toEqual(jsonl.flat().map(Math.fround));

    const n = path.join(tmp, 'norm.npy');
    expect(cli(['embed', input, '--model', MODEL, '--normalize', '--output', n]).code).toBe(0);
    const norm = readNpy(n).data;
    for (let i = 0; i < 4; i++) {
      let s = 0;
      for (let k = 0; k < 64; k++) s += norm[i * 64 + k] ** 2;
      expect(Math.sqrt(s)).toBeCloseTo(1, 5);
    }
  });
});

describe('search', () => {
  test("no files: the seed's 9-sentence / 3-query demo, top 5 each", async () => {
    const r = cli(['search', '--model', MODEL]);
    expect(r.code).toBe(0);
    for (const q of DEMO_QUERIES) expect(r.stdout).toContain(`Query: ${q}`);
    const scores = [...r.stdout.matchAll(/^(.+) \(Score: (-?\d\.\d{4})\)$/gm)];
    expect(scores).toHaveLength(15);
    // The first hit of the first query matches the library's semanticSearch.
    const [q] = await model.encode([DEMO_QUERIES[0]]);
    const c = await model.encode(DEMO_CORPUS);
    const { semanticSearch } = await import('../src/util');
    const top = semanticSearch([q], c, { topK: 1 })[0][0];
    expect(scores[0][1]).toBe(DEMO_CORPUS[top.corpusId]);
    expect(scores[0][2]).toBe(top.score.toFixed(4));
  });

  test('corpus file + --query (repeatable) + --top-k, --json', () => {
    const corpus = path.join(tmp, 'corpus.txt');
    fs.writeFileSync(corpus, DEMO_CORPUS.join('\n') + '\n\n');
    const r = cli(['search', corpus, '-q', '말을 탄다', '-q', '드럼', '-k', '2', '--json', '--model', MODEL]);
    expect(r.code).toBe(0);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(out.map((o) => o.query)).toEqual(['말을 탄다', '드럼']);
    for (const o of out) {
      expect(o.hits).toHaveLength(2);
      expect(o.hits[0].score).toBeGreaterThanOrEqual(o.hits[1].score);
      expect(DEMO_CORPUS[o.hits[0].corpusId]).toBe(o.hits[0].text);
    }
    // queries on stdin
    const s = cli(['search', corpus, '-k', '1', '--model', MODEL], '말을 탄다\n');
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('Query: 말을 탄다');
  });
});

describe('eval', () => {
  test('KorSTS tsv → the eight figures, equal to evaluateSts in-process', async () => {
    const golden = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/eval-golden.json'), 'utf8'));
    const n = 40;
    const tsv = path.join(tmp, 'sts.tsv');
    const rows = ['genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2'];
    for (let i = 0; i < n; i++) rows.push(`g\tf\ty\t${i}\t${(golden.scores[i] * 5).toFixed(3)}\t${golden.sentences1[i]}\t${golden.sentences2[i]}`);
    fs.writeFileSync(tsv, rows.join('\n') + '\n');
    const want = await evaluateSts(model, { sentences1: golden.sentences1.slice(0, n), sentences2: golden.sentences2.slice(0, n), scores: golden.scores.slice(0, n) });

    const j = cli(['eval', '--data', tsv, '--json', '--model', MODEL]);
    expect(j.code).toBe(0);
    const got = JSON.parse(j.stdout);
    expect(got.pairs).toBe(n);
    for (const s of SIMILARITY_NAMES) {
      expect(got[s].pearson).toBeCloseTo(want[s].pearson, 5);
      expect(got[s].spearman).toBeCloseTo(want[s].spearman, 5);
    }
    const t = cli(['eval', tsv, '--model', MODEL]);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain('| Model | Cosine Pearson | Cosine Spearman | Euclidean Pearson');
    expect(t.stdout).toContain(`Spearman ${(want.cosine.spearman * 100).toFixed(2).padStart(6)}`);
  });
});

describe('info', () => {
  test('model config, backend, SIMD level, threads, addon', () => {
    const r = cli(['info', '--json', '--model', MODEL, '--threads', '1']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({ embeddingDimension: 64, backend: 'cpu', threads: 1, pooling: ['mean'], normalize: false });
    expect(info.config).toMatchObject({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 8002 });
    expect(['scalar', 'avx2', 'avx512']).toContain(info.isa);
    expect(fs.existsSync(info.addon)).toBe(true);
    const s = cli(['info', '--model', MODEL], undefined, { KST_ISA: 'scalar' });
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/simd: +scalar/);
    const i2 = cli(['info', '--model', MODEL, '--isa', 'scalar']);
    expect(i2.stdout).toMatch(/simd: +scalar/);
    expect(i2.stdout).toMatch(/precision: +fp32/);
    // --precision int8: int8 where the CPU has AVX512-VNNI / AVX-VNNI, else fp32 with the reason
    const flags = / (avx512_vnni|avx_vnni) /.test(` ${(/^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) ?? ['', ''])[1]} `);
    const i8 = JSON.parse(cli(['info', '--json', '--model', MODEL, '--precision', 'int8'], undefined, { KST_ISA: '' }).stdout);
    expect(i8.precision).toMatch(flags ? /^int8$/ : /^fp32 — precision 'int8' needs/);
    const s8 = cli(['info', '--model', MODEL, '--precision', 'int8', '--isa', 'scalar']);
    expect(s8.stdout).toMatch(/precision: +fp32 — precision 'int8' needs/);
  });
});

describe('errors: one line; exit 2 for bad usage, 1 for failures', () => {
  const usage: [string, string[], RegExp][] = [
    ['no command', [], /./],
    ['unknown command', ['frobnicate'], /unknown command/],
    ['unknown option', ['search', '--bogus'], /unknown option '--bogus'/],
    ['bad --top-k', ['search', '--top-k', '0', '--model', MODEL], /--top-k must be a positive integer/],
    ['bad --batch-size', ['embed', '--batch-size', 'x', '--model', MODEL], /--batch-size must be a positive integer/],
    ['bad --isa', ['info', '--isa', 'sse', '--model', MODEL], /--isa/],
    ['bad --precision', ['info', '--precision', 'int4', '--model', MODEL], /--precision/],
    ['eval without data', ['eval', '--model', MODEL], /KorSTS .tsv/],
  ];
  test.each(usage)('%s → 2', (_name, args, msg) => {
    const r = cli(args, '');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    if (args.length > 0) {
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    }
  });

  test('missing model folder, missing input file, bad tsv → 1', () => {
    for (const args of [
      ['info', '--model', path.join(tmp, 'nope')],
      ['embed', path.join(tmp, 'missing.txt'), '--model', MODEL],
      ['eval', path.join(tmp, 'missing.tsv'), '--model', MODEL],
    ]) {
      const r = cli(args);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^ko-sbert: /);
    }
    const bad = path.join(tmp, 'bad.tsv');
    fs.writeFileSync(bad, 'header\na\tb\n');
    const r = cli(['eval', bad, '--model', MODEL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line 2: expected 7 tab-separated columns/);
  });

  test('without --model: the shipped default model, or a clear usage error when none ships', () => {
    const r = cli(['info']);
    if (defaultModelDir() === undefined) {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/no default model .*--model/);
    } else {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(defaultModelDir()!);
    }
  });
});

describe('ko-sbert convert', () => {
  const SRC = path.join(ROOT, 'test', 'fixtures', 'arch', 'models', 'bert-wordpiece-bin');

  test('writes model.safetensors equal to the .bin and refuses to overwrite', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'convert-'));
    fs.cpSync(SRC, dir, { recursive: true });
    const r = cli(['convert', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/model\.safetensors: \d+ tensors from .*pytorch_model\.bin/);
    const again = cli(['convert', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);

    // The converted folder (safetensors only) gives the embeddings of the original (.bin) folder.
    fs.renameSync(path.join(dir, 'pytorch_model.bin'), path.join(dir, 'pytorch_model.bin.orig'));
    const a = await SentenceTransformer.load(SRC);
    const b = await SentenceTransformer.load(dir);
    try {
      const s = ['한 남자가 음식을 먹는다.', '치타 한 마리가 먹이 뒤에서 달리고 있다.'];
      expect(await b.encode(s)).toEqual(await a.encode(s));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  test('missing argument is a usage error (exit 2)', () => {
    const r = cli(['convert']);
    expect(r.code).toBe(2);
  });
});
