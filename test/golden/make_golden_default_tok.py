#!/usr/bin/env python3
"""Golden token ids of the default model's tokenizer.json from Python `tokenizers` (the Rust crate).

    python3 test/golden/make_golden_default_tok.py            # test/fixtures/default-tok/ids.json.gz
    python3 test/golden/make_golden_default_tok.py --tables   # + regenerate src/tokenizers/rust-unicode-tables.ts

ids.json.gz: {"versions", "kornlu": [ids...] (untruncated, with [CLS]/[SEP], one per text of
test/fixtures/kornlu-token-ids.json.gz, same order), "edge": [[text, ids], ...], "truncated64": ids of the
KorNLU texts cut as sentence-transformers cuts them (max_seq_length 64) for the texts longer than that}.

--tables: the per-code-point behaviour of the crate's Unicode tables (unicode-normalization-alignments, whose
Unicode version is older than Node's ICU) compared with Node's String.prototype.normalize, written as range
tables: the code points StripAccents removes, and the code points the crate does not know (no decomposition,
combining class 0, never composes) but Node's ICU does; src/tokenizers/rust-unicode.ts splits the text at those
so that Node's normalize() gives the crate's result.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import tokenizers
from tokenizers import Tokenizer
from tokenizers import normalizers as N

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FIX = os.path.join(ROOT, 'test', 'fixtures')
OUT = os.path.join(FIX, 'default-tok', 'ids.json.gz')
TABLES = os.path.join(ROOT, 'src', 'tokenizers', 'rust-unicode-tables.ts')
MAX_SEQ = 64

EXTRA_EDGE = [
    # graphemes of 6 UTF-8 bytes or more (Precompiled looks them up char by char)
    'e\u0301\u0302 가\u0301\u0302\u0303', 'ᄀ\u1161\u11a8', '한\u302e\u302f', 'a\u0308\u0301\u0304\u0323',
    'ǅ\u0301', 'ＡＢＣ\u0301', '①\u20dd', 'x\u200d\u0301', 'ﬁ\u0301x',
    # combining sequences
    'café naïve résumé', 'e\u0301', 'A\u030a', '\u1100\u1161\u11a8', '\u1100\u1161', '\u110b\u1175\u11ab\u1100\u1161',
    'Ω\u0345\u0301', 's\u0323\u0307', 'q\u0307\u0323', '\u0301가', '\u0301\u0301\u0301', '가\u0300나\u0301다',
    # emoji, ZWJ sequences, flags, keycaps, skin tones
    '👨\u200d👩\u200d👧\u200d👦 가족', '👍🏽 좋아요', '🇰🇷🇯🇵', '1\ufe0f\u20e3', '❤\ufe0f', '🏳\ufe0f\u200d🌈',
    '😀😃😄', '👩🏻\u200d💻', '\u200d', '가\u200d나', '가\u200c나',
    # Hangul jamo (conjoining, compatibility, half-width, old)
    'ㄱㄴㄷ ㅏㅑ ㅎㅎ ㅋㅋㅋ', '\u1100\u1100\u1161', '\u3131\u314f', 'ﾡﾢﾣ', '\ua960\ud7b0', 'ᄒᆞᆫ', '\u1160\u115f',
    # full-width, compatibility
    'ＡＢＣ１２３！？　ｶﾀｶﾅ', '㈜ ㎏ ℃ ™ ½ Ⅻ', 'ﬀ ﬃ ﬆ', '①②③', '𝐀𝐁𝐂', '゛゜ガ', 'ｶﾞ',
    # control and format characters, odd spaces
    'a\x00b', '\x01\x02\x1f\x7f가', 'a\u0085b', 'a\u200bb\ufeffc', 'a\u00adb', '\u2028\u2029', '가\u3000\u3000나',
    'a\u202ab\u202c', '\ufffd', 'a\tb\nc\rd', 'a\u00a0b', '\u2581가\u2581', '``인용\'\'', "''", '``',
    # special tokens inside the text
    '[CLS] 안녕 [SEP]', '[UNK][MASK]x', 'a[PAD]b', '[cls]',
    # ties in the Viterbi
    '....', '.......', '38,000원', '000', '!!!!!!', '???', 'ㅋㅋㅋㅋㅋㅋㅋㅋ',
    # scripts, new Unicode, Greek final sigma, Turkish i
    'ΑΣ ΣΑΣ', 'İstanbul', 'ß', '中文字', 'عربى', 'हिन्दी', 'ไทย', '\U000105c9\U00016121\U000113c5',
    '\u0897\u1acf\U0001e6e3', '\U00011382x',
]


def kornlu_texts():
    with gzip.open(os.path.join(FIX, 'kornlu-token-ids.json.gz'), 'rt', encoding='utf-8') as f:
        return [t for t, _ in json.load(f)]


def edge_texts():
    with open(os.path.join(FIX, 'edge-token-ids.json'), encoding='utf-8') as f:
        cases = json.load(f)['cases']
    return [c['text'] for c in cases] + EXTRA_EDGE


def write_tables():
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    sa, nfd, nfkd, nfc, nfkc = N.StripAccents(), N.NFD(), N.NFKD(), N.NFC(), N.NFKC()
    removed = [c for c in cps if sa.normalize_str(chr(c)) == '']
    # the code points the crate leaves alone in every form, with no reordering against ccc 1 / ccc 230 marks
    ident = []
    for c in cps:
        ch = chr(c)
        if any(f.normalize_str(ch) != ch for f in (nfd, nfkd, nfc, nfkc)):
            continue
        if nfd.normalize_str(ch + '\u0334') != ch + '\u0334' or nfd.normalize_str('\u0301' + ch) != '\u0301' + ch:
            continue
        ident.append(c)
    rust_nfd = {c: nfd.normalize_str(chr(c)) for c in cps if nfd.normalize_str(chr(c)) != chr(c)}
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, 'in.json')
        with open(src, 'w') as f:
            json.dump({'ident': ident, 'removed': removed, 'nfd': rust_nfd}, f)
        js = r'''
const d = require(process.argv[1]);
const removed = new Set(d.removed);
const opaque = [];
const comps = new Set();
for (let c = 0; c < 0x110000; c++) {
  if (c >= 0xd800 && c <= 0xdfff) continue;
  const ch = String.fromCodePoint(c);
  const want = d.nfd[c] ?? ch;
  const got = ch.normalize('NFD');
  if (got !== want) for (const x of got) comps.add(x.codePointAt(0));
}
for (const c of d.ident) {
  const ch = String.fromCodePoint(c);
  let differs = ['NFD', 'NFKD', 'NFC', 'NFKC'].some((f) => ch.normalize(f) !== ch);
  differs ||= (ch + '\u0334').normalize('NFD') !== ch + '\u0334' || ('\u0301' + ch).normalize('NFD') !== '\u0301' + ch;
  // a component of a decomposition the crate does not know, and not a mark the crate knows (e.g. U+0307)
  differs ||= comps.has(c) && !removed.has(c) && !(d.nfd[c]);
  if (differs) opaque.push(c);
}
console.log(JSON.stringify({ opaque, icu: process.versions.icu, unicode: process.versions.unicode }));
'''
        res = json.loads(subprocess.check_output(['node', '-e', js, src]))

    def ranges(cs):
        out = []
        for c in sorted(cs):
            if out and out[-1][1] == c - 1:
                out[-1][1] = c
            else:
                out.append([c, c])
        return [x for r in out for x in r]

    def fmt(name, arr, doc):
        body = ','.join(str(x) for x in arr)
        lines, line = [], ''
        for tok in body.split(','):
            if len(line) + len(tok) > 110:
                lines.append(line)
                line = ''
            line += tok + ','
        lines.append(line)
        return f'/** {doc} */\nexport const {name}: readonly number[] = [\n' + '\n'.join('  ' + l for l in lines) + '\n];\n'

    text = (
        '// Generated by test/golden/make_golden_default_tok.py --tables from Python tokenizers '
        f'{tokenizers.__version__} and Node {res["icu"]} ICU (Unicode {res["unicode"]}). Do not edit.\n'
        '// Ranges as flat [first, last, first, last, ...] code point pairs.\n\n'
        + fmt('STRIP_ACCENTS_REMOVED', ranges(removed), 'Code points the crate\'s StripAccents removes (is_combining_mark).')
        + '\n'
        + fmt('NORMALIZATION_OPAQUE', ranges(res['opaque']),
              'Code points the crate\'s NFD/NFKD/NFC/NFKC leave alone (unknown to its Unicode tables) but Node\'s ICU does not.')
    )
    with open(TABLES, 'w') as f:
        f.write(text)
    print(f'{TABLES}: {len(removed)} removed, {len(res["opaque"])} opaque code points')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tables', action='store_true')
    args = ap.parse_args()
    if args.tables:
        write_tables()
    tok = Tokenizer.from_file(os.path.join(ROOT, 'weights', 'default', 'tokenizer.json'))
    tok.no_truncation()
    tok.no_padding()
    texts = kornlu_texts()
    assert len(texts) == 25406, len(texts)
    kornlu = [e.ids for e in tok.encode_batch(texts)]
    edge = [[t, tok.encode(t).ids] for t in edge_texts()]
    # sentence-transformers: tokenizer(..., truncation='longest_first', max_length=64)
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(ROOT, 'weights', 'default', 'tokenizer.json'))
    long_idx = [i for i, ids in enumerate(kornlu) if len(ids) > MAX_SEQ]
    trunc = [[i, hf(texts[i], truncation='longest_first', max_length=MAX_SEQ)['input_ids']] for i in long_idx]
    out = {
        'format': 1,
        'versions': {'python': sys.version.split()[0], 'tokenizers': tokenizers.__version__},
        'kornlu': kornlu,
        'edge': edge,
        'truncated64': trunc,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    raw = json.dumps(out, ensure_ascii=False, separators=(',', ':')).encode('utf-8')
    with open(OUT, 'wb') as f:
        with gzip.GzipFile(fileobj=f, mode='wb', mtime=0, compresslevel=9) as g:
            g.write(raw)
    print(f'{OUT}: {len(kornlu)} KorNLU, {len(edge)} edge, {len(trunc)} truncated; {os.path.getsize(OUT)} bytes')


if __name__ == '__main__':
    main()
