/** ko-sentence-transformers: Korean sentence embeddings for Node.js with a native C++ core. */
import * as util from './util';

export { SentenceTransformer } from './sentence-transformer';
export type { EncodeOptions, LoadOptions, SentenceTransformerModule } from './sentence-transformer';
export { KoBertTransformer } from './models/transformer';
export type { KoBertTransformerOptions } from './models/transformer';
export { Transformer } from './models/hf-transformer';
export type { TransformerOptions } from './models/hf-transformer';
export type { RuntimeOptions } from './models/native-model';
export { Dense } from './models/dense';
export { Pooling } from './models/pooling';
export type { PoolingOptions, PoolingModeName } from './models/pooling';
export { Normalize } from './models/normalize';
export { KoBertTokenizer } from './tokenizers';
export { readSafetensors, readSafetensorsSync } from './io/safetensors';
export type { SafetensorsFile, TensorInfo, Dtype } from './io/safetensors';
export { readPytorchCheckpoint, readPytorchCheckpointSync, convertToSafetensors } from './io/pytorch';
export type { PytorchCheckpoint, ConvertResult } from './io/pytorch';
export { detectIsa, loadBinding } from './binding';
export type { NativeModel, NativeModelInfo, NativeEncodeOptions, NativeBertConfig, NativeTensorSpec, NativeIsa } from './binding';
export { util };
export { cosSim, dotScore, semanticSearch } from './util';
export { evaluateSts, readKorSts, formatStsResult, stsTableRow, pearson, spearman, STS_TABLE_HEADERS } from './evaluation';
export type { StsPair, StsData, StsResult, CorrelationFigures, SimilarityName, EvaluateStsOptions, StsEncoder } from './evaluation';
