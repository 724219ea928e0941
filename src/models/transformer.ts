/**
 * KoBertTransformer: the sentence-transformers input module (BERT encoder + KoBERT tokenizer), like the seed's
 * `ko_sentence_transformers.models.KoBertTransformer` and `sentence_transformers.models.Transformer`.
 *
 * The weights stay on disk: the safetensors header is parsed here and the core memory-maps the file from the
 * offsets (no weight bytes cross into JS).
 */
import * as fs from 'fs';
import * as path from 'path';

import { NativeBertConfig, NativeEncodeOptions, NativeModel, NativeModelInfo } from '../binding';
import { readSafetensors } from '../io/safetensors';
import { KoBertTokenizer } from '../tokenizers';
import { bertTensorSpecs, readBertConfig } from './bert-weights';
import { intField, optionalBool, readJsonObject } from './config';
import { openNativeModel, RuntimeOptions } from './native-model';

export { bertTensorSpecs, canonicalTensorName, expectedBertTensors, readBertConfig } from './bert-weights';

export interface KoBertTransformerOptions extends RuntimeOptions {
  /** Overrides sentence_bert_config.json's max_seq_length. */
  maxSeqLength?: number;
  /** Lower-case texts before tokenizing (default: sentence_bert_config.json's do_lower_case, else false). */
  doLowerCase?: boolean;
}

export class KoBertTransformer {
  readonly maxSeqLength: number;
  readonly doLowerCase: boolean;

  private constructor(
    readonly modelDir: string,
    readonly config: NativeBertConfig,
    readonly tokenizer: KoBertTokenizer,
    private native: NativeModel,
    maxSeqLength: number,
    doLowerCase: boolean,
  ) {
    this.maxSeqLength = maxSeqLength;
    this.doLowerCase = doLowerCase;
  }

  static async load(dir: string, options: KoBertTransformerOptions = {}): Promise<KoBertTransformer> {
    const configFile = path.join(dir, 'config.json');
    if (!fs.existsSync(configFile)) throw new Error(`${configFile}: not found (a Hugging Face BERT config.json is required)`);
    const config = readBertConfig(configFile);

    const sbertFile = path.join(dir, 'sentence_bert_config.json');
    let sbertMax: number | undefined;
    let doLowerCase = false;
    if (fs.existsSync(sbertFile)) {
      const s = readJsonObject(sbertFile);
      if (s.max_seq_length !== undefined && s.max_seq_length !== null) {
        sbertMax = intField(sbertFile, s, 'max_seq_length', 1);
      }
      doLowerCase = optionalBool(sbertFile, s, 'do_lower_case', false);
    }
    if (options.doLowerCase !== undefined) doLowerCase = options.doLowerCase;

    const weightsFile = path.join(dir, 'model.safetensors');
    if (!fs.existsSync(weightsFile)) {
      const bin = path.join(dir, 'pytorch_model.bin');
      if (fs.existsSync(bin)) {
        throw new Error(
          `${bin}: PyTorch pickle checkpoints are not supported yet; only model.safetensors can be loaded ` +
            `(convert it in Python: model.save_pretrained(dir, safe_serialization=True))`,
        );
      }
      throw new Error(`${weightsFile}: not found (no model.safetensors in ${dir})`);
    }
    const st = await readSafetensors(weightsFile);
    const tensors = bertTensorSpecs(st, config);

    const tokenizer = await KoBertTokenizer.fromDirectory(dir);
    if (tokenizer.vocabSize > config.vocab_size) {
      throw new Error(`${configFile}: field "vocab_size" (${config.vocab_size}) is smaller than the tokenizer's vocabulary (${tokenizer.vocabSize})`);
    }

    let maxSeqLength = options.maxSeqLength ?? sbertMax;
    if (maxSeqLength === undefined) {
      const tokMax = Number.isFinite(tokenizer.modelMaxLength) && tokenizer.modelMaxLength > 0 ? tokenizer.modelMaxLength : Infinity;
      maxSeqLength = Math.min(config.max_position_embeddings, tokMax);
    }
    if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) {
      throw new Error(`maxSeqLength must be an integer >= 2, got ${maxSeqLength}`);
    }
    if (maxSeqLength > config.max_position_embeddings) {
      throw new Error(
        `maxSeqLength ${maxSeqLength} exceeds "max_position_embeddings" (${config.max_position_embeddings}) in ${configFile}`,
      );
    }

    const native = openNativeModel(weightsFile, config, tensors, options);
    return new KoBertTransformer(dir, config, tokenizer, native, maxSeqLength, doLowerCase);
  }

  getWordEmbeddingDimension(): number {
    return this.config.hidden_size;
  }

  getMaxSeqLength(): number {
    return this.maxSeqLength;
  }

  /** Token ids per text: [CLS] … [SEP], whitespace-stripped, (lower-cased if do_lower_case), truncated to maxSeqLength. */
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

  private pending = 0;
  private tail: Promise<void> = Promise.resolve();

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
