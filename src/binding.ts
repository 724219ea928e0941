/**
 * The ONE place that loads the native addon (DESIGN rule 6). Everything else imports from here.
 *
 * Looked for from the package root: first the prebuilt binary prebuilds/<platform>-<arch>/*.node (made by
 * `npm run prebuild`, picked with node-gyp-build's naming rules), then a local cmake-js build
 * (build/Release/kst.node from `npm run build:native`, build/Debug). See addonCandidates for the one
 * exception in a source checkout. KO_SENTENCE_TRANSFORMERS_PREBUILD=<dir> looks in <dir> instead of the root.
 */
import * as fs from 'fs';
import * as path from 'path';

export type NativeDtype = 'F32' | 'F16' | 'BF16';
export type NativePoolingMode = 'cls' | 'max' | 'mean' | 'mean_sqrt_len';
export type NativeIsa = 'scalar' | 'avx2' | 'avx512';

/** The fields of HF config.json the core needs (names as in config.json). */
export interface NativeBertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  pad_token_id: number;
  layer_norm_eps: number;
  hidden_act: 'gelu' | 'gelu_new';
}

/** Where one tensor lives in the memory-mapped weights file. */
export interface NativeTensorSpec {
  /** HF key verbatim, without a `bert.` prefix (e.g. "encoder.layer.0.attention.self.query.weight"). */
  name: string;
  dtype: NativeDtype;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number | bigint;
  nbytes: number | bigint;
}

export interface NativeModelOptions {
  path: string;
  config: NativeBertConfig;
  tensors: NativeTensorSpec[];
  /** 0 or absent = all available cores. */
  threads?: number;
  /** 'auto' (default), 'scalar', 'avx2', 'avx512'; can only lower the ISA below what the CPU supports. */
  isa?: string;
  /**
   * CPU weight precision: 'fp32' (default), 'bf16' (AVX512-BF16/AMX) or 'int8' (AVX512-VNNI/AMX-INT8, or AVX-VNNI at
   * the avx2 level); falls back to fp32 without the instructions (info().precision / precisionNote say so).
   */
  precision?: string;
  /** 'cpu' (default), 'cuda', 'cuda:N' or 'auto' (GPU when the CUDA library and a GPU are usable, else CPU). */
  device?: string;
  /** Tensor-core operand type on the GPU (fp32 accumulate). Default fp16 ($KST_CUDA_PRECISION). */
  cudaPrecision?: 'fp16' | 'bf16' | 'auto';
  /** Capture CUDA graphs for repeated shapes (default on; $KST_CUDA_GRAPHS). */
  cudaGraphs?: boolean;
}

export interface NativeEncodeOptions {
  /** Pooling modes (concatenated in sentence-transformers order cls, max, mean, mean_sqrt_len), or per-token output. */
  pooling: NativePoolingMode[] | 'token_embeddings';
  normalize?: boolean;
  /** Token type ids, same layout as ids; absent = all zeros. */
  tokenTypes?: Int32Array;
}

export interface NativeModelInfo extends NativeBertConfig {
  path: string;
  isa: NativeIsa;
  threads: number;
  /** The precision the CPU GEMMs actually run in ('bf16' / 'int8' only where the CPU has the instructions). */
  precision: string;
  /** Why the precision asked for is not the one that runs (e.g. 'int8' on a CPU without VNNI); absent when it is. */
  precisionNote?: string;
  /** 'cpu' or 'cuda:N'. */
  device: string;
  /** The GPU's description ('' on the CPU). */
  deviceName: string;
  /** Why device 'auto' chose the CPU, when it did. */
  deviceNote?: string;
}

export interface NativeModel {
  /**
   * Runs the forward pass off the JS thread. `ids` holds the sequences packed end to end (no padding),
   * `lengths` one length per sequence. Resolves with rows × dim floats: rows = lengths.length for
   * pooled output, ids.length for 'token_embeddings'; dim = hidden_size × number of pooling modes.
   * Bad arguments throw synchronously (TypeError / RangeError naming the argument).
   */
  encode(ids: Int32Array, lengths: Int32Array, options: NativeEncodeOptions): Promise<Float32Array>;
  info(): NativeModelInfo;
  /** Drops this handle's reference; runs in flight finish, later calls throw "model has been disposed". */
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeBinding {
  Model: new (options: NativeModelOptions) => NativeModel;
  detectIsa(): NativeIsa;
  napiVersion: number;
}

const PACKAGE_NAME = 'ko-sentence-transformers';

/** Walks up from `start` to the directory holding this package's package.json. */
export function findPackageRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    try {
      if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === PACKAGE_NAME) return dir;
    } catch {
      // unreadable package.json: keep walking
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package root above ${start}`);
    dir = parent;
  }
}

let cached: NativeBinding | undefined;
let cachedPath: string | undefined;

/** The file the addon was loaded from (loads it if needed). */
export function loadedAddonPath(): string {
  loadBinding();
  return cachedPath as string;
}

interface NodeGypBuild {
  (dir: string): unknown;
  path(dir: string): string;
  parseTuple(name: string): { name: string; platform: string; architectures: string[] } | undefined;
  matchTuple(platform: string, arch: string): (t: unknown) => boolean;
  compareTuples(a: unknown, b: unknown): number;
  parseTags(file: string): { file: string } | undefined;
  matchTags(runtime: string, abi: string): (t: unknown) => boolean;
  compareTags(runtime: string): (a: unknown, b: unknown) => number;
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The prebuilt binary for this platform, chosen by node-gyp-build's own naming rules
 * (prebuilds/<platform>-<arch>[+<arch>]/<name>[.napi|.abiNN][.glibc|.musl]...node).
 */
export function findPrebuild(root: string, ngb: NodeGypBuild): string | undefined {
  const runtime = process.versions.electron ? 'electron' : 'node';
  const tuples = readdir(path.join(root, 'prebuilds')).map((n) => ngb.parseTuple(n));
  const tuple = tuples.filter(ngb.matchTuple(process.platform, process.arch)).sort(ngb.compareTuples)[0];
  if (!tuple) return undefined;
  const dir = path.join(root, 'prebuilds', tuple.name);
  const tags = readdir(dir).map((f) => ngb.parseTags(f));
  const winner = tags.filter(ngb.matchTags(runtime, process.versions.modules)).sort(ngb.compareTags(runtime))[0];
  return winner ? path.join(dir, winner.file) : undefined;
}

/**
 * Where the addon is looked for, in order. An installed package has only prebuilds/: the prebuilt binary
 * comes first, a local cmake-js build (build/Release, build/Debug) is the fallback. In a source checkout
 * (CMakeLists.txt and native/ beside package.json) a local build that is newer than the prebuild goes first,
 * so `npm run build:native` after editing the C++ is never shadowed by an older `npm run prebuild`.
 */
export function addonCandidates(root: string, ngb: NodeGypBuild): string[] {
  const local = ['Release', 'Debug']
    .map((cfg) => {
      const dir = path.join(root, 'build', cfg);
      const f = readdir(dir).find((n) => n.endsWith('.node'));
      return f ? path.join(dir, f) : undefined;
    })
    .filter((p): p is string => p !== undefined);
  const prebuild = findPrebuild(root, ngb);
  if (!prebuild) return local;
  const mtime = (p: string) => fs.statSync(p).mtimeMs;
  const checkout = fs.existsSync(path.join(root, 'CMakeLists.txt')) && fs.existsSync(path.join(root, 'native'));
  if (checkout && local.length > 0 && mtime(local[0]) > mtime(prebuild)) return [local[0], prebuild, ...local.slice(1)];
  return [prebuild, ...local];
}

/** Loads the addon once (per JS realm / worker thread) and returns it. */
export function loadBinding(): NativeBinding {
  if (cached) return cached;
  let root = '(not found)';
  const tried: string[] = [];
  let lastErr: unknown;
  let outerErr: unknown;
  const override = process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD;
  try {
    root = findPackageRoot();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const ngb = require('node-gyp-build') as NodeGypBuild;
    // KO_SENTENCE_TRANSFORMERS_PREBUILD=<dir> (node-gyp-build's own override) replaces the package root.
    const candidates = addonCandidates(override || root, ngb);
    for (const file of candidates) {
      try {
        // eslint-disable-next-line @typescript-eslint/no-var-requires
        cached = require(file) as NativeBinding;
        cachedPath = file;
        return cached;
      } catch (err) {
        tried.push(`${file} (${((err as Error).message || String(err)).split('\n')[0]})`);
        lastErr = err;
      }
    }
  } catch (err) {
    outerErr = err;
    lastErr = err;
  }
  const base = override || root;
  if (tried.length === 0) {
    tried.push(
      `${path.join(base, 'prebuilds', `${process.platform}-${process.arch}`, '*.node')} (none for this platform)`,
      `${path.join(base, 'build', 'Release', 'kst.node')} (not built)`,
      `${path.join(base, 'build', 'Debug', 'kst.node')} (not built)`,
    );
  }
  const msg = [
    `${PACKAGE_NAME}: could not load the native addon (kst.node).`,
    `  platform=${process.platform} arch=${process.arch} node=${process.versions.node} ` +
      `abi=${process.versions.modules} napi=${process.versions.napi}`,
    `  package root: ${root}` + (override ? ` (KO_SENTENCE_TRANSFORMERS_PREBUILD=${override})` : ''),
    `  tried: ${tried.join('; ')}`,
    ...(outerErr ? [`  cause: ${String((outerErr as Error).message ?? outerErr).trim()}`] : []),
    'Fixes:',
    ...(root !== '(not found)' && fs.existsSync(path.join(root, 'CMakeLists.txt'))
      ? [
          `  - build it: run \`npm run build:native\` (or \`npm run prebuild\`) in ${root} (needs cmake >= 3.18 and a C++17 compiler: g++ >= 8 or clang >= 7)`,
          '  - if a local build was made for another Node/arch, delete build/ and rebuild',
        ]
      : [
          `  - prebuilt binaries ship for linux-x64 (glibc, any x86-64 CPU, Node >= 18): on that platform reinstall ${PACKAGE_NAME} so its prebuilds/ folder is complete (a bundler must copy prebuilds/ along with the JS)`,
          `  - elsewhere build from source: clone the repository, run \`npm ci && npm run build:native\` there (needs cmake >= 3.18 and a C++17 compiler: g++ >= 8 or clang >= 7), and set KO_SENTENCE_TRANSFORMERS_PREBUILD=<that folder>`,
        ]),
  ].join('\n');
  const e = new Error(msg) as Error & { cause?: unknown };
  e.cause = lastErr;
  throw e;
}

/** The best instruction set the CPU supports, as the core detects it (cpuid). */
export function detectIsa(): NativeIsa {
  return loadBinding().detectIsa();
}
