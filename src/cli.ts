#!/usr/bin/env node
/**
 * ko-sbert: the command line of ko-sentence-transformers.
 *
 *   ko-sbert embed  [file]     text lines (file or stdin) → JSONL (default) or a .npy file of float32 rows
 *   ko-sbert search [corpus]   corpus lines + queries → top-k with cosine scores (no files: the seed's demo)
 *   ko-sbert eval   [tsv]      KorSTS tsv → the eight figures (cosine/euclidean/manhattan/dot × Pearson/Spearman)
 *   ko-sbert info              model config, backend, SIMD level, threads, addon file
 *
 * Every command takes --model <dir> (default: the model shipped in weights/). Errors are one line on stderr;
 * exit code 2 for bad usage, 1 for a failure.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, CommanderError, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';

import { detectIsa, findPackageRoot, loadBinding, loadedAddonPath } from './binding';
import { evaluateSts, formatStsResult, readKorSts, SIMILARITY_NAMES } from './evaluation';
import { DEMO_CORPUS, DEMO_QUERIES } from './demo';
import { convertToSafetensors } from './io/pytorch';
import { KoBertTransformer } from './models/transformer';
import { RuntimeOptions } from './models/native-model';
import { Normalize } from './models/normalize';
import { Pooling } from './models/pooling';
import { SentenceTransformer } from './sentence-transformer';
import { semanticSearch } from './util';

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {}

/** The default demo of `ko-sbert search` (src/demo.ts). */
export { DEMO_CORPUS, DEMO_QUERIES };

function isModelDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'modules.json')) || fs.existsSync(path.join(dir, 'config.json'));
}

/**
 * The model shipped in the package: weights/default, else the one sentence-transformers folder
 * (with modules.json) under weights/. Undefined when none ships.
 */
export function defaultModelDir(root: string = findPackageRoot()): string | undefined {
  const weights = path.join(root, 'weights');
  const preferred = path.join(weights, 'default');
  if (isModelDir(preferred)) return preferred;
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(weights, { withFileTypes: true });
  } catch {
    return undefined;
  }
  const found = entries
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(weights, e.name, 'modules.json')))
    .map((e) => path.join(weights, e.name))
    .sort();
  return found.length === 1 ? found[0] : undefined;
}

interface ModelFlags {
  model?: string;
  threads?: number;
  isa?: string;
  device?: string;
  precision?: 'fp32' | 'bf16' | 'int8';
}

async function loadModel(flags: ModelFlags): Promise<{ model: SentenceTransformer; dir: string }> {
  const dir = flags.model ?? defaultModelDir();
  if (dir === undefined) {
    throw new UsageError('no default model ships with this copy of ko-sentence-transformers: pass --model <sentence-transformers folder>');
  }
  const options: RuntimeOptions = {};
  if (flags.threads !== undefined) options.threads = flags.threads;
  if (flags.isa !== undefined) options.isa = flags.isa;
  if (flags.device !== undefined) options.device = flags.device;
  if (flags.precision !== undefined) options.precision = flags.precision;
  const model = await SentenceTransformer.load(dir, options);
  return { model, dir };
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}

function addModelOptions(cmd: Command): Command {
  return cmd
    .option('-m, --model <dir>', 'sentence-transformers model folder (default: the model shipped in weights/)')
    .option('--threads <n>', 'core threads (0 = all cores)', nonNegativeInt('--threads'))
    .addOption(new Option('--isa <isa>', 'lower the instruction set (default: best the CPU has, or $KST_ISA)').choices(['auto', 'avx512', 'avx2', 'scalar']))
    .option('--device <device>', "cpu | cuda | cuda:N | auto (default: $KST_DEVICE or cpu; 'auto' falls back to the CPU)")
    .addOption(
      new Option('--precision <p>', 'CPU GEMM precision: fp32, or opt-in bf16 / int8 (fp32 where the CPU lacks the instructions; default: $KST_PRECISION or fp32)').choices(['fp32', 'bf16', 'int8']),
    );
}

/** Text lines of a file or of stdin ('-' or no file with piped input). A trailing newline adds no line. */
function readLines(file: string | undefined, what: string): string[] {
  let text: string;
  if (file === undefined || file === '-') {
    if (file === undefined && process.stdin.isTTY) throw new UsageError(`give ${what} as a file argument or on standard input`);
    text = fs.readFileSync(0, 'utf8');
  } else {
    if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
    text = fs.readFileSync(file, 'utf8');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Shortest decimal text that reads back as the same float32 (so JSONL holds the exact values). */
export function float32Text(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`embedding value ${x} cannot be written as JSON`);
  if (x === 0) return '0';
  for (let p = 1; p < 9; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(Number(x.toPrecision(9)));
}

/** A .npy (format 1.0) header for a little-endian float32 C-order array of the given shape. */
export function npyHeader(shape: number[]): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const unpadded = 10 + dict.length + 1; // magic(6) + version(2) + header_len(2) + dict + '\n'
  const pad = (64 - (unpadded % 64)) % 64;
  const header = dict + ' '.repeat(pad) + '\n';
  const buf = Buffer.alloc(10 + header.length);
  buf.write('\x93NUMPY', 0, 'latin1');
  buf[6] = 1;
  buf[7] = 0;
  buf.writeUInt16LE(header.length, 8);
  buf.write(header, 10, 'latin1');
  return buf;
}

function progressWanted(flag: boolean | undefined): boolean {
  return flag !== false && Boolean(process.stderr.isTTY);
}

async function writeChunk(out: NodeJS.WritableStream, data: string | Buffer): Promise<void> {
  if (!out.write(data)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

interface EmbedFlags extends ModelFlags {
  output?: string;
  format?: 'jsonl' | 'npy';
  batchSize: number;
  normalize?: boolean;
  progress?: boolean;
}

async function embedCommand(file: string | undefined, flags: EmbedFlags): Promise<void> {
  const format = flags.format ?? (flags.output && flags.output.toLowerCase().endsWith('.npy') ? 'npy' : 'jsonl');
  if (format === 'npy' && !flags.output && process.stdout.isTTY) throw new UsageError('--format npy writes binary: give --output <file.npy> or redirect standard output');
  const lines = readLines(file, 'the text lines to embed');
  const { model } = await loadModel(flags);
  let out: NodeJS.WritableStream = process.stdout;
  let fileStream: fs.WriteStream | undefined;
  try {
    if (flags.output) {
      fileStream = fs.createWriteStream(flags.output);
      await new Promise<void>((resolve, reject) => {
        fileStream!.once('open', () => resolve());
        fileStream!.once('error', reject);
      });
      out = fileStream;
    }
    const dim = model.getSentenceEmbeddingDimension();
    if (format === 'npy') await writeChunk(out, npyHeader([lines.length, dim]));
    const chunk = Math.max(flags.batchSize * 16, 256);
    const bar = progressWanted(flags.progress) && lines.length > 0 ? new SingleBar({ format: 'embed |{bar}| {value}/{total} lines', stream: process.stderr }, Presets.shades_classic) : undefined;
    bar?.start(lines.length, 0);
    try {
      for (let start = 0; start < lines.length; start += chunk) {
        const part = lines.slice(start, start + chunk);
        const embs = await model.encode(part, { batchSize: flags.batchSize, normalizeEmbeddings: Boolean(flags.normalize) });
        if (format === 'npy') {
          const buf = Buffer.alloc(part.length * dim * 4);
          embs.forEach((e, i) => {
            for (let k = 0; k < dim; k++) buf.writeFloatLE(e[k], (i * dim + k) * 4);
          });
          await writeChunk(out, buf);
        } else {
          const text = embs.map((e, i) => `{"text":${JSON.stringify(part[i])},"embedding":[${Array.from(e, float32Text).join(',')}]}\n`).join('');
          await writeChunk(out, text);
        }
        bar?.update(start + part.length);
      }
    } finally {
      bar?.stop();
    }
    if (fileStream) {
      await new Promise<void>((resolve, reject) => fileStream!.end((err?: Error | null) => (err ? reject(err) : resolve())));
      process.stderr.write(`ko-sbert: wrote ${lines.length} × ${dim} float32 embeddings to ${flags.output}\n`);
    }
  } finally {
    model.dispose();
  }
}

interface SearchFlags extends ModelFlags {
  query?: string[];
  queries?: string;
  topK: number;
  json?: boolean;
  batchSize: number;
  progress?: boolean;
}

async function searchCommand(corpusFile: string | undefined, flags: SearchFlags): Promise<void> {
  let corpus: string[];
  let queries: string[];
  const haveQueries = (flags.query && flags.query.length > 0) || flags.queries !== undefined;
  if (corpusFile === undefined) {
    if (haveQueries) {
      corpus = DEMO_CORPUS;
      queries = flags.query && flags.query.length ? flags.query : readLines(flags.queries, 'the queries');
    } else {
      corpus = DEMO_CORPUS;
      queries = DEMO_QUERIES;
    }
  } else {
    corpus = readLines(corpusFile, 'the corpus').filter((l) => l.trim() !== '');
    if (flags.query && flags.query.length) queries = flags.query;
    else if (flags.queries !== undefined) queries = readLines(flags.queries, 'the queries');
    else if (!process.stdin.isTTY) queries = readLines('-', 'the queries');
    else throw new UsageError('give queries with --query <text> (repeatable), --queries <file>, or on standard input');
    queries = queries.filter((q) => q.trim() !== '');
  }
  if (corpus.length === 0) throw new UsageError('the corpus is empty');
  if (queries.length === 0) throw new UsageError('no queries given');
  const { model } = await loadModel(flags);
  try {
    const corpusEmb = await model.encode(corpus, { batchSize: flags.batchSize, showProgressBar: progressWanted(flags.progress) && corpus.length > flags.batchSize });
    const queryEmb = await model.encode(queries, { batchSize: flags.batchSize });
    const hits = semanticSearch(queryEmb, corpusEmb, { topK: flags.topK });
    const lines: string[] = [];
    queries.forEach((q, i) => {
      if (flags.json) {
        lines.push(JSON.stringify({ query: q, hits: hits[i].map((h) => ({ corpusId: h.corpusId, text: corpus[h.corpusId], score: h.score })) }));
      } else {
        lines.push(`Query: ${q}`, `Top ${Math.min(flags.topK, corpus.length)} most similar sentences in corpus:`);
        for (const h of hits[i]) lines.push(`${corpus[h.corpusId]} (Score: ${h.score.toFixed(4)})`);
        if (i < queries.length - 1) lines.push('');
      }
    });
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    model.dispose();
  }
}

interface EvalFlags extends ModelFlags {
  data?: string;
  batchSize: number;
  json?: boolean;
  progress?: boolean;
}

async function evalCommand(tsv: string | undefined, flags: EvalFlags): Promise<void> {
  if (tsv !== undefined && flags.data !== undefined && tsv !== flags.data) throw new UsageError('give the KorSTS file once: as an argument or with --data, not both');
  const file = tsv ?? flags.data;
  if (file === undefined) throw new UsageError('give the KorSTS .tsv file (e.g. sts-test.tsv) as an argument or with --data');
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  const data = readKorSts(file);
  const { model, dir } = await loadModel(flags);
  try {
    const result = await evaluateSts(model, data, { batchSize: flags.batchSize, showProgressBar: progressWanted(flags.progress) });
    if (flags.json) {
      process.stdout.write(JSON.stringify({ model: dir, data: file, ...result }) + '\n');
      return;
    }
    const name = path.basename(path.resolve(dir));
    const out = [`KorSTS: ${path.basename(file)}, ${result.pairs} pairs (scores / 5), model ${dir}`, ''];
    for (const n of SIMILARITY_NAMES) {
      out.push(`${(n[0].toUpperCase() + n.slice(1)).padEnd(10)} Pearson ${(result[n].pearson * 100).toFixed(2).padStart(6)}  Spearman ${(result[n].spearman * 100).toFixed(2).padStart(6)}`);
    }
    out.push('', formatStsResult(result, name));
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    model.dispose();
  }
}

async function infoCommand(flags: ModelFlags & { json?: boolean }): Promise<void> {
  const { model, dir } = await loadModel(flags);
  try {
    const word = model.modules[0] as KoBertTransformer;
    const native = word.info();
    const pooling = model.modules.find((m): m is Pooling => m instanceof Pooling);
    const info = {
      model: path.resolve(dir),
      modules: model.modules.map((m) => m.constructor.name),
      config: {
        vocab_size: native.vocab_size,
        hidden_size: native.hidden_size,
        num_hidden_layers: native.num_hidden_layers,
        num_attention_heads: native.num_attention_heads,
        intermediate_size: native.intermediate_size,
        max_position_embeddings: native.max_position_embeddings,
        hidden_act: native.hidden_act,
      },
      maxSeqLength: model.getMaxSeqLength(),
      embeddingDimension: model.getSentenceEmbeddingDimension(),
      pooling: pooling ? pooling.modes() : [],
      normalize: model.modules.some((m) => m instanceof Normalize),
      backend: native.device + (native.deviceName ? ` (${native.deviceName})` : '') + (native.deviceNote ? ` — ${native.deviceNote}` : ''),
      isa: native.isa,
      cpuBestIsa: detectIsa(),
      precision: native.precision + (native.precisionNote ? ` — ${native.precisionNote}` : ''),
      threads: native.threads,
      addon: loadedAddonPath(),
      napiVersion: loadBinding().napiVersion,
      node: process.versions.node,
      platform: `${process.platform}-${process.arch}`,
    };
    if (flags.json) {
      process.stdout.write(JSON.stringify(info, null, 2) + '\n');
      return;
    }
    const c = info.config;
    process.stdout.write(
      [
        `model:      ${info.model}`,
        `modules:    ${info.modules.join(' → ')}`,
        `config:     ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads} heads, intermediate ${c.intermediate_size}, vocab ${c.vocab_size}, ${c.hidden_act}`,
        `sequence:   max ${info.maxSeqLength} tokens (positions ${c.max_position_embeddings})`,
        `embedding:  ${info.embeddingDimension} dims, pooling ${info.pooling.join('+')}${info.normalize ? ', normalized' : ''}`,
        `backend:    ${info.backend}`,
        `simd:       ${info.isa} (CPU supports up to ${info.cpuBestIsa}${process.env.KST_ISA ? `; KST_ISA=${process.env.KST_ISA}` : ''})`,
        `precision:  ${info.precision}`,
        `threads:    ${info.threads}`,
        `addon:      ${info.addon} (Node-API ${info.napiVersion}, node ${info.node}, ${info.platform})`,
      ].join('\n') + '\n',
    );
  } finally {
    model.dispose();
  }
}

function packageVersion(): string {
  try {
    return JSON.parse(fs.readFileSync(path.join(findPackageRoot(), 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('ko-sbert')
    .description('Korean sentence embeddings (ko-sentence-transformers) from the command line')
    .version(packageVersion())
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => undefined });

  addModelOptions(
    program
      .command('embed')
      .description('embed text lines (a file, or standard input) → JSONL {"text","embedding"} lines, or a .npy file of float32 rows')
      .argument('[file]', 'text file, one sentence a line ("-" or absent: standard input)')
      .option('-o, --output <file>', 'write here instead of standard output (.npy → NumPy format)')
      .addOption(new Option('-f, --format <format>', 'output format (default: npy when --output ends in .npy, else jsonl)').choices(['jsonl', 'npy']))
      .option('-b, --batch-size <n>', 'sentences per batch', positiveInt('--batch-size'), 32)
      .option('--normalize', 'L2-normalise the embeddings')
      .option('--no-progress', 'no progress bar'),
  ).action((file: string | undefined, flags: EmbedFlags) => embedCommand(file, flags));

  addModelOptions(
    program
      .command('search')
      .description("semantic search: top-k corpus lines for each query by cosine similarity (no arguments: the seed's 9-sentence demo)")
      .argument('[corpus]', 'corpus file, one sentence a line')
      .option('-q, --query <text>', 'a query (repeatable)', (v: string, prev: string[] = []) => prev.concat(v))
      .option('--queries <file>', 'queries file, one a line ("-": standard input)')
      .option('-k, --top-k <n>', 'hits per query', positiveInt('--top-k'), 5)
      .option('-b, --batch-size <n>', 'sentences per batch', positiveInt('--batch-size'), 32)
      .option('--json', 'one JSON line per query')
      .option('--no-progress', 'no progress bar'),
  ).action((corpus: string | undefined, flags: SearchFlags) => searchCommand(corpus, flags));

  addModelOptions(
    program
      .command('eval')
      .description('KorSTS evaluation: cosine / euclidean / manhattan / dot × Pearson / Spearman (×100), like sentence-transformers')
      .argument('[tsv]', 'KorSTS .tsv (genre, filename, year, id, score, sentence1, sentence2; header line)')
      .option('-d, --data <tsv>', 'the KorSTS .tsv (same as the argument)')
      .option('-b, --batch-size <n>', 'sentences per batch', positiveInt('--batch-size'), 16)
      .option('--json', 'print the figures as JSON')
      .option('--no-progress', 'no progress bar'),
  ).action((tsv: string | undefined, flags: EvalFlags) => evalCommand(tsv, flags));

  addModelOptions(
    program.command('info').description('model config, backend, SIMD level, threads and the native addon in use').option('--json', 'print as JSON'),
  ).action((flags: ModelFlags & { json?: boolean }) => infoCommand(flags));

  program
    .command('convert')
    .description('write model.safetensors from pytorch_model.bin in a model folder (read without executing any pickle code)')
    .argument('<dir>', 'folder holding pytorch_model.bin')
    .option('--overwrite', 'replace an existing model.safetensors')
    .option('-o, --output <file>', 'write here instead of <dir>/model.safetensors')
    .action((dir: string, flags: { overwrite?: boolean; output?: string }) => {
      const r = convertToSafetensors(dir, flags);
      process.stdout.write(`${r.output}: ${r.tensors} tensors from ${r.source}${r.skipped.length ? ` (skipped non-float: ${r.skipped.join(', ')})` : ''}\n`);
    });

  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ outputError: () => undefined }).showSuggestionAfterError(false);
  return program;
}

/** One line: the message's lines joined (the addon's load error lists its fixes on several lines). */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

/** Runs the CLI; resolves with the exit code (0 ok, 1 failure, 2 bad usage). */
export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // No command: commander printed the help to stderr; that is a usage mistake.
      if (err.code === 'commander.help') return 2;
      process.stderr.write(`ko-sbert: ${oneLine(err.message.replace(/^error: /, ''))}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`ko-sbert: ${oneLine(err)}\n`);
      return 2;
    }
    process.stderr.write(`ko-sbert: ${oneLine(err)}\n`);
    if (process.env.KO_SBERT_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    return 1;
  }
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`ko-sbert: ${oneLine(err)}\n`);
      process.exitCode = 1;
    },
  );
}
