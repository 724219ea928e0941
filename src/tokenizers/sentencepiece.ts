/** A SentencePiece (unigram) processor: `.model` file -> normaliser + unigram segmentation. */
import * as fs from 'fs';
import { ModelFormatError, parseSentencePieceModel, PieceType, SpModelProto, SpModelType } from './protobuf';
import { SentencePieceNormalizer } from './sentencepiece-normalizer';
import { SentencePieceUnigram } from './unigram';

export class SentencePieceProcessor {
  readonly normalizer: SentencePieceNormalizer;
  readonly unigram: SentencePieceUnigram;

  constructor(
    readonly model: SpModelProto,
    readonly file: string,
  ) {
    const ts = model.trainerSpec;
    if (ts.modelType !== SpModelType.UNIGRAM) {
      throw new ModelFormatError(file, 'ModelProto.trainer_spec.model_type', `model type ${SpModelType[ts.modelType]} is not supported (only UNIGRAM)`);
    }
    if (ts.byteFallback) {
      throw new ModelFormatError(file, 'ModelProto.trainer_spec.byte_fallback', 'byte_fallback models are not supported');
    }
    if (ts.treatWhitespaceAsSuffix) {
      throw new ModelFormatError(file, 'ModelProto.trainer_spec.treat_whitespace_as_suffix', 'not supported');
    }
    const userDefined = model.pieces.filter((p) => p.type === PieceType.USER_DEFINED).map((p) => p.piece);
    this.normalizer = new SentencePieceNormalizer(model.normalizerSpec, file, userDefined);
    this.unigram = new SentencePieceUnigram(model, file);
  }

  static fromBuffer(buf: Uint8Array, file: string): SentencePieceProcessor {
    return new SentencePieceProcessor(parseSentencePieceModel(buf, file), file);
  }

  static fromFile(file: string): SentencePieceProcessor {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch (e) {
      throw new Error(`${file}: cannot read SentencePiece model: ${(e as Error).message}`);
    }
    return SentencePieceProcessor.fromBuffer(buf, file);
  }

  /** `sp.encode(text, out_type=str)` */
  encodeAsPieces(text: string): string[] {
    return this.unigram.encode(this.normalizer.normalize(text)).map((p) => p.piece);
  }
}
