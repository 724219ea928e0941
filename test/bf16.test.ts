/**
 * precision 'bf16' (opt-in, AVX512_BF16; $KST_PRECISION=bf16 until the load option is plumbed through the binding;
 * the comparison runs in a child process, test/precision-compare.js, on the built dist/):
 * every KorSTS-test sentence embedded with bf16 weights has cosine >= 0.999 to the fp32 embedding (issue 5's
 * accuracy bound). On the tiny fixture model always; on the 12 × 768 test/golden/models/kobert-base too when it
 * has been generated (python3 test/golden/make_golden.py --base), on the first 512 sentences.
 * On CPUs without AVX512_BF16 the request falls back to fp32 and the outputs must then be identical.
 */
import * as path from 'path';
import * as fs from 'fs';
import { spawnSync } from 'child_process';
import { readKorSts } from '../src/evaluation';
import { cpuHas } from './helpers/cpu-flags';

const ROOT = path.resolve(__dirname, '..');
const DATA = process.env.KO_ST_DATA || path.join(ROOT, '..', 'shared', 'data');
const TINY = path.join(ROOT, 'test/fixtures/kobert-tiny');
const BASE = path.join(ROOT, 'test/golden/models/kobert-base');
const MIN_COS = 0.999;

const hasBf16 = cpuHas('avx512_bf16') && cpuHas('avx512bw') && process.env.KST_ISA !== 'avx2' && process.env.KST_ISA !== 'scalar';

/** fp32 vs bf16 in a child process (jest's process.env is a copy the addon's getenv does not see). */
function compare(dir: string, n: number): { minCos: number; identical: boolean; n: number } {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'precision-compare.js'), dir, String(n), '--precision', 'bf16', '--env', '--threads', '2'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`precision-compare.js failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

const korsts = readKorSts(path.join(DATA, 'kornlu', 'KorSTS', 'sts-test.tsv'));
const sentences = [...korsts.sentences1, ...korsts.sentences2];

test('KorSTS-test has 2,758 sentences', () => {
  expect(sentences.length).toBe(2758);
});

test(`bf16 vs fp32, tiny model, all KorSTS-test sentences: cosine >= ${MIN_COS}`, () => {
  const { minCos, identical, n } = compare(TINY, sentences.length);
  expect(n).toBe(2758);
  // eslint-disable-next-line no-console
  console.log(`tiny: bf16 ${hasBf16 ? 'active' : 'unavailable (fp32 fallback)'}; min cos ${minCos.toFixed(6)}`);
  expect(minCos).toBeGreaterThanOrEqual(MIN_COS);
  expect(identical).toBe(!hasBf16);
}, 300000);

(fs.existsSync(path.join(BASE, 'modules.json')) ? test : test.skip)(
  `bf16 vs fp32, 12 × 768 kobert-base, 512 KorSTS-test sentences: cosine >= ${MIN_COS}`,
  () => {
    const { minCos, identical } = compare(BASE, 512);
    // eslint-disable-next-line no-console
    console.log(`kobert-base: min cos ${minCos.toFixed(6)}`);
    expect(minCos).toBeGreaterThanOrEqual(MIN_COS);
    expect(identical).toBe(!hasBf16);
  },
  600000,
);
