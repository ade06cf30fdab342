/**
 * sequence.onnx: the SASRec encoder (issue 19's contract) as an ONNX graph built in TypeScript,
 * like model.onnx. Input `items` int64[B, L], L ≤ maxLen, each row left-padded with the padding
 * row nItems (the most recent item in column L-1); output `user` float32[B, dim], the final
 * layer norm of the last position's hidden state. Positions are right-aligned (column j takes
 * pos_emb[maxLen - L + j]), so a batch trimmed of shared left padding gives the same vectors: the
 * server runs each batch at the width of its longest sequence. Every weight is an initializer.
 */
import onnxProto from 'onnx-proto';
import { DEFAULT_LN_EPS, sequenceWeights, type SequenceArrays, type SequenceShape } from './sasrec-weights.js';

const { onnx } = onnxProto;

/** LayerNormalization is an ONNX operator from opset 17 on. */
export const SEQUENCE_OPSET = 17;
export const SEQUENCE_INPUTS = ['items'];
export const SEQUENCE_OUTPUTS = ['user'];

const T = onnx.TensorProto.DataType;
const A = onnx.AttributeProto.AttributeType;
type Attr = InstanceType<typeof onnx.AttributeProto>;

const int = (name: string, i: number): Attr => onnx.AttributeProto.create({ name, type: A.INT, i });
const ints = (name: string, v: number[]): Attr => onnx.AttributeProto.create({ name, type: A.INTS, ints: v });
const float = (name: string, f: number): Attr => onnx.AttributeProto.create({ name, type: A.FLOAT, f });

function valueInfo(name: string, elemType: number, dims: (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  });
}

const bytesOf = (a: Float32Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Nodes and initializers, each output named after its node. */
class Graph {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly inits: InstanceType<typeof onnx.TensorProto>[] = [];
  private n = 0;

  floats(name: string, dims: number[], data: Float32Array): string {
    this.inits.push(onnx.TensorProto.create({ name, dataType: T.FLOAT, dims, rawData: bytesOf(data) }));
    return name;
  }

  int64s(name: string, dims: number[], values: number[]): string {
    this.inits.push(onnx.TensorProto.create({ name, dataType: T.INT64, dims, rawData: bytesOf(BigInt64Array.from(values.map(BigInt))) }));
    return name;
  }

  scalar(name: string, x: number): string {
    return this.floats(name, [], Float32Array.of(x));
  }

  op(opType: string, input: string[], attribute: Attr[] = [], output?: string): string {
    const out = output ?? `${opType.toLowerCase()}_${this.n++}`;
    this.nodes.push(onnx.NodeProto.create({ name: out, opType, input, output: [out], attribute }));
    return out;
  }
}

/**
 * The encoder as a serialized ModelProto. `arrays` are the checkpoint's (names of
 * repository/sasrec-weights.ts; others ignored); throws naming a missing or misshaped weight.
 */
export function buildSequenceModel(arrays: SequenceArrays, shape: SequenceShape): Uint8Array {
  const w = sequenceWeights(arrays, shape);
  const { dim: d, heads: H, maxLen, nItems, ffDim } = shape;
  const dh = d / H;
  const eps = shape.lnEps ?? DEFAULT_LN_EPS;
  const g = new Graph();
  const weight = (name: string, dims: number[]) => g.floats(name, dims, w.get(name)!);

  const itemEmb = weight('seq.item_emb', [nItems + 1, d]);
  const posEmb = weight('seq.pos_emb', [maxLen, d]);
  // Lower-triangular (query j may see key i ≤ j) and identity (a query always sees itself), sliced to [L, L].
  const tri = new Float32Array(maxLen * maxLen);
  const eye = new Float32Array(maxLen * maxLen);
  for (let j = 0; j < maxLen; j++) {
    eye[j * maxLen + j] = 1;
    for (let i = 0; i <= j; i++) tri[j * maxLen + i] = 1;
  }
  g.floats('causal', [maxLen, maxLen], tri);
  g.floats('self', [maxLen, maxLen], eye);
  g.int64s('zero2', [2], [0, 0]);
  g.int64s('axes01', [2], [0, 1]);
  g.int64s('axis0', [1], [0]);
  g.int64s('axis1', [1], [1]);
  g.int64s('axis2', [1], [2]);
  g.int64s('from_last', [1], [-1]);
  g.int64s('max_len', [1], [maxLen]);
  g.int64s('pad_row', [], [nItems]);
  g.int64s('last', [], [-1]);
  g.int64s('heads_shape', [4], [0, 0, H, dh]);
  g.int64s('merge_shape', [3], [0, 0, d]);
  g.int64s('unsq1', [1], [1]);
  g.int64s('unsq2', [1], [2]);
  g.scalar('sqrt_dim', Math.sqrt(d));
  g.scalar('inv_sqrt_dh', 1 / Math.sqrt(dh));
  g.scalar('big', 1e9);
  g.scalar('half', 0.5);
  g.scalar('one', 1);
  g.scalar('inv_sqrt2', Math.SQRT1_2);

  // Width L of this batch, and the last L positions (right-aligned).
  const width = g.op('Shape', ['items'], [int('start', 1), int('end', 2)], 'width');
  const pos = g.op('Slice', [posEmb, g.op('Neg', [width]), 'max_len', 'axis0'], [], 'positions');
  let h = g.op('Add', [g.op('Mul', [g.op('Gather', [itemEmb, 'items']), 'sqrt_dim']), pos]);
  // Padding columns: zero hidden state, and never attended to (except by themselves).
  const keep = g.op('Cast', [g.op('Not', [g.op('Equal', ['items', 'pad_row'])])], [int('to', T.FLOAT)], 'keep');
  h = g.op('Mul', [h, g.op('Unsqueeze', [keep, 'unsq2'])], [], 'h_in');
  const wh = g.op('Concat', [width, width], [int('axis', 0)]);
  const causal = g.op('Slice', ['causal', 'zero2', wh, 'axes01']);
  const self = g.op('Slice', ['self', 'zero2', wh, 'axes01']);
  const allowed = g.op('Max', [g.op('Mul', [causal, g.op('Unsqueeze', [keep, 'unsq1'])]), self]); // [B, L, L]
  // 0 where allowed, -1e9 elsewhere: exp underflows to exactly 0 after the softmax's max shift.
  const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [allowed, 'one']), 'big']), 'unsq1'], [], 'attn_bias'); // [B, 1, L, L]

  const ln = (x: string, p: string) => g.op('LayerNormalization', [x, weight(`${p}.g`, [d]), weight(`${p}.b`, [d])], [int('axis', -1), float('epsilon', eps)]);
  const linear = (x: string, wName: string, bName: string, din: number, dout: number) => g.op('Add', [g.op('MatMul', [x, weight(wName, [din, dout])]), weight(bName, [dout])]);
  const split = (x: string, perm: number[]) => g.op('Transpose', [g.op('Reshape', [x, 'heads_shape'])], [ints('perm', perm)]);

  // Only the last position's output is read: the last block computes its query, attention row
  // and feed-forward for that position alone (keys and values still over all L), a third less work.
  const lastOnly = (x: string, axis: string) => g.op('Slice', [x, 'from_last', 'max_len', axis]);
  for (let k = 0; k < shape.blocks; k++) {
    const p = `seq.b${k}`;
    const final = k === shape.blocks - 1;
    const x = ln(h, `${p}.ln1`);
    const q = split(linear(final ? lastOnly(x, 'axis1') : x, `${p}.attn.wq`, `${p}.attn.bq`, d, d), [0, 2, 1, 3]); // [B, H, L or 1, dh]
    const kt = split(linear(x, `${p}.attn.wk`, `${p}.attn.bk`, d, d), [0, 2, 3, 1]); // [B, H, dh, L]
    const v = split(linear(x, `${p}.attn.wv`, `${p}.attn.bv`, d, d), [0, 2, 1, 3]);
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kt]), 'inv_sqrt_dh']), final ? lastOnly(bias, 'axis2') : bias]);
    const att = g.op('MatMul', [g.op('Softmax', [scores], [int('axis', -1)]), v]);
    const merged = g.op('Reshape', [g.op('Transpose', [att], [ints('perm', [0, 2, 1, 3])]), 'merge_shape']);
    h = g.op('Add', [final ? lastOnly(h, 'axis1') : h, linear(merged, `${p}.attn.wo`, `${p}.attn.bo`, d, d)]);
    const f = linear(ln(h, `${p}.ln2`), `${p}.ffn.w1`, `${p}.ffn.b1`, d, ffDim);
    // GELU, the erf form: f · ½ · (1 + erf(f / √2)).
    const gelu = g.op('Mul', [g.op('Mul', [f, 'half']), g.op('Add', [g.op('Erf', [g.op('Mul', [f, 'inv_sqrt2'])]), 'one'])]);
    h = g.op('Add', [h, linear(gelu, `${p}.ffn.w2`, `${p}.ffn.b2`, ffDim, d)]);
  }
  // [B, 1, d] → [B, d]; the final layer norm.
  const lastH = g.op('Gather', [h, 'last'], [int('axis', 1)]);
  g.op('LayerNormalization', [lastH, weight('seq.ln.g', [d]), weight('seq.ln.b', [d])], [int('axis', -1), float('epsilon', eps)], 'user');

  const graph = onnx.GraphProto.create({
    name: 'promptmm_sasrec',
    docString: 'user = LayerNorm(SASRec(items))[:, -1]; items left-padded with row nItems, positions right-aligned',
    input: [valueInfo('items', T.INT64, ['batch', 'width'])],
    initializer: g.inits,
    node: g.nodes,
    output: [valueInfo('user', T.FLOAT, ['batch', d])],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: SEQUENCE_OPSET }], producerName: 'promptmm', producerVersion: '1', graph });
  return onnx.ModelProto.encode(model).finish();
}
