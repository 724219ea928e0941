/**
 * KoBertTransformer: the sentence-transformers input module with the KoBERT tokenizer (SentencePiece model +
 * vocab.txt), like the seed's `ko_sentence_transformers.models.KoBertTransformer`. Everything but the tokenizer
 * — config, weights (model.safetensors or pytorch_model.bin), architectures, maxSeqLength, the native model —
 * is the generic Transformer's.
 */
import { KoBertTokenizer } from '../tokenizers';
import { Transformer, TransformerOptions, TransformerParts } from './hf-transformer';

export type KoBertTransformerOptions = TransformerOptions;

export class KoBertTransformer extends Transformer {
  declare readonly tokenizer: KoBertTokenizer;

  private constructor(parts: TransformerParts<KoBertTokenizer>) {
    super(parts);
  }

  /** Loads `dir` with `KoBertTokenizer.fromDirectory(dir)`, whatever other tokenizer files it holds. */
  static async load(dir: string, options: KoBertTransformerOptions = {}): Promise<KoBertTransformer> {
    return new KoBertTransformer(await Transformer.loadParts(dir, options, (d) => KoBertTokenizer.fromDirectory(d)));
  }
}
