import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy, floatToHalf, halfToFloat, parseNpy, readNpy, writeNpy } from '../core/npy.js';
import { assertDataError } from '../test-support/data-error.js';

/** Hand-built NPY, for versions and headers encodeNpy does not write. */
function rawNpy(descr: string, shape: string, data: Buffer, opts: { version?: 1 | 2 | 3; fortran?: boolean } = {}): Buffer {
  const version = opts.version ?? 1;
  const pre = version === 1 ? 10 : 12;
  let dict = `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${shape}, }`;
  dict = dict.padEnd(Math.ceil((pre + dict.length + 1) / 64) * 64 - pre - 1, ' ') + '\n';
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(dict.length, 8);
  else head.writeUInt32LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}


test('float16 decoding of special bit patterns', () => {
  assert.equal(halfToFloat(0x3c00), 1);
  assert.equal(halfToFloat(0xc000), -2);
  assert.equal(halfToFloat(0x0001), 2 ** -24); // smallest subnormal
  assert.equal(halfToFloat(0x03ff), 1023 * 2 ** -24); // largest subnormal
  assert.equal(halfToFloat(0x0400), 2 ** -14); // smallest normal
  assert.equal(halfToFloat(0x7bff), 65504);
  assert.equal(halfToFloat(0x7c00), Infinity);
  assert.equal(halfToFloat(0xfc00), -Infinity);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.ok(Object.is(halfToFloat(0x8000), -0));
});

test('float16 encoding rounds to nearest even and round-trips every half value', () => {
  for (let h = 0; h < 65536; h++) {
    const f = halfToFloat(h);
    if (Number.isNaN(f)) assert.ok(Number.isNaN(halfToFloat(floatToHalf(f))));
    else assert.equal(floatToHalf(f), h, `bits 0x${h.toString(16)}`);
  }
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie → even mantissa
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(floatToHalf(65519), 0x7bff);
  assert.equal(floatToHalf(65520), 0x7c00); // overflow to inf
  assert.equal(floatToHalf(2 ** -25), 0x0000); // tie between 0 and smallest subnormal → 0
  assert.equal(floatToHalf(3 * 2 ** -26), 0x0001);
  assert.equal(floatToHalf(2 ** -14 - 2 ** -26), 0x0400); // subnormal rounding up into the normals
  assert.equal(floatToHalf(0.1), 0x2e66);
});

test('float16/32/64 round trip through encodeNpy → parseNpy', () => {
  const values = [0, -0, 1, -2.5, 0.1, 65504, 2 ** -24, 3 * 2 ** -24, 2 ** -14, Infinity, -Infinity, 1e-3, 123.456];
  const src = Float32Array.from(values);
  const want: Record<string, number[]> = {
    float16: values.map((v) => halfToFloat(floatToHalf(v))),
    float32: values.map((v) => Math.fround(v)),
    float64: values.map((v) => Math.fround(v)),
  };
  assert.equal(want.float16[4], 0.0999755859375);
  assert.equal(want.float16[6], 2 ** -24);
  for (const dtype of ['float16', 'float32', 'float64'] as const) {
    const buf = encodeNpy(src, [values.length, 1], dtype);
    const { shape, data } = parseNpy(buf, 'x.npy');
    assert.deepEqual(shape, [values.length, 1]);
    assert.deepEqual(Array.from(data), want[dtype], dtype);
  }
  const nan = parseNpy(encodeNpy(Float32Array.of(NaN), [1], 'float16'), 'n.npy').data[0];
  assert.ok(Number.isNaN(nan));
});

test('encodeNpy writes a v1.0 header padded to 64 bytes', () => {
  const buf = encodeNpy(new Float32Array(6), [2, 3]);
  const hlen = buf.readUInt16LE(8);
  assert.equal((10 + hlen) % 64, 0);
  assert.equal(buf[10 + hlen - 1], 0x0a);
  assert.match(buf.toString('latin1', 10, 10 + hlen), /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/);
  assert.equal(buf.length, 10 + hlen + 24);
  assert.match(encodeNpy(new Float32Array(2), [2]).toString('latin1', 10, 80), /'shape': \(2,\)/);
  assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), RangeError);
});

test('writeNpy is atomic and readNpy reads it back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npy-'));
  try {
    const p = join(dir, 'a.npy');
    const data = Float32Array.from({ length: 12 }, (_, i) => i / 3);
    writeNpy(p, data, [4, 3]);
    writeNpy(p, data, [4, 3]); // overwriting is fine
    assert.deepEqual(readdirSync(dir), ['a.npy']);
    const r = readNpy(p);
    assert.deepEqual(r.shape, [4, 3]);
    assert.deepEqual(r.data, data);
    assert.ok(!existsSync(`${p}.tmp-${process.pid}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NPY v2 and v3 headers, |/= prefixes, unaligned buffers', () => {
  const f4 = Buffer.from(Float32Array.of(1, 2, 3, 4).buffer);
  for (const version of [2, 3] as const) {
    const r = parseNpy(rawNpy('<f4', '(2, 2)', f4, { version }), 'v.npy');
    assert.deepEqual(r.shape, [2, 2]);
    assert.deepEqual(Array.from(r.data), [1, 2, 3, 4]);
  }
  assert.deepEqual(Array.from(parseNpy(rawNpy('=f4', '(4,)', f4), 'e.npy').data), [1, 2, 3, 4]);
  const h = Buffer.from(Uint16Array.of(0x3c00, 0x4000).buffer);
  assert.deepEqual(Array.from(parseNpy(rawNpy('|f2', '(2,)', h), 'p.npy').data), [1, 2]);
  // Same bytes at an odd offset inside a larger buffer.
  const whole = rawNpy('<f8', '(2,)', Buffer.from(Float64Array.of(0.5, -8).buffer));
  const shifted = Buffer.alloc(whole.length + 1);
  whole.copy(shifted, 1);
  assert.deepEqual(Array.from(parseNpy(shifted.subarray(1), 'u.npy').data), [0.5, -8]);
});

test('malformed NPY files are rejected with a DataFileError naming the file', () => {
  const f4 = Buffer.from(Float32Array.of(1, 2, 3, 4).buffer);
  assertDataError(() => parseNpy(Buffer.from('PK\x03\x04 not numpy at all'), 'bad_feat.npy'), 'bad_feat.npy', 'magic');
  assertDataError(() => parseNpy(rawNpy('<i4', '(4,)', f4), 'int_feat.npy'), 'int_feat.npy', "'<i4'", 'dtype');
  assertDataError(() => parseNpy(rawNpy('<f16', '(1,)', f4), 'q_feat.npy'), 'q_feat.npy', "'<f16'");
  assertDataError(() => parseNpy(rawNpy('<f4', '(2, 2)', f4, { fortran: true }), 'f_feat.npy'), 'f_feat.npy', 'fortran_order');
  assertDataError(() => parseNpy(rawNpy('<f4', '(3, 2)', f4), 't_feat.npy'), 't_feat.npy', 'truncated', '24', '16');
  assertDataError(() => parseNpy(rawNpy('>f4', '(4,)', f4), 'be_feat.npy'), 'be_feat.npy', 'big-endian');
  assertDataError(() => parseNpy(rawNpy("[('a', '<f4')]".replace(/'/g, '"'), '(4,)', f4), 's_feat.npy'), 's_feat.npy');
});
