// Helper of bf16.test.ts, run as a child process so that $KST_PRECISION reaches the addon's getenv (jest gives
// tests a copy of process.env). Usage: node test/bf16-compare.js MODEL_DIR N_SENTENCES → one JSON line
// {minCos, identical, n}: fp32 vs bf16 embeddings of the first N KorSTS-test sentences.
'use strict';
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const kst = require(path.join(ROOT, 'dist', 'src', 'index.js'));
const DATA = process.env.KO_ST_DATA || path.join(ROOT, '..', 'shared', 'data');

function korstsTest() {
  const text = fs.readFileSync(path.join(DATA, 'kornlu', 'KorSTS', 'sts-test.tsv'), 'utf8');
  const out = [];
  for (let line of text.split('\n').slice(1)) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (!line) continue;
    const f = line.split('\t');
    out.push(f[5], f[6]);
  }
  return out;
}

async function loadWith(dir, precision) {
  process.env.KST_PRECISION = precision;
  try {
    return await kst.SentenceTransformer.load(dir, { threads: 2 });
  } finally {
    delete process.env.KST_PRECISION;
  }
}

(async () => {
  const [dir, n] = process.argv.slice(2);
  const sentences = korstsTest().slice(0, Number(n));
  const a = await loadWith(dir, 'fp32');
  const b = await loadWith(dir, 'bf16');
  const ea = await a.encode(sentences, { batchSize: 32 });
  const eb = await b.encode(sentences, { batchSize: 32 });
  let minCos = 1;
  let identical = true;
  for (let i = 0; i < sentences.length; i++) {
    let d = 0, x = 0, y = 0;
    for (let j = 0; j < ea[i].length; j++) {
      d += ea[i][j] * eb[i][j];
      x += ea[i][j] * ea[i][j];
      y += eb[i][j] * eb[i][j];
      if (ea[i][j] !== eb[i][j]) identical = false;
    }
    minCos = Math.min(minCos, d / Math.sqrt(x * y));
  }
  a.dispose();
  b.dispose();
  process.stdout.write(JSON.stringify({ minCos, identical, n: sentences.length }) + '\n');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
