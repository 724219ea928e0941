/**
 * The `Precompiled` normaliser of Rust `tokenizers` (the `spm_precompiled` crate + normalizers/precompiled.rs),
 * which is NOT SentencePiece's normalizer.cc (sentencepiece-normalizer.ts) even on the same charsmap:
 *  - the text is walked by extended grapheme clusters; a cluster shorter than 6 UTF-8 bytes is first looked up
 *    whole, and if the trie holds any prefix of it, the whole cluster becomes the replacement of the SHORTEST
 *    such prefix (`transform` takes the first `common_prefix_search` result; the rest of the cluster is dropped);
 *  - otherwise (no match, or a cluster of 6 bytes or more) each char is looked up alone (again the shortest
 *    prefix) and replaced, or kept;
 *  - no whitespace handling (that is left to the other normalisers and the pre-tokenizer).
 * Grapheme clusters come from `Intl.Segmenter` (Node's ICU, Unicode 15-17), the crate from `unicode-segmentation`
 * (1.x, Unicode 15-16): they can differ on code points whose break properties changed between those versions.
 */
import { PrecompiledCharsMap } from './sentencepiece-normalizer';

const utf8 = new TextDecoder('utf-8');

/** Intl.Segmenter (Node >= 16), typed here because the project's TS lib predates ES2022's Intl typings. */
interface GraphemeSegmenter {
  segment(text: string): Iterable<{ segment: string }>;
}
const Segmenter = (Intl as unknown as { Segmenter: new (locale: undefined, o: { granularity: 'grapheme' }) => GraphemeSegmenter }).Segmenter;

export class RustPrecompiled {
  private readonly map: PrecompiledCharsMap;
  private readonly segmenter = new Segmenter(undefined, { granularity: 'grapheme' });

  constructor(charsmap: Uint8Array, file: string) {
    this.map = new PrecompiledCharsMap(charsmap, file);
  }

  static fromBase64(b64: string, file: string): RustPrecompiled {
    return new RustPrecompiled(new Uint8Array(Buffer.from(b64, 'base64')), file);
  }

  normalize(text: string): string {
    if (text.length === 0) return text;
    let out = '';
    for (const { segment } of this.segmenter.segment(text)) {
      const bytes = Buffer.from(segment, 'utf8');
      if (bytes.length < 6) {
        const rep = this.map.firstMatch(bytes, 0, bytes.length);
        if (rep !== null) {
          out += utf8.decode(rep);
          continue;
        }
      }
      let pos = 0;
      for (const ch of segment) {
        const len = Buffer.byteLength(ch, 'utf8');
        const rep = this.map.firstMatch(bytes, pos, pos + len);
        out += rep !== null ? utf8.decode(rep) : ch;
        pos += len;
      }
    }
    return out;
  }
}
