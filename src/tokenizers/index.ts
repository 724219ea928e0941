export { KoBertTokenizer, KOBERT_SP_MODEL_FILE, KOBERT_VOCAB_FILE, parseVocabTxt } from './kobert';
export type { KoBertTokenizerOptions } from './kobert';
export { SentencePieceProcessor } from './sentencepiece';
export { SentencePieceNormalizer, PrecompiledCharsMap } from './sentencepiece-normalizer';
export { SentencePieceUnigram, buildTokenizersJsUnigram } from './unigram';
export { parseSentencePieceModel, ModelFormatError, PieceType, SpModelType } from './protobuf';
export type { SpModelProto, SpPiece, SpTrainerSpec, SpNormalizerSpec } from './protobuf';
export { PYTHON_UNICODE_VERSION } from './unicode-tables';
