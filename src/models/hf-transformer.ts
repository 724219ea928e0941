/**
 * Transformer: the sentence-transformers input module for Hugging Face encoders — BertModel, RobertaModel /
 * XLMRobertaModel and DistilBertModel — with weights in model.safetensors or pytorch_model.bin (both memory-
 * mapped by the core from file offsets) and a tokenizer.json (WordPiece / Unigram / BPE), an XLNet-style
 * spiece.model (skt/kobert-base-v1) or the KoBERT SentencePiece + vocab.txt pair.
 *
 * Weight names are HF's, verbatim; the checkpoint's wrapper prefix (`bert.`, `roberta.`, `distilbert.`) is
 * dropped the way transformers does when it loads a *Model from a *For... checkpoint.
 */
import * as fs from 'fs';
import * as path from 'path';

import { NativeBertConfig, NativeEncodeOptions, NativeModel, NativeModelInfo, NativeTensorSpec } from '../binding';
import { readPytorchCheckpointSync } from '../io/pytorch';
import { readSafetensorsSync } from '../io/safetensors';
import { KoBertTokenizer, KOBERT_VOCAB_FILE } from '../tokenizers';
import { HfTokenizer, TextTokenizer } from '../tokenizers/hf-tokenizer';
import { XlnetSpieceTokenizer } from '../tokenizers/spiece';
import { intField, optionalBool, readJsonObject } from './config';
import { openNativeModel, RuntimeOptions } from './native-model';

export type ModelType = 'bert' | 'roberta' | 'xlm-roberta' | 'distilbert';
export type EncoderConfig = NativeBertConfig & { model_type: ModelType };

const PREFIX: Record<ModelType, string> = { bert: 'bert.', roberta: 'roberta.', 'xlm-roberta': 'roberta.', distilbert: 'distilbert.' };

/** Reads config.json of a BERT, RoBERTa, XLM-R or DistilBERT model into the core's config. */
export function readEncoderConfig(file: string): EncoderConfig {
  const o = readJsonObject(file);
  const mt = (o.model_type ?? 'bert') as string;
  if (!['bert', 'roberta', 'xlm-roberta', 'distilbert'].includes(mt)) {
    throw new Error(`${file}: field "model_type" is ${JSON.stringify(mt)}; supported: bert, roberta, xlm-roberta, distilbert`);
  }
  const model_type = mt as ModelType;
  const distil = model_type === 'distilbert';
  const k = (bert: string, db: string): string => (distil ? db : bert);
  const hidden_size = intField(file, o, k('hidden_size', 'dim'), 1);
  const num_attention_heads = intField(file, o, k('num_attention_heads', 'n_heads'), 1);
  if (hidden_size % num_attention_heads !== 0) {
    throw new Error(
      `${file}: field "${k('hidden_size', 'dim')}" (${hidden_size}) must be a multiple of "${k('num_attention_heads', 'n_heads')}" (${num_attention_heads})`,
    );
  }
  const vocab_size = intField(file, o, 'vocab_size', 1);
  const eps = distil ? 1e-12 : (o.layer_norm_eps ?? 1e-12);
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0 || eps >= 1) {
    throw new Error(`${file}: field "layer_norm_eps" must be a number in (0, 1), got ${JSON.stringify(eps)}`);
  }
  const act = o[k('hidden_act', 'activation')] ?? 'gelu';
  if (act !== 'gelu' && act !== 'gelu_new') {
    throw new Error(`${file}: field "${k('hidden_act', 'activation')}" must be "gelu" or "gelu_new", got ${JSON.stringify(act)}`);
  }
  const pet = o.position_embedding_type;
  if (pet !== undefined && pet !== 'absolute') {
    throw new Error(`${file}: field "position_embedding_type" is ${JSON.stringify(pet)}; only "absolute" is supported`);
  }
  const defaultPad = model_type === 'roberta' || model_type === 'xlm-roberta' ? 1 : 0;
  const cfg: EncoderConfig = {
    vocab_size,
    hidden_size,
    num_hidden_layers: intField(file, o, k('num_hidden_layers', 'n_layers'), 1),
    num_attention_heads,
    intermediate_size: intField(file, o, k('intermediate_size', 'hidden_dim'), 1),
    max_position_embeddings: intField(file, o, 'max_position_embeddings', 1),
    type_vocab_size: distil ? 1 : o.type_vocab_size === undefined ? 2 : intField(file, o, 'type_vocab_size', 1),
    pad_token_id: o.pad_token_id === undefined || o.pad_token_id === null ? defaultPad : intField(file, o, 'pad_token_id', 0, vocab_size - 1),
    layer_norm_eps: eps,
    hidden_act: act,
    model_type,
  };
  if (model_type !== 'bert' && !distil && cfg.max_position_embeddings - cfg.pad_token_id - 1 < 1) {
    throw new Error(`${file}: "max_position_embeddings" (${cfg.max_position_embeddings}) leaves no positions after pad_token_id + 1`);
  }
  return cfg;
}

/** Longest sequence the position table allows (RoBERTa positions start at pad_token_id + 1). */
export function maxSequenceLength(c: EncoderConfig): number {
  return c.model_type === 'roberta' || c.model_type === 'xlm-roberta' ? c.max_position_embeddings - c.pad_token_id - 1 : c.max_position_embeddings;
}

/** The config fields that set maxSequenceLength(c), for error messages. */
function positionLimit(c: EncoderConfig): string {
  const mpe = `"max_position_embeddings" (${c.max_position_embeddings})`;
  return maxSequenceLength(c) === c.max_position_embeddings ? mpe : `the ${maxSequenceLength(c)} positions left by ${mpe} - "pad_token_id" (${c.pad_token_id}) - 1`;
}

/** HF weight names and shapes the encoder reads, per architecture (without the wrapper prefix). */
export function expectedEncoderTensors(c: EncoderConfig): Map<string, number[]> {
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const m = new Map<string, number[]>();
  m.set('embeddings.word_embeddings.weight', [c.vocab_size, H]);
  m.set('embeddings.position_embeddings.weight', [c.max_position_embeddings, H]);
  if (c.model_type !== 'distilbert') m.set('embeddings.token_type_embeddings.weight', [c.type_vocab_size, H]);
  m.set('embeddings.LayerNorm.weight', [H]);
  m.set('embeddings.LayerNorm.bias', [H]);
  const lin = (name: string, out: number, inp: number): void => {
    m.set(`${name}.weight`, [out, inp]);
    m.set(`${name}.bias`, [out]);
  };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    if (c.model_type === 'distilbert') {
      const p = `transformer.layer.${i}.`;
      for (const n of ['q_lin', 'k_lin', 'v_lin', 'out_lin']) lin(`${p}attention.${n}`, H, H);
      m.set(`${p}sa_layer_norm.weight`, [H]);
      m.set(`${p}sa_layer_norm.bias`, [H]);
      lin(`${p}ffn.lin1`, I, H);
      lin(`${p}ffn.lin2`, H, I);
      m.set(`${p}output_layer_norm.weight`, [H]);
      m.set(`${p}output_layer_norm.bias`, [H]);
    } else {
      const p = `encoder.layer.${i}.`;
      for (const n of ['query', 'key', 'value']) lin(`${p}attention.self.${n}`, H, H);
      lin(`${p}attention.output.dense`, H, H);
      m.set(`${p}attention.output.LayerNorm.weight`, [H]);
      m.set(`${p}attention.output.LayerNorm.bias`, [H]);
      lin(`${p}intermediate.dense`, I, H);
      lin(`${p}output.dense`, H, I);
      m.set(`${p}output.LayerNorm.weight`, [H]);
      m.set(`${p}output.LayerNorm.bias`, [H]);
    }
  }
  return m;
}

/** A tensor of a safetensors or pytorch_model.bin file (safetensors tensors are always contiguous). */
export interface WeightTensor {
  dtype: string;
  shape: number[];
  offset: number;
  nbytes: number;
  contiguous?: boolean;
}

/** The weights file of a model folder and its tensors (safetensors preferred, as transformers does). */
export function readEncoderWeights(dir: string): { file: string; tensors: Map<string, WeightTensor> } {
  const st = path.join(dir, 'model.safetensors');
  const bin = path.join(dir, 'pytorch_model.bin');
  if (fs.existsSync(st)) {
    return { file: st, tensors: readSafetensorsSync(st).tensors };
  }
  if (fs.existsSync(bin)) {
    const ck = readPytorchCheckpointSync(bin);
    return { file: bin, tensors: ck.tensors };
  }
  for (const idx of ['model.safetensors.index.json', 'pytorch_model.bin.index.json']) {
    if (fs.existsSync(path.join(dir, idx))) throw new Error(`${path.join(dir, idx)}: sharded checkpoints are not supported yet`);
  }
  throw new Error(`${dir}: no model.safetensors or pytorch_model.bin found`);
}

/**
 * Maps a checkpoint's tensors to the core's tensor list: drops the wrapper prefix (`bert.`, ...), renames old
 * TF-style LayerNorm gamma/beta like transformers does, and checks presence, shape, dtype and contiguity of
 * every tensor the encoder needs. Errors name the file and the tensor.
 */
export function encoderTensorSpecs(file: string, tensors: Map<string, WeightTensor>, cfg: EncoderConfig): NativeTensorSpec[] {
  const prefix = PREFIX[cfg.model_type];
  const byName = new Map<string, { raw: string; t: WeightTensor }>();
  for (const [raw, t] of tensors) {
    let name = raw.startsWith(prefix) ? raw.slice(prefix.length) : raw;
    if (name.includes('LayerNorm.')) name = name.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
    if (byName.has(name)) throw new Error(`${file}: tensor "${raw}" appears twice (as "${name}")`);
    byName.set(name, { raw, t });
  }
  const out: NativeTensorSpec[] = [];
  for (const [name, shape] of expectedEncoderTensors(cfg)) {
    const e = byName.get(name);
    if (!e) throw new Error(`${file}: missing tensor "${name}" (expected shape [${shape.join(', ')}]) for a ${cfg.model_type} model`);
    const t = e.t;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${file}: tensor "${e.raw}": expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`);
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') throw new Error(`${file}: tensor "${e.raw}" has dtype ${t.dtype}; expected F32, F16 or BF16`);
    if (t.contiguous === false) {
      throw new Error(
        `${file}: tensor "${e.raw}" is not contiguous and cannot be mapped in place; ` +
          `convert the checkpoint once with convertToSafetensors("${path.dirname(file)}") (writes model.safetensors)`,
      );
    }
    out.push({ name, dtype: t.dtype as NativeTensorSpec['dtype'], shape: t.shape, offset: t.offset, nbytes: t.nbytes });
  }
  return out;
}

/** Picks the tokenizer of a model folder: tokenizer.json, else spiece.model (XLNet style), else KoBERT's pair. */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  if (HfTokenizer.existsIn(dir)) return HfTokenizer.fromDirectory(dir);
  if (fs.existsSync(path.join(dir, 'spiece.model'))) return XlnetSpieceTokenizer.fromDirectory(dir);
  if (fs.existsSync(path.join(dir, KOBERT_VOCAB_FILE))) return KoBertTokenizer.fromDirectory(dir);
  throw new Error(`${dir}: no tokenizer found (expected tokenizer.json, spiece.model, or a KoBERT SentencePiece model with vocab.txt)`);
}

export interface TransformerOptions extends RuntimeOptions {
  /** Overrides sentence_bert_config.json's max_seq_length. */
  maxSeqLength?: number;
  /** Lower-case texts before tokenizing (default: sentence_bert_config.json's do_lower_case, else false). */
  doLowerCase?: boolean;
}

/** What a loaded folder gives the constructor (Transformer.loadParts, shared with the subclasses). */
export interface TransformerParts<T extends TextTokenizer = TextTokenizer> {
  modelDir: string;
  config: EncoderConfig;
  tokenizer: T;
  native: NativeModel;
  maxSeqLength: number;
  doLowerCase: boolean;
  weightsFile: string;
}

export class Transformer {
  readonly modelDir: string;
  readonly config: EncoderConfig;
  readonly tokenizer: TextTokenizer;
  readonly maxSeqLength: number;
  readonly doLowerCase: boolean;
  readonly weightsFile: string;
  private readonly native: NativeModel;
  private pending = 0;
  private tail: Promise<void> = Promise.resolve();

  protected constructor(parts: TransformerParts) {
    this.modelDir = parts.modelDir;
    this.config = parts.config;
    this.tokenizer = parts.tokenizer;
    this.native = parts.native;
    this.maxSeqLength = parts.maxSeqLength;
    this.doLowerCase = parts.doLowerCase;
    this.weightsFile = parts.weightsFile;
  }

  /** Loads a folder with the tokenizer loadTokenizer picks (tokenizer.json, spiece.model or KoBERT's pair). */
  static async load(dir: string, options: TransformerOptions = {}): Promise<Transformer> {
    return new Transformer(await Transformer.loadParts(dir, options, loadTokenizer));
  }

  /**
   * Reads config.json, sentence_bert_config.json and the weights of `dir`, loads the tokenizer with
   * `tokenizerFor(dir)` and opens the native model. The one loader of every word-embedding module.
   */
  protected static async loadParts<T extends TextTokenizer>(
    dir: string,
    options: TransformerOptions,
    tokenizerFor: (dir: string) => Promise<T>,
  ): Promise<TransformerParts<T>> {
    const configFile = path.join(dir, 'config.json');
    if (!fs.existsSync(configFile)) throw new Error(`${configFile}: not found (a Hugging Face config.json is required)`);
    const config = readEncoderConfig(configFile);
    let sbertMax: number | undefined;
    let doLowerCase = false;
    const sbertFile = path.join(dir, 'sentence_bert_config.json');
    if (fs.existsSync(sbertFile)) {
      const s = readJsonObject(sbertFile);
      if (s.max_seq_length !== undefined && s.max_seq_length !== null) sbertMax = intField(sbertFile, s, 'max_seq_length', 1);
      doLowerCase = optionalBool(sbertFile, s, 'do_lower_case', false);
    }
    if (options.doLowerCase !== undefined) doLowerCase = options.doLowerCase;
    const { file: weightsFile, tensors: raw } = readEncoderWeights(dir);
    const tensors = encoderTensorSpecs(weightsFile, raw, config);
    const tokenizer = await tokenizerFor(dir);
    if (tokenizer.vocabSize > config.vocab_size) {
      throw new Error(`${configFile}: field "vocab_size" (${config.vocab_size}) is smaller than the tokenizer's vocabulary (${tokenizer.vocabSize})`);
    }
    // sentence-transformers: max_seq_length from sentence_bert_config.json, else min(positions, tokenizer max).
    const posMax = maxSequenceLength(config);
    let maxSeqLength = options.maxSeqLength ?? sbertMax;
    if (maxSeqLength === undefined) {
      const tokMax = tokenizer.modelMaxLength;
      maxSeqLength = Number.isFinite(tokMax) && tokMax > 0 ? Math.min(posMax, tokMax) : posMax;
    }
    if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) throw new Error(`maxSeqLength must be an integer >= 2, got ${maxSeqLength}`);
    if (maxSeqLength > posMax) throw new Error(`maxSeqLength ${maxSeqLength} exceeds ${positionLimit(config)} in ${configFile}`);
    const native = openNativeModel(weightsFile, config, tensors, options);
    return { modelDir: dir, config, tokenizer, native, maxSeqLength, doLowerCase, weightsFile };
  }

  getWordEmbeddingDimension(): number {
    return this.config.hidden_size;
  }

  getMaxSeqLength(): number {
    return this.maxSeqLength;
  }

  /** Token ids per text, with special tokens, (lower-cased if do_lower_case), truncated to maxSeqLength. */
  tokenize(texts: string[]): number[][] {
    return texts.map((t) => {
      const s = String(t);
      return this.tokenizer.encode(this.doLowerCase ? s.toLowerCase() : s, this.maxSeqLength);
    });
  }

  /**
   * Runs the core on packed ids (see NativeModel.encode). Calls on one model are queued here, one native run
   * at a time: the core serialises runs on a model anyway, and queueing in JS keeps concurrent callers from
   * parking several libuv pool threads on the model's lock (which would stall fs and dns work).
   */
  encodeIds(ids: Int32Array, lengths: Int32Array, options: NativeEncodeOptions): Promise<Float32Array> {
    const run = (): Promise<Float32Array> => this.native.encode(ids, lengths, options);
    // Nothing pending: submit now (so a run started before dispose() still completes).
    const p = this.pending === 0 ? run() : this.tail.then(run);
    this.pending++;
    const done = (): void => {
      this.pending--;
    };
    this.tail = p.then(done, done);
    return p;
  }

  info(): NativeModelInfo {
    return this.native.info();
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /** Frees the native model once runs in flight finish; later calls fail with "model has been disposed". */
  dispose(): void {
    this.native.dispose();
  }
}
