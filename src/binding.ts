/**
 * The ONE place that loads the native addon (DESIGN rule 6). Everything else imports from here.
 *
 * The addon is found with node-gyp-build from the package root: build/Release/kst.node (built by
 * `npm run build:native`), build/Debug, then prebuilds/<platform>-<arch>/. Setting
 * KO_SENTENCE_TRANSFORMERS_PREBUILD=<dir> makes node-gyp-build look in <dir> instead of the root.
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

/** Loads the addon once (per JS realm / worker thread) and returns it. */
export function loadBinding(): NativeBinding {
  if (cached) return cached;
  let root = '(not found)';
  let resolved = '(not resolved)';
  try {
    root = findPackageRoot();
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; path(dir: string): string };
    resolved = nodeGypBuild.path(root);
    cached = nodeGypBuild(root) as NativeBinding;
    return cached;
  } catch (err) {
    const base = process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD || root;
    const tried = [
      path.join(base, 'build', 'Release', 'kst.node'),
      path.join(base, 'build', 'Debug', 'kst.node'),
      path.join(base, 'prebuilds', `${process.platform}-${process.arch}`, '*.node'),
    ];
    const msg = [
      `${PACKAGE_NAME}: could not load the native addon (kst.node).`,
      `  platform=${process.platform} arch=${process.arch} node=${process.versions.node} ` +
        `abi=${process.versions.modules} napi=${process.versions.napi}`,
      `  package root: ${root}`,
      `  resolved: ${resolved}`,
      `  tried: ${tried.join(', ')}` +
        (process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD
          ? ` (KO_SENTENCE_TRANSFORMERS_PREBUILD=${process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD})`
          : ''),
      `  cause: ${(err as Error).message.trim()}`,
      'Fixes:',
      `  - build it from source: run \`npm run build:native\` in ${root} (needs cmake >= 3.18 and a C++17 compiler: g++ >= 8 or clang >= 7)`,
      '  - or reinstall the package so a prebuilt binary for this platform is picked up',
      '  - if it was built for another Node/arch, delete build/ and rebuild',
    ].join('\n');
    const e = new Error(msg) as Error & { cause?: unknown };
    e.cause = err;
    throw e;
  }
}

/** The best instruction set the CPU supports, as the core detects it (cpuid). */
export function detectIsa(): NativeIsa {
  return loadBinding().detectIsa();
}
