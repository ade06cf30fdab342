/**
 * Minimal NPY reader/writer for the feature files of the MMRec layout: 2-D float arrays in
 * float16/32/64, always handed to the trainer as Float32Array (what tfjs computes in).
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { DataFileError } from './errors.js';

export { DataFileError };

export type NpyDtype = 'float16' | 'float32' | 'float64';

export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  /** Byte offset of the data in the buffer. */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ITEM_SIZE: Record<NpyDtype, number> = { float16: 2, float32: 4, float64: 8 };
const DESCR: Record<NpyDtype, string> = { float16: '<f2', float32: '<f4', float64: '<f8' };
// Typed-array views below read host order; every platform Node 20 ships for is little-endian,
// but say so loudly rather than return garbage if that ever changes.
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Parse only the header (cheap: lets a loader learn the shape without converting the data). */
export function parseNpyHeader(buf: Buffer, file: string): NpyHeader {
  const { descr, shape, dataOffset } = headerFields(buf, file);
  return { dtype: dtypeOf(descr, file), shape, dataOffset };
}

/** The header's fields, whatever the dtype: magic, version, descr, C order, shape. */
function headerFields(buf: Buffer, file: string): { descr: string; shape: number[]; dataOffset: number } {
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) {
    throw new DataFileError(file, 'not an NPY file (bad magic; expected \\x93NUMPY)');
  }
  const major = buf[6];
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new DataFileError(file, 'truncated NPY header');
    headerLen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw new DataFileError(file, `unsupported NPY format version ${major}.${buf[7]}`);
  }
  if (start + headerLen > buf.length) {
    throw new DataFileError(file, `truncated NPY header (needs ${start + headerLen} bytes, file has ${buf.length})`);
  }
  // v3 allows utf8 in the header (field names); v1/v2 are latin1.
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);

  const descrM = /['"]descr['"]\s*:\s*(['"])(.*?)\1/.exec(header);
  if (!descrM) {
    // A list here is a structured dtype, e.g. [('a', '<f4'), ...].
    const structured = /['"]descr['"]\s*:\s*\[/.test(header);
    throw new DataFileError(file, structured ? 'unsupported dtype: structured array' : `malformed NPY header: no descr in ${header.trim()}`);
  }
  const descr = descrM[2];
  const fortranM = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header);
  if (!fortranM) throw new DataFileError(file, `malformed NPY header: no fortran_order in ${header.trim()}`);
  if (fortranM[1] === 'True') {
    throw new DataFileError(file, 'fortran_order is True; only C-order arrays are supported (save with np.ascontiguousarray)');
  }
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header);
  if (!shapeM) throw new DataFileError(file, `malformed NPY header: no shape in ${header.trim()}`);
  const shape: number[] = [];
  for (const part of shapeM[1].split(',')) {
    const s = part.trim().replace(/L$/, ''); // Python 2 longs: (6710L, 128L)
    if (s === '') continue;
    if (!/^\d+$/.test(s)) throw new DataFileError(file, `malformed NPY header: bad shape (${shapeM[1]})`);
    shape.push(Number(s));
  }

  return { descr, shape, dataOffset: start + headerLen };
}

function dtypeOf(descr: string, file: string): NpyDtype {
  const m = /^([<>|=]?)([a-zA-Z])(\d+)$/.exec(descr);
  if (m && m[2] === 'f' && (m[3] === '2' || m[3] === '4' || m[3] === '8')) {
    if (m[1] === '>') throw new DataFileError(file, `big-endian dtype '${descr}' is not supported (save as little-endian, e.g. arr.astype('<f4'))`);
    // '|' (not applicable) and '=' / none (native) are accepted: the host is little-endian.
    return m[3] === '2' ? 'float16' : m[3] === '4' ? 'float32' : 'float64';
  }
  throw new DataFileError(file, `unsupported dtype '${descr}' (expected float16, float32 or float64: '<f2', '<f4', '<f8')`);
}

/** Parse a whole NPY buffer (v1/v2/v3, C order, little-endian float16/32/64) into float32. */
export function parseNpy(buf: Buffer, file: string): { shape: number[]; data: Float32Array } {
  const { dtype, shape, dataOffset } = parseNpyHeader(buf, file);
  if (!HOST_LE) throw new DataFileError(file, 'this reader needs a little-endian host');
  const count = shape.reduce((a, b) => a * b, 1);
  const size = ITEM_SIZE[dtype];
  const expected = count * size;
  const actual = buf.length - dataOffset;
  if (actual < expected) {
    throw new DataFileError(file, `truncated data: expected ${expected} bytes for shape (${shape.join(', ')}) ${DESCR[dtype]}, found ${actual}`);
  }
  if (actual > expected) {
    throw new DataFileError(file, `${actual - expected} unexpected bytes after the data (expected ${expected} bytes for shape (${shape.join(', ')}) ${DESCR[dtype]})`);
  }
  // Typed-array views need an aligned offset; a Buffer from readFileSync may sit anywhere in
  // Node's pool, so copy when it is not aligned.
  const abs = buf.byteOffset + dataOffset;
  const bytes =
    abs % size === 0
      ? buf.buffer
      : buf.buffer.slice(abs, abs + expected);
  const off = abs % size === 0 ? abs : 0;
  let data: Float32Array;
  if (dtype === 'float32') {
    // Copy so the result does not pin (or alias) the file buffer.
    data = new Float32Array(bytes, off, count).slice();
  } else if (dtype === 'float64') {
    data = new Float32Array(new Float64Array(bytes, off, count));
  } else {
    const h = new Uint16Array(bytes, off, count);
    const table = halfTable();
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = table[h[i]];
  }
  return { shape, data };
}

export function readNpy(path: string): { shape: number[]; data: Float32Array } {
  return parseNpy(readFileSync(path), path);
}

/** NPY v1.0 header padded so the data starts at a multiple of 64 bytes. */
function npyHeader(descr: string, shape: number[], count: number, what: number): Buffer {
  if (!shape.every((s) => Number.isInteger(s) && s >= 0) || shape.reduce((a, b) => a * b, 1) !== count) {
    throw new RangeError(`encodeNpy: shape (${shape.join(', ')}) does not match ${what} values`);
  }
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(total);
  head.set(MAGIC, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  head.write(dict, 10, 'latin1');
  return head;
}

/** Encode as NPY v1.0 (header padded so the data starts at a multiple of 64 bytes). */
export function encodeNpy(data: Float32Array, shape: number[], dtype: NpyDtype = 'float32'): Buffer {
  const count = data.length;
  const head = npyHeader(DESCR[dtype], shape, count, data.length);
  const total = head.length;
  const size = ITEM_SIZE[dtype];
  const out = Buffer.alloc(total + count * size);
  out.set(head, 0);
  // `total` is a multiple of 64 and Buffer.alloc of this size is not pooled, so views are aligned.
  if (dtype === 'float32') {
    new Float32Array(out.buffer, out.byteOffset + total, count).set(data);
  } else if (dtype === 'float64') {
    new Float64Array(out.buffer, out.byteOffset + total, count).set(data);
  } else {
    const h = new Uint16Array(out.buffer, out.byteOffset + total, count);
    for (let i = 0; i < count; i++) h[i] = floatToHalf(data[i]);
  }
  return out;
}

/** Encode an int32 array ('<i4'): row offsets and item rows of the model bundle. */
export function encodeNpyInt32(data: Int32Array, shape: number[]): Buffer {
  const head = npyHeader('<i4', shape, data.length, data.length);
  const out = Buffer.alloc(head.length + data.length * 4);
  out.set(head, 0);
  new Int32Array(out.buffer, out.byteOffset + head.length, data.length).set(data);
  return out;
}

/** Parse an int32 ('<i4') NPY written by encodeNpyInt32 (or numpy). */
export function parseNpyInt32(buf: Buffer, file: string): { shape: number[]; data: Int32Array } {
  const { descr, shape, dataOffset } = headerFields(buf, file);
  if (!/^[<|=]?i4$/.test(descr)) throw new DataFileError(file, `expected dtype int32 ('<i4'), found '${descr}'`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length - dataOffset !== count * 4) throw new DataFileError(file, `expected ${count * 4} data bytes for shape (${shape.join(', ')}), found ${buf.length - dataOffset}`);
  const data = new Int32Array(count); // own, aligned copy
  new Uint8Array(data.buffer).set(buf.subarray(dataOffset));
  return { shape, data };
}

/** Write a float32 (or other dtype) NPY atomically (temp file, fsync, rename). */
export function writeNpy(path: string, data: Float32Array, shape: number[], dtype: NpyDtype = 'float32'): void {
  writeFileAtomic(path, encodeNpy(data, shape, dtype));
}

let HALF_TABLE: Float32Array | null = null;
/** All 65536 float16 values decoded once: a table lookup beats bit-twiddling per element. */
function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    HALF_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) HALF_TABLE[h] = halfToFloat(h);
  }
  return HALF_TABLE;
}

/** IEEE 754 binary16 bits → number (exact: every half value is representable in float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** number → binary16 bits, round to nearest, ties to even; overflow → ±Inf, NaN kept. */
export function floatToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 is halfway between the largest half (65504) and 2^16; the tie goes to the even
  // neighbour, which is 2^16, i.e. infinity.
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal: units of 2^-24; rounding up to 1024 gives 0x0400, the smallest normal, as bits.
    return sign | roundHalfEven(a * 2 ** 24);
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let mant = roundHalfEven((a / 2 ** e - 1) * 1024); // exact in float64 before rounding
  if (mant === 1024) {
    mant = 0;
    e++;
  }
  return sign | ((e + 15) << 10) | mant;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}
