#!/usr/bin/env node
/*
 * CPU benchmark: ko-sentence-transformers (this package, dist/) against onnxruntime-node on the same weights,
 * same token ids, same thread count, in one process. A benchmark, never a test: nothing here asserts a time.
 *
 *   node bench/bench.js [--threads 2] [--models kobert-base,klue-base] [--quick] [--out bench/results/cpu.md]
 *                       [--no-rss] [--no-peak] [--no-int8] [--no-bf16] [--no-ours-int8]
 *
 * Needs: `npm run build` (dist/ + build/Release/kst.node + build/test_ops), `python3 bench/make_models.py`
 * (bench/models/), `cd bench && npm install --ignore-scripts` (onnxruntime-node, @huggingface/transformers).
 * See bench/README.md.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const DATA = process.env.KO_ST_DATA || path.join(ROOT, '..', 'shared', 'data');
const MODELS = path.join(__dirname, 'models');

// ------------------------------------------------------------------------------------------------ args
function parseArgs(argv) {
  const a = { threads: 2, models: ['kobert-base', 'klue-base'], quick: false, out: path.join(__dirname, 'results', 'cpu.md'),
    rss: true, peak: true, int8: true, tjs: true, bf16: true, oursInt8: true, reps: 2, child: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--threads') a.threads = Number(argv[++i]);
    else if (k === '--models') a.models = argv[++i].split(',');
    else if (k === '--quick') a.quick = true;
    else if (k === '--out') a.out = path.resolve(argv[++i]);
    else if (k === '--no-rss') a.rss = false;
    else if (k === '--no-peak') a.peak = false;
    else if (k === '--no-int8') a.int8 = false;
    else if (k === '--no-tjs') a.tjs = false;
    else if (k === '--no-bf16') a.bf16 = false;
    else if (k === '--no-ours-int8') a.oursInt8 = false; // --no-int8 drops ORT's int8 model
    else if (k === '--reps') a.reps = Number(argv[++i]);
    else if (k === '--rss-child') a.child = { peer: argv[++i], model: argv[++i] };
    else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(a.threads) || a.threads < 1) throw new Error('--threads must be a positive integer');
  return a;
}

// ------------------------------------------------------------------------------------------------ helpers
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function pct(sorted, p) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}
function readStatus() {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [0, 0])[1]);
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024, file: kb('RssFile') * 1024, anon: kb('RssAnon') * 1024 };
}
function resetHwm() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    /* older kernels: HWM stays cumulative */
  }
}
const MB = (b) => (b / 1048576).toFixed(0);

function loadavg() {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}
function busyProcesses() {
  const r = spawnSync('ps', ['-eo', 'pcpu=,comm=,args=', '--sort=-pcpu'], { encoding: 'utf8' });
  return (r.stdout || '').split('\n').map((l) => l.trim()).filter((l) => l && parseFloat(l) >= 5 && !l.includes('bench.js') && !/^[0-9.]+ ps /.test(l))
    .map((l) => l.slice(0, 120));
}

function machine(threads) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [0, '?'])[1];
  const flags = new Set(((cpuinfo.match(/^flags\s*:\s*(.*)$/m) || [0, ''])[1]).split(/\s+/));
  const want = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_bf16', 'avx512_vnni', 'avx_vnni', 'amx_tile', 'amx_bf16', 'amx_int8'];
  let commit = '?';
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'native', 'src', 'bench', 'CMakeLists.txt'], { encoding: 'utf8' }).trim();
    if (dirty) commit += ' (+ uncommitted changes in native/src/bench)';
  } catch {
    /* not a git checkout */
  }
  return { model, flags: want.filter((f) => flags.has(f)), cores: os.cpus().length, threads, node: process.version, commit };
}

// ------------------------------------------------------------------------------------------------ data
function korstsTest() {
  const text = fs.readFileSync(path.join(DATA, 'kornlu', 'KorSTS', 'sts-test.tsv'), 'utf8');
  const out = [];
  text.split('\n').slice(1).forEach((line) => {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (!line) return;
    const f = line.split('\t');
    out.push(f[5], f[6]);
  });
  return out;
}

// ------------------------------------------------------------------------------------------------ peers
// Every peer exposes run(batch) where batch = { ids: Int32Array (packed), lengths: Int32Array }, returning
// Promise<Float32Array> of B × H mean-pooled rows.
// precision: 'fp32', 'bf16' or 'int8' (passed as $KST_PRECISION, read by the core at load).
async function loadOurs(stDir, threads, precision = 'fp32') {
  const kst = require(path.join(ROOT, 'dist', 'src', 'index.js'));
  process.env.KST_PRECISION = precision;
  let st;
  try {
    st = await kst.SentenceTransformer.load(stDir, { threads });
  } finally {
    delete process.env.KST_PRECISION;
  }
  const word = st.modules[0];
  return {
    name: precision === 'fp32' ? 'ours' : `ours-${precision}`,
    st,
    word,
    info: word.info(),
    run: (b) => word.encodeIds(b.ids, b.lengths, { pooling: ['mean'] }),
    tokenize: (texts) => word.tokenize(texts),
    dispose: () => st.dispose(),
  };
}

let ortMod = null;
function ort() {
  if (!ortMod) ortMod = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
  return ortMod;
}

async function loadOrt(file, threads, name) {
  const o = ort();
  const sess = await o.InferenceSession.create(file, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  return {
    name,
    run: async (b) => {
      const B = b.lengths.length;
      let L = 0;
      for (const l of b.lengths) L = Math.max(L, l);
      const ids = new BigInt64Array(B * L);
      const mask = new BigInt64Array(B * L);
      const types = new BigInt64Array(B * L);
      let p = 0;
      for (let s = 0; s < B; s++) {
        for (let t = 0; t < b.lengths[s]; t++) {
          ids[s * L + t] = BigInt(b.ids[p++]);
          mask[s * L + t] = 1n;
        }
        for (let t = b.lengths[s]; t < L; t++) ids[s * L + t] = 1n; // [PAD]
      }
      const feeds = {
        input_ids: new o.Tensor('int64', ids, [B, L]),
        attention_mask: new o.Tensor('int64', mask, [B, L]),
        token_type_ids: new o.Tensor('int64', types, [B, L]),
      };
      const r = await sess.run(feeds);
      return r.sentence_embedding.data;
    },
    dispose: () => sess.release && sess.release(),
  };
}

// transformers.js on the same model_opt.onnx (it runs onnxruntime-node underneath): a local model folder
// bench/models/<name>/tjs/<name>/{config.json, onnx/model.onnx → ../../../onnx/model_opt.onnx}, no Hub access.
async function loadTjs(name, stDir, onnxDir, threads) {
  let tjs;
  try {
    tjs = await import(path.join(__dirname, 'node_modules', '@huggingface', 'transformers', 'dist', 'transformers.node.mjs'));
  } catch (e) {
    return { skipped: `@huggingface/transformers not installed in bench/ (${e.message.split('\n')[0]})` };
  }
  const root = path.join(MODELS, name, 'tjs');
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  fs.copyFileSync(path.join(stDir, '0_KoBertTransformer', 'config.json'), path.join(dir, 'config.json'));
  const link = path.join(dir, 'onnx', 'model.onnx');
  if (!fs.existsSync(link)) fs.symlinkSync(path.join(onnxDir, 'model_opt.onnx'), link);
  tjs.env.allowRemoteModels = false;
  tjs.env.localModelPath = root + path.sep;
  const model = await tjs.AutoModel.from_pretrained(name, {
    dtype: 'fp32',
    device: 'cpu',
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' },
  });
  return {
    name: 'tjs',
    version: JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', '@huggingface', 'transformers', 'package.json'), 'utf8')).version,
    run: async (b) => {
      const B = b.lengths.length;
      let L = 0;
      for (const l of b.lengths) L = Math.max(L, l);
      const ids = new BigInt64Array(B * L).fill(1n);
      const mask = new BigInt64Array(B * L);
      let p = 0;
      for (let s = 0; s < B; s++) {
        for (let t = 0; t < b.lengths[s]; t++) {
          ids[s * L + t] = BigInt(b.ids[p++]);
          mask[s * L + t] = 1n;
        }
      }
      const out = await model({ input_ids: new tjs.Tensor('int64', ids, [B, L]), attention_mask: new tjs.Tensor('int64', mask, [B, L]) });
      return out.sentence_embedding.data;
    },
    dispose: () => model.dispose && model.dispose(),
  };
}

function pack(tokenized) {
  let total = 0;
  for (const t of tokenized) total += t.length;
  const ids = new Int32Array(total);
  const lengths = new Int32Array(tokenized.length);
  let p = 0;
  tokenized.forEach((t, i) => {
    ids.set(t, p);
    lengths[i] = t.length;
    p += t.length;
  });
  return { ids, lengths };
}

// sentence-transformers order: longest first (by characters), batches of `bs`; the same batches for every peer.
function batchesOf(sentences, tokenizedAll, bs) {
  const order = sentences.map((_, i) => i).sort((a, b) => sentences[b].length - sentences[a].length || a - b);
  const out = [];
  for (let i = 0; i < order.length; i += bs) out.push(pack(order.slice(i, i + bs).map((j) => tokenizedAll[j])));
  return out;
}

function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

// ------------------------------------------------------------------------------------------------ workloads
async function timePass(peer, batches) {
  const t0 = now();
  for (const b of batches) await peer.run(b);
  return now() - t0;
}

// (a) KorSTS-test, batch 32: best of `reps` full passes per peer (after a 3-batch warm-up). The peers take turns
// pass by pass, so load from other processes (if any) hits them alike.
async function workloadA(peers, batches, n, reps) {
  const best = {};
  for (const p of peers) {
    for (const b of batches.slice(0, 3)) await p.run(b);
    best[p.name] = Infinity;
  }
  for (let r = 0; r < reps; r++) {
    for (const p of peers) {
      best[p.name] = Math.min(best[p.name], await timePass(p, batches));
      await sleep(200); // let the previous peer's spinning threads park
    }
  }
  const res = {};
  for (const p of peers) res[p.name] = n / (best[p.name] / 1000);
  return res;
}

// (b) one short sentence, batch 1: p50 / p99 over `runs` timed runs per peer; the peers take turns in blocks of `block`
// runs. Each turn starts with untimed runs for at least `turnWarmMs`: on this VM a call's time falls over the first
// ~20–30 calls after the process did something else, whatever it was (median per position in the turn, 12-token
// sentence, 2 threads, turns of 60: ours 12.9 → 11.2 ms after ORT's turn and ORT 21.5 → 20.0 ms after ours; ours 12.7 →
// 10.8 ms in a C++ loop after a 400 ms sleep, 12.3 → 11.1 after 50 ms, so not an effect of Node or of the other peer;
// still 13.4 → 11.9 after the pool fix of cdddfe8). Without it the figure depends on the turn length: with 1 untimed
// run and turns of 20, ours read 11.2–11.7 ms beside ORT, 10.6–10.9 alone with the same pauses. The warm-up is the same
// wall time for every peer; the cost of the first calls after idle is reported on its own (workloadBIdle).
async function workloadB(peers, batch, warm, runs, block = 20, turnWarmMs = 300) {
  const ts = {};
  for (const p of peers) {
    for (let i = 0; i < warm; i++) await p.run(batch);
    ts[p.name] = [];
  }
  for (let done = 0; done < runs; done += block) {
    for (const p of peers) {
      await sleep(50); // the previous peer's spinning threads park
      for (const t0 = now(); now() - t0 < turnWarmMs;) await p.run(batch);
      for (let i = 0; i < Math.min(block, runs - done); i++) await timedRun(p, batch, ts);
    }
  }
  return statsOf(ts, (s) => ({ p50: pct(s, 50), p99: pct(s, 99), runs: s.length }));
}

// One call of peer p, its ms appended to ts[p.name].
async function timedRun(p, batch, ts) {
  const t0 = now();
  await p.run(batch);
  ts[p.name].push(now() - t0);
}

// { name: stats(sorted times) } for every peer in ts.
function statsOf(ts, stats) {
  const res = {};
  for (const [name, t] of Object.entries(ts)) res[name] = stats([...t].sort((x, y) => x - y));
  return res;
}

// (b) after idle: the first call after `idleMs` with nothing running, median and worst of `samples` per peer (the
// peers take turns sample by sample) — what a server with sporadic requests sees.
async function workloadBIdle(peers, batch, samples, idleMs = 500) {
  const ts = {};
  for (const p of peers) ts[p.name] = [];
  for (let i = 0; i < samples; i++) {
    for (const p of peers) {
      await sleep(idleMs);
      await timedRun(p, batch, ts);
    }
  }
  return statsOf(ts, (s) => ({ p50: median(s), max: s[s.length - 1], runs: s.length }));
}

// (b) real sentences: KorSTS-test sentences one at a time (every `stride`-th, so lengths spread as in the set), mean
// and p50 ms per sentence per peer — a search query is one sentence of whatever length it has, and per-call cost
// depends on the length (ours: up to 14 tokens a GEMM streams each weight once with all rows; 15–42 in two or three
// row tiles). Peers take turns in blocks of `block` sentences, each turn after `turnWarmMs` of untimed runs (as (b)).
async function workloadBSentences(peers, singles, block = 50, turnWarmMs = 300) {
  const ts = {};
  for (const p of peers) {
    for (let i = 0; i < 5; i++) await p.run(singles[0]);
    ts[p.name] = [];
  }
  for (let i0 = 0; i0 < singles.length; i0 += block) {
    for (const p of peers) {
      await sleep(50);
      for (const t0 = now(); now() - t0 < turnWarmMs;) await p.run(singles[i0]);
      for (let i = i0; i < Math.min(i0 + block, singles.length); i++) await timedRun(p, singles[i], ts);
    }
  }
  return statsOf(ts, (s) => ({ mean: s.reduce((x, y) => x + y, 0) / s.length, p50: pct(s, 50), runs: s.length }));
}

// (c) grid batch × length: synthetic ids ([CLS] random [SEP]), sentences/s from the median of each peer's `reps` calls.
function syntheticBatch(B, L, seed) {
  let x = seed >>> 0;
  const rnd = () => ((x = (x * 1664525 + 1013904223) >>> 0), x);
  const ids = new Int32Array(B * L);
  for (let s = 0; s < B; s++) {
    ids[s * L] = 2;
    for (let t = 1; t < L - 1; t++) ids[s * L + t] = 5 + (rnd() % 7990);
    ids[s * L + L - 1] = 3;
  }
  return { ids, lengths: new Int32Array(B).fill(L) };
}

// Peers take turns in `rounds` rounds per cell (each turn: one untimed call, then its share of the timed calls), so
// that a change in the VM's speed during a cell reaches every peer alike. Why: with one block of calls per peer the
// fp32 ratios of the same cells moved more between full runs than the peers differ (batch 32 × 16: 1.35×, 1.06×,
// 1.13×, 0.99× in four runs of unchanged fp32 code). Rounds do not help against a drift between runs.
async function workloadC(peers, grid, maxReps, rounds = 3) {
  const res = [];
  for (const [B, L] of grid) {
    const batch = syntheticBatch(B, L, B * 1000 + L);
    const row = { B, L };
    // fewer calls for the big cells (32 × 128 is ~0.7 TFLOP per call): between 3 and maxReps
    const reps = Math.max(3, Math.min(maxReps, Math.ceil(4096 / (B * L))));
    const perTurn = Math.ceil(reps / rounds);
    const ts = {};
    for (const p of peers) ts[p.name] = [];
    for (let r = 0; r < rounds; r++) {
      for (const p of peers) {
        await sleep(50);
        await p.run(batch);
        for (let i = 0; i < perTurn; i++) {
          const t0 = now();
          await p.run(batch);
          ts[p.name].push(now() - t0);
        }
        await sleep(100);
      }
    }
    for (const p of peers) row[p.name] = B / (median(ts[p.name]) / 1000);
    res.push(row);
  }
  return res;
}

// End to end: tokenization + packing/padding + model, through each peer's whole path (ours: SentenceTransformer.encode).
async function workloadE2E(ours, ortPeer, sentences, bs) {
  const res = {};
  {
    await ours.st.encode(sentences.slice(0, 64), { batchSize: bs });
    const t0 = now();
    await ours.st.encode(sentences, { batchSize: bs });
    res.ours = sentences.length / ((now() - t0) / 1000);
  }
  await sleep(200);
  {
    const order = sentences.map((_, i) => i).sort((a, b) => sentences[b].length - sentences[a].length || a - b);
    const t0 = now();
    for (let i = 0; i < order.length; i += bs) {
      const chunk = order.slice(i, i + bs).map((j) => sentences[j]);
      await ortPeer.run(pack(ours.tokenize(chunk)));
    }
    res.ort = sentences.length / ((now() - t0) / 1000);
  }
  return res;
}

// ------------------------------------------------------------------------------------------------ RSS (child processes)
async function rssChild(peerName, modelName, threads) {
  const m = JSON.parse(fs.readFileSync(path.join(MODELS, 'models.json'), 'utf8'))[modelName];
  const stDir = path.join(__dirname, m.st);
  const base = readStatus();
  let peer;
  if (peerName === 'ours' || peerName === 'ours-bf16' || peerName === 'ours-int8') {
    peer = await loadOurs(stDir, threads, peerName === 'ours' ? 'fp32' : peerName.slice(5));
  } else {
    require(path.join(ROOT, 'dist', 'src', 'index.js')); // same JS loaded as in the ours child, for a fair baseline
    peer = await loadOrt(path.join(__dirname, m.onnx, peerName === 'ort-int8' ? 'model_opt_int8.onnx' : 'model_opt.onnx'), threads, peerName);
  }
  const loaded = readStatus();
  resetHwm();
  const kst = require(path.join(ROOT, 'dist', 'src', 'index.js'));
  const tokDir = path.join(stDir, '0_KoBertTransformer');
  const tok = peer.tokenize ? peer : { tokenize: null };
  let tokenize = tok.tokenize;
  if (!tokenize) {
    const t = await kst.KoBertTokenizer.fromDirectory(tokDir);
    tokenize = (texts) => texts.map((s) => t.encode(s, 128));
  }
  const sentences = korstsTest();
  // the longest batches come first (sentence-transformers order), so the first 24 hold the peak
  const batches = batchesOf(sentences, tokenize(sentences), 32).slice(0, 24);
  for (const b of batches) await peer.run(b);
  const during = readStatus();
  process.stdout.write(JSON.stringify({ base, loaded, during }) + '\n');
}

function runRssChild(peer, model, threads) {
  const r = spawnSync(process.execPath, [__filename, '--threads', String(threads), '--rss-child', peer, model], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rss child ${peer} ${model} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ------------------------------------------------------------------------------------------------ peak FMA + GEMM
// build/test_ops run with `args`: the JSON on its last line, { error } if it failed, null where it is not built.
function testOpsJson(args) {
  const exe = path.join(ROOT, 'build', 'test_ops');
  if (!fs.existsSync(exe)) return null;
  const r = spawnSync(exe, args, { encoding: 'utf8' });
  if (r.status !== 0) return { error: r.stderr || r.stdout };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function peakAndGemm(threads, quick) {
  return testOpsJson(['--peak-json', String(threads), quick ? 'quick' : 'full']);
}

// ------------------------------------------------------------------------------------------------ memory floor
// The bytes of the encoder's linear weights (query/key/value, attention output, the FFN pair) that a forward pass
// reads once per call, per precision (bf16: 2 bytes; int8: 1 byte, its per-column scales left out), from config.json.
function encoderWeightBytes(stDir) {
  const cfg = JSON.parse(fs.readFileSync(path.join(stDir, '0_KoBertTransformer', 'config.json'), 'utf8'));
  const H = cfg.hidden_size, I = cfg.intermediate_size, n = cfg.num_hidden_layers * (4 * H * H + 2 * H * I);
  return { fp32: 4 * n, bf16: 2 * n, int8: n };
}

// test_ops --read-json: the streaming read rate of buffers that large, read again and again by the same threads.
// Each entry: { bytes, MB, gbs_median, gbs_best, floorMs } (floorMs: bytes ÷ the fastest pass).
function readRates(threads, bytes) {
  const mbs = Object.values(bytes).map((b) => (b / 1048576).toFixed(1));
  const js = testOpsJson(['--read-json', String(threads), mbs.join(',')]);
  if (!js || js.error) return js;
  const out = {};
  Object.keys(bytes).forEach((k, i) => (out[k] = { bytes: bytes[k], ...js.read[i], floorMs: bytes[k] / (js.read[i].gbs_best * 1e9) * 1e3 }));
  return out;
}

// ------------------------------------------------------------------------------------------------ report
function fmtRatio(x) {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '–';
}

// " (memory floor 0.34×)": where the batch-1 target sits against the bytes-÷-read-rate floor (the table above it).
function floorNote(r, k) {
  const x = r.floor && !r.floor.error && r.floor[k];
  return x ? ` (memory floor ${fmtRatio(x.floorMs / r.b.ort.p50)})` : '';
}

function report(ctx) {
  const { mach, args, results, loadBefore, loadAfter, busyBefore, busyAfter, peak } = ctx;
  const L = [];
  L.push('# CPU benchmark: ko-sentence-transformers vs ONNX Runtime');
  L.push('');
  L.push(`Generated by \`node bench/bench.js${args.quick ? ' --quick' : ''} --threads ${args.threads}\` on ${new Date().toISOString()}.`);
  L.push('');
  const quiet = parseFloat(loadBefore.split(' ')[0]) < 0.5 && busyBefore.length === 0;
  if (!quiet || args.quick) {
    L.push('> **Measurement conditions — read before quoting these numbers.**');
    if (args.quick) L.push('> This is a `--quick` run (short passes): figures are indicative only.');
    if (!quiet) {
      L.push(`> The machine was **not quiet**: load average before the run ${loadBefore}, after ${loadAfter} (1/5/15 min).`);
      if (busyBefore.length) L.push(`> Other busy processes before the run: ${busyBefore.map((x) => '`' + x + '`').join(', ')}.`);
      if (busyAfter.length) L.push(`> Busy after: ${busyAfter.map((x) => '`' + x + '`').join(', ')}.`);
      L.push('> Both peers ran in the same process, interleaved, so the ratios are comparable; the absolute figures are low.');
    }
    L.push('');
  }
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| CPU | ${mach.model}, ${mach.cores} cores |`);
  L.push(`| flags | ${mach.flags.join(' ')} |`);
  L.push(`| threads | ${mach.threads} (ours: \`threads\`; ORT: intraOpNumThreads, interOpNumThreads 1, sequential) |`);
  L.push(`| Node | ${mach.node}; onnxruntime-node ${ctx.ortVersion}${ctx.tjsVersion ? `; @huggingface/transformers ${ctx.tjsVersion} (same onnxruntime-node)` : ''} |`);
  L.push(`| commit | ${mach.commit} |`);
  L.push(`| ours | ISA ${ctx.oursIsa}, fp32 |`);
  L.push(`| load average | before ${loadBefore}, after ${loadAfter} |`);
  L.push('');
  if (peak && !peak.error) {
    L.push('## Peak FMA and GEMM efficiency');
    L.push('');
    L.push(`Register-resident AVX-512 FMA loop: **${peak.peak1.toFixed(1)} GFLOP/s on 1 thread, ${peak.peakN.toFixed(1)} on ${peak.threads}** (the fp32 peak below).`);
    // Issue 5 was written at ≈ 223 GFLOP/s per core on this VM; its cores have since run up to ~25 % slower at
    // times while memory did not, which lowers compute-bound figures and raises the GEMM % (README, Speed).
    const refPeak = 223 * peak.threads;
    if (peak.peakN < 0.9 * refPeak || peak.peakN > 1.1 * refPeak) {
      L.push('');
      L.push(`> The cores ran at ${(100 * peak.peakN / refPeak).toFixed(0)} % of the FMA rate issue 5 was written at (≈ 223 GFLOP/s per core, ${refPeak} on ${peak.threads}); memory speed does not follow the clock, so compute-bound figures (bf16 / int8 engines, large batches) move with it, memory-bound ones (fp32 batch 1) barely, and the GEMM rows' % of peak moves the other way.`);
    }
    L.push('');
    L.push(`| GEMM y = x Wᵀ + b (M × N × K) | fp32 GFLOP/s, ${peak.threads} threads | % of fp32 peak | bf16 path GFLOP/s (opt-in) | int8 path GOP/s (opt-in, quantising x included) |`);
    L.push('|---|---:|---:|---:|---:|');
    for (const g of peak.gemm) L.push(`| ${g.M} × ${g.N} × ${g.K} | ${g.gflops.toFixed(1)} | ${(100 * g.gflops / peak.peakN).toFixed(0)}% | ${g.bf16_gflops ? g.bf16_gflops.toFixed(1) : '–'} | ${g.int8_gops ? g.int8_gops.toFixed(1) : '–'} |`);
    L.push('');
    if (peak.ffn && peak.ffn.length) {
      L.push('The two FFN GEMMs (M × 3072 × 768 with GELU, then M × 768 × 3072) as the forward pass runs them: one op,');
      L.push('`ffn`, whose first GEMM stores its output in the layout the second one reads (no packing pass for the');
      L.push('second), against the same two GEMMs as separate calls (the second packs its x, as in the rows above);');
      L.push('fp32, calls alternating, best of the calls.');
      L.push('');
      L.push(`| FFN pair, M | as two GEMM calls, GFLOP/s | % of fp32 peak | as the forward runs it (\`ffn\`), GFLOP/s | % of fp32 peak |`);
      L.push('|---|---:|---:|---:|---:|');
      for (const f of peak.ffn) L.push(`| ${f.M} | ${f.pair_gflops.toFixed(1)} | ${(100 * f.pair_gflops / peak.peakN).toFixed(0)}% | ${f.ffn_gflops ? f.ffn_gflops.toFixed(1) : '–'} | ${f.ffn_gflops ? (100 * f.ffn_gflops / peak.peakN).toFixed(0) + '%' : '–'} |`);
      L.push('');
    }
  }
  for (const r of results) {
    L.push(`## ${r.model} (${r.desc})`);
    L.push('');
    L.push(`ORT graph: ${r.graph}.`);
    L.push('');
    L.push('| workload | ours fp32 | ORT fp32 | ours/ORT | ORT int8 | ours/ORT int8 | ours bf16 | bf16/ORT fp32 | ours int8 | int8/ORT int8 | int8/ORT fp32 | better |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    // ours int8: value, ratio to ORT's int8 model, ratio to ORT fp32 (x: ours int8, y8: ORT int8, y: ORT fp32)
    const q8 = (x, y8, y, f) => (x === undefined ? '| – | – | –' : `| ${f(x)} | ${y8 !== undefined ? '**' + fmtRatio(x / y8) + '**' : '–'} | ${fmtRatio(x / y)}`);
    const i8 = (x) => (x === undefined ? '–' : x);
    const f1 = (x) => (x === undefined ? '–' : x.toFixed(1));
    const f2 = (x) => (x === undefined ? '–' : x.toFixed(2));
    L.push(`| tokenization only, ${r.n} sentences (sentences/s) | ${r.tok.toFixed(0)} | (same tokenizer) | | | | | | | | | |`);
    L.push(`| (a) KorSTS-test ${r.n} sentences, batch 32, model only (sentences/s) | ${r.a.ours.toFixed(1)} | ${r.a.ort.toFixed(1)} | **${fmtRatio(r.a.ours / r.a.ort)}** | ${i8(r.a.int8 && r.a.int8.toFixed(1))} | ${r.a.int8 ? fmtRatio(r.a.ours / r.a.int8) : '–'} | ${f1(r.a.bf16)} | ${r.a.bf16 ? '**' + fmtRatio(r.a.bf16 / r.a.ort) + '**' : '–'} ${q8(r.a.i8, r.a.int8, r.a.ort, f1)} | higher |`);
    if (r.e2e) L.push(`| (a) same, end to end incl. tokenization (sentences/s) | ${r.e2e.ours.toFixed(1)} | ${r.e2e.ort.toFixed(1)} | **${fmtRatio(r.e2e.ours / r.e2e.ort)}** | | | | | | | | higher |`);
    L.push(`| (b) "${r.bText}" (${r.bTokens} tokens) batch 1, p50 (ms) | ${r.b.ours.p50.toFixed(2)} | ${r.b.ort.p50.toFixed(2)} | **${fmtRatio(r.b.ours.p50 / r.b.ort.p50)}** | ${r.b.int8 ? r.b.int8.p50.toFixed(2) : '–'} | ${r.b.int8 ? fmtRatio(r.b.ours.p50 / r.b.int8.p50) : '–'} | ${r.b.bf16 ? f2(r.b.bf16.p50) : '–'} | ${r.b.bf16 ? '**' + fmtRatio(r.b.bf16.p50 / r.b.ort.p50) + '**' : '–'} ${q8(r.b.i8 && r.b.i8.p50, r.b.int8 && r.b.int8.p50, r.b.ort.p50, f2)} | lower |`);
    L.push(`| (b) same, p99 (ms) | ${r.b.ours.p99.toFixed(2)} | ${r.b.ort.p99.toFixed(2)} | ${fmtRatio(r.b.ours.p99 / r.b.ort.p99)} | ${r.b.int8 ? r.b.int8.p99.toFixed(2) : '–'} | ${r.b.int8 ? fmtRatio(r.b.ours.p99 / r.b.int8.p99) : '–'} | ${r.b.bf16 ? f2(r.b.bf16.p99) : '–'} | ${r.b.bf16 ? fmtRatio(r.b.bf16.p99 / r.b.ort.p99) : '–'} ${q8(r.b.i8 && r.b.i8.p99, r.b.int8 && r.b.int8.p99, r.b.ort.p99, f2)} | lower |`);
    if (r.bIdle) {
      const bi = r.bIdle;
      const f = (k, x) => (bi[k] ? f2(bi[k][x]) : '–');
      for (const [x, what] of [['p50', 'median'], ['max', 'worst']]) {
        L.push(`| (b) same, first call after 0.5 s idle, ${what} of ${bi.ours.runs} (ms) | ${f('ours', x)} | ${f('ort', x)} | ${fmtRatio(bi.ours[x] / bi.ort[x])} | ${f('int8', x)} | ${bi.int8 ? fmtRatio(bi.ours[x] / bi.int8[x]) : '–'} | ${f('bf16', x)} | ${bi.bf16 ? fmtRatio(bi.bf16[x] / bi.ort[x]) : '–'} ${q8(bi.i8 && bi.i8[x], bi.int8 && bi.int8[x], bi.ort[x], f2)} | lower |`);
      }
    }
    if (r.bSent) {
      const bs = r.bSent;
      const f = (k, x) => (bs[k] ? f2(bs[k][x]) : '–');
      for (const [x, what] of [['mean', 'mean'], ['p50', 'p50']]) {
        L.push(`| (b) KorSTS-test sentences one at a time (${bs.n}: every ${bs.stride}th, ${bs.minTokens}–${bs.maxTokens} tokens, mean ${bs.meanTokens.toFixed(1)}), ${what} per sentence (ms) | ${f('ours', x)} | ${f('ort', x)} | ${fmtRatio(bs.ours[x] / bs.ort[x])} | ${f('int8', x)} | ${bs.int8 ? fmtRatio(bs.ours[x] / bs.int8[x]) : '–'} | ${f('bf16', x)} | ${bs.bf16 ? fmtRatio(bs.bf16[x] / bs.ort[x]) : '–'} ${q8(bs.i8 && bs.i8[x], bs.int8 && bs.int8[x], bs.ort[x], f2)} | lower |`);
      }
    }
    for (const c of r.c) {
      L.push(`| (c) batch ${c.B} × ${c.L} tokens (sentences/s) | ${c.ours.toFixed(1)} | ${c.ort.toFixed(1)} | **${fmtRatio(c.ours / c.ort)}** | ${c['ort-int8'] ? c['ort-int8'].toFixed(1) : '–'} | ${c['ort-int8'] ? fmtRatio(c.ours / c['ort-int8']) : '–'} | ${f1(c['ours-bf16'])} | ${c['ours-bf16'] ? fmtRatio(c['ours-bf16'] / c.ort) : '–'} ${q8(c['ours-int8'], c['ort-int8'], c.ort, f1)} | higher |`);
    }
    if (r.rss) {
      const o = r.rss.ours, f = r.rss.ort;
      L.push(`| (d) RSS after load, MB (process; bare Node + JS ${MB(o.base.rss)}) | ${MB(o.loaded.rss)} | ${MB(f.loaded.rss)} | ${fmtRatio(o.loaded.rss / f.loaded.rss)} | ${r.rss['ort-int8'] ? MB(r.rss['ort-int8'].loaded.rss) : '–'} | | ${r.rss['ours-bf16'] ? MB(r.rss['ours-bf16'].loaded.rss) : '–'} | | ${r.rss['ours-int8'] ? MB(r.rss['ours-int8'].loaded.rss) : '–'} | | | lower |`);
      L.push(`| (d) peak RSS during (a), MB | ${MB(o.during.hwm)} | ${MB(f.during.hwm)} | ${fmtRatio(o.during.hwm / f.during.hwm)} | ${r.rss['ort-int8'] ? MB(r.rss['ort-int8'].during.hwm) : '–'} | | ${r.rss['ours-bf16'] ? MB(r.rss['ours-bf16'].during.hwm) : '–'} | | ${r.rss['ours-int8'] ? MB(r.rss['ours-int8'].during.hwm) : '–'} | | | lower |`);
      L.push(`| (d) RSS after load − bare, ÷ safetensors file (${MB(r.fileBytes)} MB) | ${((o.loaded.rss - o.base.rss) / r.fileBytes).toFixed(2)} | ${((f.loaded.rss - f.base.rss) / r.fileBytes).toFixed(2)} | | | | ${r.rss['ours-bf16'] ? ((r.rss['ours-bf16'].loaded.rss - r.rss['ours-bf16'].base.rss) / r.fileBytes).toFixed(2) : '–'} | | ${r.rss['ours-int8'] ? ((r.rss['ours-int8'].loaded.rss - r.rss['ours-int8'].base.rss) / r.fileBytes).toFixed(2) : '–'} | | | lower |`);
    }
    if (r.tjs.version) {
      L.push('');
      L.push(`transformers.js ${r.tjs.version} on the same \`model_opt.onnx\` (it runs onnxruntime-node underneath), same batches:`);
      L.push('');
      L.push('| workload | ours | transformers.js | ours/transformers.js | better |');
      L.push('|---|---:|---:|---:|---|');
      L.push(`| (a) KorSTS-test, batch 32, model only (sentences/s) | ${r.a.ours.toFixed(1)} | ${r.a.tjs.toFixed(1)} | **${fmtRatio(r.a.ours / r.a.tjs)}** | higher |`);
      L.push(`| (b) batch 1, p50 (ms) | ${r.b.ours.p50.toFixed(2)} | ${r.b.tjs.p50.toFixed(2)} | **${fmtRatio(r.b.ours.p50 / r.b.tjs.p50)}** | lower |`);
      L.push(`| (b) batch 1, p99 (ms) | ${r.b.ours.p99.toFixed(2)} | ${r.b.tjs.p99.toFixed(2)} | ${fmtRatio(r.b.ours.p99 / r.b.tjs.p99)} | lower |`);
      if (r.bSent && r.bSent.tjs) L.push(`| (b) KorSTS-test sentences one at a time, mean (ms) | ${r.bSent.ours.mean.toFixed(2)} | ${r.bSent.tjs.mean.toFixed(2)} | ${fmtRatio(r.bSent.ours.mean / r.bSent.tjs.mean)} | lower |`);
      if (r.bIdle && r.bIdle.tjs) L.push(`| (b) first call after 0.5 s idle, median (ms) | ${r.bIdle.ours.p50.toFixed(2)} | ${r.bIdle.tjs.p50.toFixed(2)} | ${fmtRatio(r.bIdle.ours.p50 / r.bIdle.tjs.p50)} | lower |`);
    }
    L.push('');
    if (r.tjs.skipped) L.push(`transformers.js: skipped (${r.tjs.skipped}).`);
    if (r.floor && !r.floor.error) {
      const fl = r.floor;
      L.push('');
      L.push(`Batch 1 against the memory floor: a call reads every weight of the encoder's linear layers once (${MB(fl.fp32.bytes)} MB in fp32), more than this VM keeps in cache from one call to the next, so no call takes less than those bytes ÷ the rate at which ${args.threads} threads stream a buffer that large again and again (\`test_ops --read-json\`, 32 passes per size, measured right after (b); the floor uses the fastest pass).`);
      L.push('');
      L.push('| precision | weights read per call, MB | read rate, GB/s (median / fastest pass) | floor, ms | ours (b) p50, ms | p50 ÷ floor | floor ÷ ORT fp32 p50 |');
      L.push('|---|---:|---:|---:|---:|---:|---:|');
      for (const [k, b] of [['fp32', r.b.ours], ['bf16', r.b.bf16], ['int8', r.b.i8]]) {
        const x = fl[k];
        if (!x) continue;
        const ms = x.floorMs;
        L.push(`| ${k} | ${MB(x.bytes)} | ${x.gbs_median.toFixed(1)} / ${x.gbs_best.toFixed(1)} | ${ms.toFixed(2)} | ${b ? b.p50.toFixed(2) : '–'} | ${b ? fmtRatio(b.p50 / ms) : '–'} | ${fmtRatio(ms / r.b.ort.p50)} |`);
      }
      L.push('');
    }
    L.push(`Agreement over the KorSTS-test sentences (min cosine): ours fp32 vs ORT fp32 ${r.cos.toFixed(6)}${r.cos8 !== undefined ? `; ORT int8 vs ours fp32 ${r.cos8.toFixed(4)}` : ''}${r.cos16 !== undefined ? `; ours bf16 vs ours fp32 ${r.cos16.toFixed(5)}` : ''}${r.cosI8 !== undefined ? `; ours int8 vs ours fp32 ${r.cosI8.toFixed(5)}` : ''}.`);
    L.push('');
  }
  // Issue 5's targets, checked against this run's figures (first model).
  {
    const r = results[0];
    const yes = (ok) => (ok ? 'met' : '**missed**');
    L.push('## Targets (issue 5), this run');
    L.push('');
    L.push('| target | this run | |');
    L.push('|---|---|---|');
    L.push(`| (a) KorSTS-test throughput ≥ 1.25× ORT (${r.model}) | ${fmtRatio(r.a.ours / r.a.ort)} | ${yes(r.a.ours / r.a.ort >= 1.25)} |`);
    L.push(`| (b) batch-1 p50 ≤ 0.6× ORT | ${fmtRatio(r.b.ours.p50 / r.b.ort.p50)} | ${yes(r.b.ours.p50 / r.b.ort.p50 <= 0.6)} |`);
    if (r.c.length) {
      const worst = Math.min(...r.c.map((c) => c.ours / c.ort));
      L.push(`| (c) every grid cell ≥ 1.0× ORT | worst cell ${fmtRatio(worst)} | ${yes(worst >= 1.0)} |`);
    }
    if (peak && !peak.error) {
      const g = peak.gemm.filter((x) => x.M >= 64 && (x.N === 3072 || x.K === 3072));
      if (g.length) {
        const w = Math.min(...g.map((x) => x.gflops / peak.peakN));
        // one decimal, rounded down, so a 79.98 % row cannot print as "80%" beside "missed"
        L.push(`| GEMM ≥ 80% of fp32 peak at 768 × 3072 shapes, ≥ 64 tokens | worst ${(Math.floor(1000 * w) / 10).toFixed(1)}% | ${yes(w >= 0.8)} |`);
      }
      const f = (peak.ffn || []).filter((x) => x.M >= 64 && x.ffn_gflops > 0);
      if (f.length) {
        const w = Math.min(...f.map((x) => x.ffn_gflops / peak.peakN));
        L.push(`| the same, the FFN pair as the forward pass runs it (\`ffn\`, both 768 × 3072 GEMMs together), ≥ 64 tokens | worst ${(Math.floor(1000 * w) / 10).toFixed(1)}% | ${yes(w >= 0.8)} |`);
      }
    }
    if (r.a.bf16) {
      L.push(`| bf16: ≥ 2× ORT fp32 on (a) | ${fmtRatio(r.a.bf16 / r.a.ort)} | ${yes(r.a.bf16 / r.a.ort >= 2)} |`);
      L.push(`| bf16: batch-1 p50 ≤ 0.35× ORT fp32 | ${fmtRatio(r.b.bf16.p50 / r.b.ort.p50)}${floorNote(r, 'bf16')} | ${yes(r.b.bf16.p50 / r.b.ort.p50 <= 0.35)} |`);
      L.push(`| bf16: cosine ≥ 0.999 to fp32 on every KorSTS-test sentence | min ${r.cos16.toFixed(5)} | ${yes(r.cos16 >= 0.999)} |`);
    }
    if (r.a.i8) {
      if (r.a.int8) L.push(`| int8: ≥ 1.3× ORT's dynamic-int8 model on (a) | ${fmtRatio(r.a.i8 / r.a.int8)} | ${yes(r.a.i8 / r.a.int8 >= 1.3)} |`);
      L.push(`| int8: batch-1 p50 ≤ 0.35× ORT fp32 | ${fmtRatio(r.b.i8.p50 / r.b.ort.p50)}${floorNote(r, 'int8')} | ${yes(r.b.i8.p50 / r.b.ort.p50 <= 0.35)} |`);
      L.push(`| int8: cosine ≥ 0.999 to fp32 on every KorSTS-test sentence | min ${r.cosI8.toFixed(5)} | ${yes(r.cosI8 >= 0.999)} |`);
    } else {
      L.push(`| int8 (VNNI / AMX-INT8) path | ${r.i8Active ? `not measured (${r.i8Active})` : 'not run (--no-ours-int8)'} | – |`);
    }
    if (r.rss) {
      const x = (r.rss.ours.loaded.rss - r.rss.ours.base.rss) / r.fileBytes;
      L.push(`| RSS after load ≤ 1.3× safetensors size (RSS − bare Node) | ${x.toFixed(2)}× | ${yes(x <= 1.3)} |`);
    }
    L.push('');
  }
  L.push('## How the figures are made');
  L.push('');
  L.push('- Same process, same token ids: both peers get the KoBERT tokenizer\'s ids (this package\'s tokenizer, equal to the Python one); the klue-shaped model is a 32000-row embedding table fed the same ids. Batches are formed the sentence-transformers way (longest first, 32 per batch); ORT gets each batch padded to its longest sequence with an attention mask, ours gets it packed (no padding).');
  L.push('- Both produce mean-pooled sentence embeddings: ours in the core, ORT in the graph (the export adds masked mean pooling).');
  L.push('- (a) best of the full passes (peers take turns pass by pass) after a 3-batch warm-up; (b) after warm-up runs, percentiles over ≥ 100 timed runs per peer (turns in blocks of 20, each turn after ≥ 300 ms of untimed runs: a call\'s time on this VM falls over the first ~20–30 calls after the process did anything else, for every peer), and separately the first call after 0.5 s with nothing running (median and worst, peers taking turns), and every 9th KorSTS-test sentence one at a time (each its own length, as search queries come; blocks of 50 per turn, each turn after 300 ms of untimed runs); (c) median of each peer\'s calls, peers taking turns in 3 rounds per cell (one untimed call per turn); end to end includes tokenization and packing / padding.');
  L.push('- (d) separate child processes per peer (so one peer\'s memory does not count for the other); RSS includes the file-backed pages of memory-mapped weights. Peak = VmHWM (reset after load) over the first 24 batches of (a), which hold its longest sentences.');
  L.push(`- "ours bf16" is the opt-in precision \'bf16\' (weights rounded to bf16 at load, activations rounded to bf16 once per GEMM or block, fp32 accumulation), selected here with $KST_PRECISION=bf16; on this CPU it runs on ${mach.flags.includes('amx_bf16') ? 'AMX-BF16 tiles (a small-M engine up to 512 tokens per GEMM, in passes of 32 rows over each weight panel, the blocked engine above)' : 'AVX512-BF16 vdpbf16ps (bf16 widened to fp32 FMAs up to 24 tokens per GEMM)'}.`);
  L.push(`- "ours int8" is the opt-in precision \'int8\' (weights quantised per output channel to int8 at load, activations per token to u8 with a zero point on every GEMM, exact int32 sums; embeddings, LayerNorm, attention and pooling in fp32), selected here with $KST_PRECISION=int8; on this CPU it runs on ${mach.flags.includes('amx_int8') ? 'AMX-INT8 tiles (a small-M engine up to 384 tokens per GEMM, in passes of 32 rows over each weight panel, the blocked engine above)' : mach.flags.includes('avx512_vnni') ? 'AVX512-VNNI vpdpbusd' : mach.flags.includes('avx_vnni') ? 'AVX-VNNI vpdpbusd' : 'nothing: no VNNI, so it falls back to fp32'}. ORT int8 is ORT\'s own dynamic quantisation of the same graph.`);
  L.push('- Peers take turns with a short pause between them (ORT\'s intra-op threads spin for a while after a run).');
  L.push('');
  return L.join('\n');
}

// ------------------------------------------------------------------------------------------------ main
async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return rssChild(args.child.peer, args.child.model, args.threads);
  const loadBefore = loadavg();
  const busyBefore = busyProcesses();
  const mach = machine(args.threads);
  const manifest = JSON.parse(fs.readFileSync(path.join(MODELS, 'models.json'), 'utf8'));
  const q = args.quick;
  console.error(`machine: ${mach.model}; threads ${args.threads}; load ${loadBefore}`);
  const peak = args.peak ? peakAndGemm(args.threads, q) : null;
  if (peak && !peak.error) console.error(`peak FMA: ${peak.peak1.toFixed(1)} GFLOP/s (1 thread), ${peak.peakN.toFixed(1)} (${peak.threads})`);
  const sentencesAll = korstsTest();
  const sentences = q ? sentencesAll.slice(0, 256) : sentencesAll;
  const results = [];
  let oursIsa = '?';
  for (const name of args.models) {
    const m = manifest[name];
    if (!m) throw new Error(`model ${name} not in bench/models/models.json: run python3 bench/make_models.py`);
    const stDir = path.join(__dirname, m.st);
    const onnxDir = path.join(__dirname, m.onnx);
    const fusion = JSON.parse(fs.readFileSync(path.join(onnxDir, 'fusion.json'), 'utf8'));
    const ours = await loadOurs(stDir, args.threads);
    oursIsa = ours.info.isa;
    const peers = [ours, await loadOrt(path.join(onnxDir, 'model_opt.onnx'), args.threads, 'ort')];
    const int8 = args.int8 ? await loadOrt(path.join(onnxDir, 'model_opt_int8.onnx'), args.threads, 'ort-int8') : null;
    const bf16 = args.bf16 ? await loadOurs(stDir, args.threads, 'bf16') : null;
    let oi8 = args.oursInt8 ? await loadOurs(stDir, args.threads, 'int8') : null;
    let i8Active;
    if (oi8 && oi8.info.precision !== 'int8') {
      // No VNNI here: the model would run fp32; leave it out rather than report fp32 figures as int8.
      i8Active = oi8.info.precisionNote || `precision ${oi8.info.precision}`;
      console.error(`ours int8: ${i8Active}`);
      oi8.dispose();
      oi8 = null;
    }
    const all = [...peers, ...(int8 ? [int8] : []), ...(bf16 ? [bf16] : []), ...(oi8 ? [oi8] : [])];
    const tjs = !args.tjs ? { skipped: 'disabled with --no-tjs' }
      : name !== args.models[0] ? { skipped: `run on ${args.models[0]} only` } : await loadTjs(name, stDir, onnxDir, args.threads);
    const withTjs = tjs.skipped ? all : [...all, tjs];
    console.error(`${name}: loaded${tjs.skipped ? ` (transformers.js skipped: ${tjs.skipped})` : ''}`);

    // tokenization alone
    let t0 = now();
    const tokenized = ours.tokenize(sentences);
    const tokMs = now() - t0;
    const batches = batchesOf(sentences, tokenized, 32);
    const tokens = tokenized.reduce((s, t) => s + t.length, 0);

    // agreement
    let cos = 1, cos8, cos16, cosI8;
    {
      const outs = {};
      for (const p of all) {
        outs[p.name] = [];
        for (const b of batches) outs[p.name].push(await p.run(b));
      }
      const H = 768;
      let c8 = 1, c16 = 1, ci8 = 1;
      outs.ours.forEach((o, bi) => {
        for (let s = 0; s < o.length / H; s++) {
          const a = o.subarray(s * H, (s + 1) * H);
          cos = Math.min(cos, cosine(a, outs.ort[bi].subarray(s * H, (s + 1) * H)));
          if (int8) c8 = Math.min(c8, cosine(a, outs['ort-int8'][bi].subarray(s * H, (s + 1) * H)));
          if (bf16) c16 = Math.min(c16, cosine(a, outs['ours-bf16'][bi].subarray(s * H, (s + 1) * H)));
          if (oi8) ci8 = Math.min(ci8, cosine(a, outs['ours-int8'][bi].subarray(s * H, (s + 1) * H)));
        }
      });
      if (int8) cos8 = c8;
      if (bf16) cos16 = c16;
      if (oi8) cosI8 = ci8;
    }
    console.error(`${name}: agreement min cos ${cos}`);

    // The klue-shaped model differs only in its embedding table: the second and later models run (a), (b), (d).
    const fullSet = name === args.models[0];
    const a = await workloadA(withTjs, batches, sentences.length, q ? 1 : args.reps);
    console.error(`${name}: (a) ${JSON.stringify(a)}`);
    const e2e = fullSet ? await workloadE2E(ours, peers[1], sentences, 32) : null;
    if (e2e) console.error(`${name}: e2e ${JSON.stringify(e2e)}`);
    const bText = '한 남자가 파스타를 먹는다.';
    const bBatch = pack(ours.tokenize([bText]));
    const b = await workloadB(withTjs, bBatch, q ? 10 : 30, q ? 40 : 200);
    console.error(`${name}: (b) ${JSON.stringify(b)}`);
    // Measured next to (b), as the VM's memory speed drifts over a run.
    const floor = readRates(args.threads, encoderWeightBytes(stDir));
    console.error(`${name}: read rates ${JSON.stringify(floor)}`);
    const bi = await workloadBIdle(withTjs, bBatch, q ? 5 : 15);
    console.error(`${name}: (b) after idle ${JSON.stringify(bi)}`);
    const stride = q ? 16 : 9;
    const sample = sentencesAll.filter((_, i) => i % stride === 0);
    const singles = sample.map((t) => pack(ours.tokenize([t])));
    const lens = singles.map((x) => x.ids.length);
    const bs = await workloadBSentences(withTjs, singles);
    console.error(`${name}: (b) sentences ${JSON.stringify(bs)}`);
    const grid = [];
    for (const B of [1, 8, 32]) for (const Lq of [16, 64, 128]) grid.push([B, Lq]);
    const c = fullSet ? await workloadC(all, grid, q ? 3 : B_REPS) : [];
    console.error(`${name}: (c) done`);
    for (const p of withTjs) p.dispose();

    let rss = null;
    if (args.rss) {
      rss = {};
      for (const p of ['ours', 'ort', ...(int8 ? ['ort-int8'] : []), ...(bf16 ? ['ours-bf16'] : []), ...(oi8 ? ['ours-int8'] : [])]) rss[p] = runRssChild(p, name, args.threads);
      console.error(`${name}: rss ${MB(rss.ours.loaded.rss)} / ${MB(rss.ort.loaded.rss)} MB`);
    }
    const fileBytes = fs.statSync(path.join(stDir, '0_KoBertTransformer', 'model.safetensors')).size;
    const graphOps = Object.entries(fusion.fused_ops).map(([k, v]) => `${k} ${v}`).join(', ');
    results.push({
      model: name,
      desc: `random weights, 12 × 768, vocab ${m.vocab_size}, ${sentences.length} sentences, mean ${(tokens / sentences.length).toFixed(1)} tokens`,
      graph: `\`model_opt.onnx\` — ${fusion.export}, then ${fusion.optimizer}; fused: ${graphOps}; int8: ${fusion.quantization} of that graph`,
      n: sentences.length,
      tok: sentences.length / (tokMs / 1000),
      a: { ours: a.ours, ort: a.ort, int8: a['ort-int8'], tjs: a.tjs, bf16: a['ours-bf16'], i8: a['ours-int8'] },
      tjs: tjs.skipped ? { skipped: tjs.skipped } : { version: tjs.version },
      e2e,
      b: { ours: b.ours, ort: b.ort, int8: b['ort-int8'], tjs: b.tjs, bf16: b['ours-bf16'], i8: b['ours-int8'] },
      bIdle: { ours: bi.ours, ort: bi.ort, int8: bi['ort-int8'], tjs: bi.tjs, bf16: bi['ours-bf16'], i8: bi['ours-int8'] },
      bSent: { ours: bs.ours, ort: bs.ort, int8: bs['ort-int8'], tjs: bs.tjs, bf16: bs['ours-bf16'], i8: bs['ours-int8'],
        n: singles.length, stride, meanTokens: lens.reduce((x, y) => x + y, 0) / lens.length,
        minTokens: Math.min(...lens), maxTokens: Math.max(...lens) },
      bText,
      bTokens: bBatch.ids.length,
      floor,
      c,
      rss,
      fileBytes,
      cos,
      cos8,
      cos16,
      cosI8,
      i8Active,
      bf16Active: bf16 ? bf16.info.precision || 'bf16 requested' : undefined,
    });
  }
  const ortVersion = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version;
  const tjsVersion = (results.find((r) => r.tjs.version) || { tjs: {} }).tjs.version;
  const md = report({ mach, args, results, loadBefore, loadAfter: loadavg(), busyBefore, busyAfter: busyProcesses(), peak, ortVersion, oursIsa, tjsVersion });
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, md + '\n');
  fs.writeFileSync(args.out.replace(/\.md$/, '.json'), JSON.stringify({ mach, peak, results }, null, 1));
  console.log(md);
}

const B_REPS = 15;

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
