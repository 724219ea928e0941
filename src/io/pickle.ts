/**
 * A data-only unpickler for PyTorch state_dicts. It never executes anything: it interprets the opcodes a
 * state_dict pickle uses (protocols 2–5) and resolves only a fixed allow-list of globals, each of which maps
 * to a plain data constructor written here. Any other global (os.system, builtins.eval, ...) is refused the
 * moment it is named, with an error that names it; so is every opcode outside the list below.
 */

export class PickleError extends Error {}

/** A global the pickle named and the allow-list accepted. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

export class PyTuple {
  constructor(readonly items: unknown[]) {}
}

/** dict / collections.OrderedDict (insertion order kept; keys are strings or numbers). */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  constructor(readonly ordered: boolean) {}
}

/** What persistent_load returned for a BINPERSID: ('storage', torch.XStorage, key, location, numel). */
export interface PickleStorageRef {
  storageType: string;
  key: string;
  location: string;
  numel: number;
}

export interface PickleTensor {
  kind: 'tensor';
  storage: PickleStorageRef;
  storageOffset: number;
  size: number[];
  stride: number[];
}

export const ALLOWED_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch.FloatStorage',
  'torch.HalfStorage',
  'torch.BFloat16Storage',
  'torch.LongStorage',
]);

const MARK = Symbol('mark');
const MAX_STACK = 100_000;
const MAX_MEMO = 10_000_000;

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function intList(v: unknown, what: string): number[] {
  if (!(v instanceof PyTuple) && !Array.isArray(v)) throw new PickleError(`${what} must be a tuple of integers`);
  const items = v instanceof PyTuple ? v.items : v;
  return items.map((x, i) => {
    if (!isNonNegInt(x)) throw new PickleError(`${what}[${i}] must be a non-negative integer, got ${String(x)}`);
    return x;
  });
}

function tupleArgs(v: unknown, what: string): unknown[] {
  if (!(v instanceof PyTuple)) throw new PickleError(`${what}: arguments must be a tuple`);
  return v.items;
}

function callGlobal(fn: unknown, argsV: unknown): unknown {
  if (!(fn instanceof PyGlobal)) {
    throw new PickleError(`REDUCE of a non-global callable (${describe(fn)}) is not allowed`);
  }
  const args = tupleArgs(argsV, fn.qualified);
  switch (fn.qualified) {
    case 'collections.OrderedDict': {
      if (args.length !== 0) throw new PickleError('collections.OrderedDict() must be called with no arguments');
      return new PyDict(true);
    }
    case 'torch._utils._rebuild_tensor_v2': {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args.length < 6 || args.length > 7) throw new PickleError(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
      const storage = args[0] as PickleStorageRef;
      if (!storage || typeof storage !== 'object' || typeof (storage as PickleStorageRef).key !== 'string' || !('storageType' in storage)) {
        throw new PickleError('_rebuild_tensor_v2: first argument must be a storage (persistent id)');
      }
      if (!isNonNegInt(args[1])) throw new PickleError(`_rebuild_tensor_v2: storage_offset must be a non-negative integer`);
      const size = intList(args[2], '_rebuild_tensor_v2 size');
      const stride = intList(args[3], '_rebuild_tensor_v2 stride');
      if (size.length !== stride.length) throw new PickleError(`_rebuild_tensor_v2: size has ${size.length} dims but stride ${stride.length}`);
      if (typeof args[4] !== 'boolean') throw new PickleError('_rebuild_tensor_v2: requires_grad must be a boolean');
      const hooks = args[5];
      if (!(hooks instanceof PyDict) || hooks.map.size !== 0) throw new PickleError('_rebuild_tensor_v2: backward_hooks must be an empty OrderedDict');
      const t: PickleTensor = { kind: 'tensor', storage, storageOffset: args[1], size, stride };
      return t;
    }
    case 'torch._utils._rebuild_parameter': {
      // (data, requires_grad, backward_hooks)
      if (args.length !== 3) throw new PickleError(`_rebuild_parameter takes 3 arguments, got ${args.length}`);
      const t = args[0] as PickleTensor;
      if (!t || (t as PickleTensor).kind !== 'tensor') throw new PickleError('_rebuild_parameter: data must be a tensor');
      return t;
    }
  }
  throw new PickleError(`calling ${fn.qualified} is not allowed`);
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyGlobal) return v.qualified;
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (Array.isArray(v)) return 'list';
  if (v && typeof v === 'object' && (v as PickleTensor).kind === 'tensor') return 'tensor';
  return typeof v;
}

function hashKey(k: unknown): unknown {
  if (typeof k === 'string' || typeof k === 'number' || typeof k === 'boolean' || k === null || typeof k === 'bigint') return k;
  throw new PickleError(`dict key of type ${describe(k)} is not allowed`);
}

/**
 * Interprets a pickle. `persistentLoad` receives the persistent id (already a PyTuple) and returns the
 * storage reference. Returns the unpickled top value.
 */
export function unpickle(data: Uint8Array, persistentLoad: (pid: unknown) => unknown): unknown {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let p = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number, what: string): void => {
    if (n < 0 || p + n > buf.length) throw new PickleError(`pickle truncated reading ${what} at byte ${p}`);
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) throw new PickleError(`stack underflow at byte ${p}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleError(`stack underflow at byte ${p}`);
    return stack[stack.length - 1];
  };
  const push = (v: unknown): void => {
    if (stack.length >= MAX_STACK) throw new PickleError('pickle stack too deep');
    stack.push(v);
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw new PickleError(`MARK expected at byte ${p}`);
    return stack.splice(m);
  };
  const str = (n: number, what: string): string => {
    need(n, what);
    const s = buf.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(q)) {
      throw new PickleError(`global "${q}" is not allowed (a state_dict only needs ${[...ALLOWED_GLOBALS].join(', ')}); nothing was executed`);
    }
    return new PyGlobal(module, name);
  };
  const memoPut = (idx: number): void => {
    if (memo.size >= MAX_MEMO) throw new PickleError('pickle memo too large');
    memo.set(idx, top());
  };
  const memoGet = (idx: number): void => {
    if (!memo.has(idx)) throw new PickleError(`memo key ${idx} is not defined`);
    push(memo.get(idx));
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) throw new PickleError(`SETITEM(S) on a ${describe(d)}`);
    if (items.length % 2) throw new PickleError('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.map.set(hashKey(items[i]), items[i + 1]);
  };
  const append = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l)) throw new PickleError(`APPEND(S) on a ${describe(l)}`);
    for (const x of items) l.push(x);
  };

  for (;;) {
    need(1, 'an opcode');
    const op = buf[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1, 'PROTO');
        if (buf[p] < 2 || buf[p] > 5) throw new PickleError(`pickle protocol ${buf[p]} is not supported (2 to 5)`);
        p += 1;
        break;
      case 0x95: // FRAME (length ignored: the whole pickle is in memory)
        need(8, 'FRAME');
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) throw new PickleError(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        push(new PyDict(false));
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4b: // BININT1
        need(1, 'BININT1');
        push(buf[p]);
        p += 1;
        break;
      case 0x4d: // BININT2
        need(2, 'BININT2');
        push(buf.readUInt16LE(p));
        p += 2;
        break;
      case 0x4a: // BININT
        need(4, 'BININT');
        push(buf.readInt32LE(p));
        p += 4;
        break;
      case 0x8a: { // LONG1
        need(1, 'LONG1');
        const n = buf[p++];
        need(n, 'LONG1 bytes');
        if (n > 8) throw new PickleError('LONG1 integer wider than 64 bits');
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(buf[p + i]);
        if (n > 0 && buf[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT
        need(8, 'BINFLOAT');
        push(buf.readDoubleBE(p));
        p += 8;
        break;
      case 0x58: { // BINUNICODE
        need(4, 'BINUNICODE');
        const n = buf.readUInt32LE(p);
        p += 4;
        push(str(n, 'BINUNICODE'));
        break;
      }
      case 0x8c: { // SHORT_BINUNICODE
        need(1, 'SHORT_BINUNICODE');
        const n = buf[p++];
        push(str(n, 'SHORT_BINUNICODE'));
        break;
      }
      case 0x8d: { // BINUNICODE8
        need(8, 'BINUNICODE8');
        const n = Number(buf.readBigUInt64LE(p));
        p += 8;
        push(str(n, 'BINUNICODE8'));
        break;
      }
      case 0x55: { // SHORT_BINSTRING (Python 2 str; protocol-2 pickles of storage keys may use it)
        need(1, 'SHORT_BINSTRING');
        const n = buf[p++];
        push(str(n, 'SHORT_BINSTRING'));
        break;
      }
      case 0x54: { // BINSTRING
        need(4, 'BINSTRING');
        const n = buf.readInt32LE(p);
        p += 4;
        push(str(n, 'BINSTRING'));
        break;
      }
      case 0x43: { // SHORT_BINBYTES
        need(1, 'SHORT_BINBYTES');
        const n = buf[p++];
        need(n, 'SHORT_BINBYTES');
        push(Buffer.from(buf.subarray(p, p + n)));
        p += n;
        break;
      }
      case 0x42: { // BINBYTES
        need(4, 'BINBYTES');
        const n = buf.readUInt32LE(p);
        p += 4;
        need(n, 'BINBYTES');
        push(Buffer.from(buf.subarray(p, p + n)));
        p += n;
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const readLine = (): string => {
          const nl = buf.indexOf(0x0a, p);
          if (nl < 0 || nl - p > 1000) throw new PickleError(`GLOBAL: unterminated name at byte ${p}`);
          const s = buf.toString('utf8', p, nl);
          p = nl + 1;
          return s;
        };
        const module = readLine();
        const name = readLine();
        push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL needs two strings');
        push(global(module, name));
        break;
      }
      case 0x71: // BINPUT
        need(1, 'BINPUT');
        memoPut(buf[p]);
        p += 1;
        break;
      case 0x72: // LONG_BINPUT
        need(4, 'LONG_BINPUT');
        memoPut(buf.readUInt32LE(p));
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x68: // BINGET
        need(1, 'BINGET');
        memoGet(buf[p]);
        p += 1;
        break;
      case 0x6a: // LONG_BINGET
        need(4, 'LONG_BINGET');
        memoGet(buf.readUInt32LE(p));
        p += 4;
        break;
      case 0x51: // BINPERSID
        push(persistentLoad(pop()));
        break;
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        push(callGlobal(fn, args));
        break;
      }
      case 0x62: { // BUILD: only the OrderedDict's own attributes (state_dict._metadata) are accepted, and ignored
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict)) throw new PickleError(`BUILD on a ${describe(obj)} is not allowed`);
        if (state !== null && !(state instanceof PyDict)) throw new PickleError(`BUILD with a ${describe(state)} state is not allowed`);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      default:
        throw new PickleError(
          `opcode 0x${op.toString(16).padStart(2, '0')} (${JSON.stringify(String.fromCharCode(op))}) at byte ${p - 1} is not allowed in a state_dict pickle`,
        );
    }
  }
}
