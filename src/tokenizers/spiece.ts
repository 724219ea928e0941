/**
 * skt/kobert-base-v1 style `spiece.model`: XLNetTokenizer text rules (remove_space, keep_accents false, the
 * digit-comma split; the same rules as the KoBERT tokenizer) but the ids ARE the SentencePiece ids, and the
 * special tokens [CLS] [SEP] [UNK] [PAD] [MASK] are pieces of the model. Layout `[CLS] X [SEP]` (BERT), as skt's
 * KoBERTTokenizer builds it. Reuses the KoBERT machinery with a vocabulary made from the model's own pieces.
 *
 * skt's specials are USER_DEFINED pieces (SKTBrain/KoBERT issue #11: "[CLS] 감사합니다." -> ['▁', '[CLS]', ...]);
 * the SentencePiece processor handles them as sentencepiece does (never normalised, always preferred). Literal
 * specials in the text are split off before SentencePiece, as transformers' slow tokenizer does; one that appears
 * only after NFKD (e.g. "[ＣＬＳ]") becomes its id through the USER_DEFINED piece, or "[", "C", ... with CONTROL.
 * Tested against the Python reference (test/golden/make_golden_spiece.py, test/spiece.test.ts).
 */
import * as fs from 'fs';
import * as path from 'path';

import { KoBertTokenizer } from './kobert';
import { SentencePieceProcessor } from './sentencepiece';

export const SPIECE_MODEL_FILE = 'spiece.model';

export class XlnetSpieceTokenizer {
  static fromDirectory(dir: string): KoBertTokenizer {
    const file = path.join(dir, SPIECE_MODEL_FILE);
    const sp = SentencePieceProcessor.fromFile(file);
    const vocab = new Map<string, number>();
    sp.model.pieces.forEach((p, i) => {
      if (!vocab.has(p.piece)) vocab.set(p.piece, i);
    });
    let modelMaxLength: number | undefined;
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    if (fs.existsSync(cfgFile)) {
      const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
      const m = cfg.model_max_length;
      if (typeof m === 'number' && Number.isInteger(m) && m >= 2 && m <= 1e6) modelMaxLength = m;
      if (cfg.do_lower_case === true) throw new Error(`${cfgFile}: do_lower_case true is not supported for spiece.model tokenizers`);
    }
    // Unknown pieces map to [UNK]: SentencePiece itself gives them the unk id, which [UNK] must then be.
    return new KoBertTokenizer(sp, vocab, `${file} (pieces as vocabulary)`, modelMaxLength ? { modelMaxLength } : {});
  }
}
