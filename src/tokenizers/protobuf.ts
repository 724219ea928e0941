/**
 * A small, strict protobuf (proto2 wire format) reader and the SentencePiece `ModelProto` parser.
 *
 * Only the fields the tokenizer needs are decoded; every other field is skipped after its length has been
 * checked. Every varint, length and offset is validated before use, and every error names the file and the
 * field (house rule 7: the .model file is untrusted input).
 */

export class ModelFormatError extends Error {
  constructor(file: string, field: string, detail: string) {
    super(`${file}: invalid SentencePiece model: ${field}: ${detail}`);
    this.name = 'ModelFormatError';
  }
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads one message's bytes [start, end) of `buf`. */
class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly file: string,
    readonly msg: string,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  fail(field: string, detail: string): never {
    throw new ModelFormatError(this.file, `${this.msg}.${field}`, `${detail} (at byte ${this.pos})`);
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Varint as a non-negative number (up to 2^53); `field` only names it in errors. */
  varint(field: string): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(field, 'varint runs past the end of the message');
      const b = this.buf[this.pos++];
      if (i === 9 && b > 1) this.fail(field, 'varint longer than 64 bits');
      // Bits above 2^53 cannot be represented; they only occur for negative int32/int64, handled by int32().
      result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return result;
    }
    this.fail(field, 'varint longer than 10 bytes');
  }

  /** int32 field (negative values are sign-extended to 10 bytes on the wire). */
  int32(field: string): number {
    const start = this.pos;
    let lo = 0; // low 32 bits, built exactly with shifts
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(field, 'varint runs past the end of the message');
      const b = this.buf[this.pos++];
      if (shift < 32) lo |= (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) return lo | 0;
    }
    this.pos = start;
    this.fail(field, 'varint longer than 10 bytes');
  }

  bool(field: string): boolean {
    return this.varint(field) !== 0;
  }

  float(field: string): number {
    if (this.pos + 4 > this.end) this.fail(field, 'fixed32 runs past the end of the message');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  /** Length-delimited field: returns [start, end) after checking the length. */
  lengthDelimited(field: string): [number, number] {
    const len = this.varint(field + ' (length)');
    if (len > this.end - this.pos) {
      this.fail(field, `length ${len} runs past the end of the message (${this.end - this.pos} bytes left)`);
    }
    const start = this.pos;
    this.pos += len;
    return [start, start + len];
  }

  string(field: string): string {
    const [s, e] = this.lengthDelimited(field);
    try {
      return utf8.decode(this.buf.subarray(s, e));
    } catch {
      this.pos = s;
      this.fail(field, 'not valid UTF-8');
    }
  }

  bytes(field: string): Uint8Array {
    const [s, e] = this.lengthDelimited(field);
    return this.buf.subarray(s, e);
  }

  sub(field: string, msg: string): Reader {
    const [s, e] = this.lengthDelimited(field);
    return new Reader(this.buf, this.file, `${this.msg}.${msg}`, s, e);
  }

  /** Field key: [fieldNumber, wireType]. */
  key(): [number, number] {
    const k = this.varint('(field key)');
    const field = Math.floor(k / 8);
    const wire = k % 8;
    if (field === 0) this.fail('(field key)', 'field number 0');
    if (wire === WIRE_START_GROUP || wire === WIRE_END_GROUP || wire > WIRE_FIXED32) {
      this.fail(`field ${field}`, `unsupported wire type ${wire}`);
    }
    return [field, wire];
  }

  expectWire(field: string, wire: number, expected: number): void {
    if (wire !== expected) this.fail(field, `wire type ${wire}, expected ${expected}`);
  }

  skip(field: number, wire: number): void {
    const name = `field ${field}`;
    switch (wire) {
      case WIRE_VARINT:
        this.varint(name);
        break;
      case WIRE_FIXED64:
        if (this.pos + 8 > this.end) this.fail(name, 'fixed64 runs past the end of the message');
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.lengthDelimited(name);
        break;
      case WIRE_FIXED32:
        if (this.pos + 4 > this.end) this.fail(name, 'fixed32 runs past the end of the message');
        this.pos += 4;
        break;
      default:
        this.fail(name, `unsupported wire type ${wire}`);
    }
  }
}

/** SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type). */
export enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

/** TrainerSpec.ModelType */
export enum SpModelType {
  UNIGRAM = 1,
  BPE = 2,
  WORD = 3,
  CHAR = 4,
}

export interface SpPiece {
  piece: string;
  score: number; // float32 value
  type: PieceType;
}

export interface SpTrainerSpec {
  modelType: SpModelType;
  vocabSize: number;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
}

export interface SpNormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

export interface SpModelProto {
  pieces: SpPiece[];
  trainerSpec: SpTrainerSpec;
  normalizerSpec: SpNormalizerSpec;
  /** Whether normalizer_spec was present in the file. */
  hasNormalizerSpec: boolean;
}

function parsePiece(r: Reader, index: number): SpPiece {
  let piece: string | undefined;
  let score = 0;
  let type = PieceType.NORMAL;
  while (!r.done()) {
    const [f, w] = r.key();
    if (f === 1) {
      r.expectWire('piece', w, WIRE_LEN);
      piece = r.string('piece');
    } else if (f === 2) {
      r.expectWire('score', w, WIRE_FIXED32);
      score = r.float('score');
      if (!Number.isFinite(score)) r.fail('score', `piece #${index} has a non-finite score`);
    } else if (f === 3) {
      r.expectWire('type', w, WIRE_VARINT);
      const t = r.varint('type');
      if (t < PieceType.NORMAL || t > PieceType.BYTE) r.fail('type', `piece #${index} has unknown type ${t}`);
      type = t;
    } else {
      r.skip(f, w);
    }
  }
  if (piece === undefined) r.fail('piece', `piece #${index} has no piece string`);
  return { piece, score, type };
}

function parseTrainerSpec(r: Reader): SpTrainerSpec {
  const spec: SpTrainerSpec = {
    modelType: SpModelType.UNIGRAM,
    vocabSize: 8000,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
  };
  while (!r.done()) {
    const [f, w] = r.key();
    switch (f) {
      case 3: {
        r.expectWire('model_type', w, WIRE_VARINT);
        const t = r.varint('model_type');
        if (t < SpModelType.UNIGRAM || t > SpModelType.CHAR) r.fail('model_type', `unknown model type ${t}`);
        spec.modelType = t;
        break;
      }
      case 4:
        r.expectWire('vocab_size', w, WIRE_VARINT);
        spec.vocabSize = r.int32('vocab_size');
        break;
      case 24:
        r.expectWire('treat_whitespace_as_suffix', w, WIRE_VARINT);
        spec.treatWhitespaceAsSuffix = r.bool('treat_whitespace_as_suffix');
        break;
      case 35:
        r.expectWire('byte_fallback', w, WIRE_VARINT);
        spec.byteFallback = r.bool('byte_fallback');
        break;
      case 40:
        r.expectWire('unk_id', w, WIRE_VARINT);
        spec.unkId = r.int32('unk_id');
        break;
      case 41:
        r.expectWire('bos_id', w, WIRE_VARINT);
        spec.bosId = r.int32('bos_id');
        break;
      case 42:
        r.expectWire('eos_id', w, WIRE_VARINT);
        spec.eosId = r.int32('eos_id');
        break;
      case 43:
        r.expectWire('pad_id', w, WIRE_VARINT);
        spec.padId = r.int32('pad_id');
        break;
      default:
        r.skip(f, w);
    }
  }
  return spec;
}

function parseNormalizerSpec(r: Reader): SpNormalizerSpec {
  const spec: SpNormalizerSpec = {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: '',
  };
  while (!r.done()) {
    const [f, w] = r.key();
    switch (f) {
      case 1:
        r.expectWire('name', w, WIRE_LEN);
        spec.name = r.string('name');
        break;
      case 2:
        r.expectWire('precompiled_charsmap', w, WIRE_LEN);
        spec.precompiledCharsmap = r.bytes('precompiled_charsmap');
        break;
      case 3:
        r.expectWire('add_dummy_prefix', w, WIRE_VARINT);
        spec.addDummyPrefix = r.bool('add_dummy_prefix');
        break;
      case 4:
        r.expectWire('remove_extra_whitespaces', w, WIRE_VARINT);
        spec.removeExtraWhitespaces = r.bool('remove_extra_whitespaces');
        break;
      case 5:
        r.expectWire('escape_whitespaces', w, WIRE_VARINT);
        spec.escapeWhitespaces = r.bool('escape_whitespaces');
        break;
      case 6:
        r.expectWire('normalization_rule_tsv', w, WIRE_LEN);
        spec.normalizationRuleTsv = r.string('normalization_rule_tsv');
        break;
      default:
        r.skip(f, w);
    }
  }
  return spec;
}

/**
 * Parse a SentencePiece `ModelProto` (the `.model` file). `file` is only used in error messages.
 * Structural checks beyond the wire format: at least one piece, exactly one UNKNOWN piece, no duplicate pieces,
 * no empty pieces.
 */
export function parseSentencePieceModel(buf: Uint8Array, file: string): SpModelProto {
  if (buf.length === 0) throw new ModelFormatError(file, 'ModelProto', 'file is empty');
  const r = new Reader(buf, file, 'ModelProto', 0, buf.length);
  const pieces: SpPiece[] = [];
  let trainerSpec: SpTrainerSpec | undefined;
  let normalizerSpec: SpNormalizerSpec | undefined;
  while (!r.done()) {
    const [f, w] = r.key();
    if (f === 1) {
      r.expectWire('pieces', w, WIRE_LEN);
      pieces.push(parsePiece(r.sub('pieces', `pieces[${pieces.length}]`), pieces.length));
    } else if (f === 2) {
      r.expectWire('trainer_spec', w, WIRE_LEN);
      trainerSpec = parseTrainerSpec(r.sub('trainer_spec', 'trainer_spec'));
    } else if (f === 3) {
      r.expectWire('normalizer_spec', w, WIRE_LEN);
      normalizerSpec = parseNormalizerSpec(r.sub('normalizer_spec', 'normalizer_spec'));
    } else {
      r.skip(f, w);
    }
  }
  if (pieces.length === 0) throw new ModelFormatError(file, 'ModelProto.pieces', 'no pieces');
  const seen = new Map<string, number>();
  let unk = -1;
  pieces.forEach((p, i) => {
    if (p.piece.length === 0) throw new ModelFormatError(file, `ModelProto.pieces[${i}].piece`, 'empty piece');
    const prev = seen.get(p.piece);
    if (prev !== undefined) {
      throw new ModelFormatError(file, `ModelProto.pieces[${i}].piece`, `duplicate of piece #${prev} (${JSON.stringify(p.piece)})`);
    }
    seen.set(p.piece, i);
    if (p.type === PieceType.UNKNOWN) {
      if (unk >= 0) throw new ModelFormatError(file, `ModelProto.pieces[${i}].type`, `second UNKNOWN piece (first is #${unk})`);
      unk = i;
    }
  });
  if (unk < 0) throw new ModelFormatError(file, 'ModelProto.pieces', 'no piece of type UNKNOWN');
  const ts = trainerSpec ?? parseTrainerSpec(new Reader(buf, file, 'trainer_spec', 0, 0));
  return {
    pieces,
    trainerSpec: ts,
    normalizerSpec: normalizerSpec ?? parseNormalizerSpec(new Reader(buf, file, 'normalizer_spec', 0, 0)),
    hasNormalizerSpec: normalizerSpec !== undefined,
  };
}
