// Helper of bf16.test.ts and int8.test.ts, run as a child process (on the built dist/, with the addon the package
// would load; jest's process.env is a copy the addon's getenv would not see, and a child keeps the two models' memory
// out of jest).
// Usage: node test/precision-compare.js MODEL_DIR N_SENTENCES --precision bf16|int8 [--sts] [--env] [--threads N]
// Embeds the first N KorSTS-test sentences with the model in fp32 and in the given precision (the load option, or
// $KST_PRECISION with --env) and prints one JSON line:
//   {n, precision, precisionNote, minCos, meanCos, worst: {index, text}, identical,
//    sts?: {fp32: StsResult, <precision>: StsResult}}
// With --sts, N must cover the whole test file: both models are scored on the 1,379 KorSTS-test pairs by the
// package's own evaluateSts (fed the embeddings already computed, so each sentence is encoded once per model).
'use strict';
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const kst = require(path.join(ROOT, 'dist', 'src', 'index.js'));
const DATA = process.env.KO_ST_DATA || path.join(ROOT, '..', 'shared', 'data');
const TSV = path.join(DATA, 'kornlu', 'KorSTS', 'sts-test.tsv');

/** The KorSTS-test sentences in file order, sentence 1 and 2 of each pair (the package's own reader). */
function korstsTest() {
  const d = kst.readKorSts(TSV);
  return d.sentences1.flatMap((s, i) => [s, d.sentences2[i]]);
}

async function load(dir, precision, viaEnv, threads) {
  if (!viaEnv) return kst.SentenceTransformer.load(dir, { threads, precision });
  process.env.KST_PRECISION = precision;
  try {
    return await kst.SentenceTransformer.load(dir, { threads });
  } finally {
    delete process.env.KST_PRECISION;
  }
}

/** An StsEncoder that answers from embeddings already computed (same sentence → same vector). */
function cachedEncoder(sentences, embeddings) {
  const byText = new Map();
  sentences.forEach((s, i) => byText.set(s, embeddings[i]));
  return {
    async encode(list) {
      return list.map((s) => {
        const e = byText.get(s);
        if (!e) throw new Error(`precision-compare: sentence not embedded: ${s}`);
        return e;
      });
    },
  };
}

(async () => {
  const argv = process.argv.slice(2);
  const flag = (name) => argv.includes(name);
  const valueOf = (name) => (argv.indexOf(name) >= 0 ? argv[argv.indexOf(name) + 1] : undefined);
  const threads = Number(valueOf('--threads') ?? 1);
  const precision = valueOf('--precision');
  if (precision !== 'bf16' && precision !== 'int8') throw new Error('precision-compare: --precision bf16|int8 is required');
  const valueAt = new Set(['--threads', '--precision'].map((f) => argv.indexOf(f) + 1).filter((i) => i > 0));
  const [dir, n] = argv.filter((a, i) => !a.startsWith('--') && !valueAt.has(i));
  const sentences = korstsTest().slice(0, Number(n));
  const a = await load(dir, 'fp32', flag('--env'), threads);
  const b = await load(dir, precision, flag('--env'), threads);
  const infoOf = (m) => m.modules[0].info();
  const ea = await a.encode(sentences, { batchSize: 32 });
  const eb = await b.encode(sentences, { batchSize: 32 });
  let minCos = 1, sumCos = 0, worst = 0;
  let identical = true;
  for (let i = 0; i < sentences.length; i++) {
    let d = 0, x = 0, y = 0;
    for (let j = 0; j < ea[i].length; j++) {
      d += ea[i][j] * eb[i][j];
      x += ea[i][j] * ea[i][j];
      y += eb[i][j] * eb[i][j];
      if (ea[i][j] !== eb[i][j]) identical = false;
    }
    const c = d / Math.sqrt(x * y);
    sumCos += c;
    if (c < minCos) {
      minCos = c;
      worst = i;
    }
  }
  const out = {
    n: sentences.length,
    precision: infoOf(b).precision,
    precisionNote: infoOf(b).precisionNote,
    fp32Precision: infoOf(a).precision,
    minCos,
    meanCos: sumCos / sentences.length,
    worst: { index: worst, text: sentences[worst] },
    identical,
  };
  if (flag('--sts')) {
    const data = kst.readKorSts(TSV);
    out.sts = {
      fp32: await kst.evaluateSts(cachedEncoder(sentences, ea), data),
      [precision]: await kst.evaluateSts(cachedEncoder(sentences, eb), data),
    };
  }
  a.dispose();
  b.dispose();
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
