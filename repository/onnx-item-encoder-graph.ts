/**
 * item_encoder.onnx: an item's modality feature vectors → a vector in the student's item space
 * (issue 18), built as ONNX protobuf in TypeScript like model.onnx and sequence.onnx. One input
 * per modality, named after it, float32[B, d_m]; each is z-scored per column inside the graph
 * ((x − mean) · invStd, the training catalog's statistics), the modalities are concatenated in the
 * bundle's order, then dense layers with ReLU between them (none after the last); output
 * `item_vector` float32[B, d]. Every weight is an initializer (the file is self-contained).
 * `encodeReference` is the same forward in plain TypeScript with float64 sums: the tests'
 * reference and the trainer's evaluation.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const ITEM_ENCODER_OPSET = 17;
export const ITEM_ENCODER_OUTPUT = 'item_vector';

export interface ItemEncoderModality {
  name: string;
  dim: number;
}

export interface DenseLayer {
  /** [inDim, outDim], row-major */
  w: Float32Array;
  /** [outDim] */
  b: Float32Array;
  inDim: number;
  outDim: number;
}

/** Everything the encoder computes with; what the trainer fits and the export writes. */
export interface ItemEncoderWeights {
  modalities: ItemEncoderModality[];
  /** per modality, the column means and 1 / standard deviation (z-score), [d_m] each */
  mean: Float32Array[];
  invStd: Float32Array[];
  /** dense layers in order; ReLU between two layers, none after the last */
  layers: DenseLayer[];
}

/** Throws naming the first inconsistency (shapes, non-finite values, duplicate or empty names). */
export function checkItemEncoderWeights(w: ItemEncoderWeights, dim?: number): void {
  if (w.modalities.length === 0) throw new Error('item encoder: no modality');
  const seen = new Set<string>();
  for (const m of w.modalities) {
    if (typeof m.name !== 'string' || m.name.length === 0) throw new Error('item encoder: a modality without a name');
    if (seen.has(m.name)) throw new Error(`item encoder: modality "${m.name}" appears twice`);
    if (m.name === ITEM_ENCODER_OUTPUT) throw new Error(`item encoder: a modality cannot be named "${ITEM_ENCODER_OUTPUT}" (the output's name)`);
    seen.add(m.name);
    if (!Number.isSafeInteger(m.dim) || m.dim < 1) throw new Error(`item encoder: modality "${m.name}" has dim ${m.dim}`);
  }
  if (w.mean.length !== w.modalities.length || w.invStd.length !== w.modalities.length) throw new Error('item encoder: one mean and one invStd per modality expected');
  w.modalities.forEach((m, k) => {
    if (w.mean[k].length !== m.dim || w.invStd[k].length !== m.dim) throw new Error(`item encoder: normalization of "${m.name}" has ${w.mean[k].length}/${w.invStd[k].length} columns, expected ${m.dim}`);
    finite(w.mean[k], `mean of ${m.name}`);
    finite(w.invStd[k], `invStd of ${m.name}`);
  });
  if (w.layers.length === 0) throw new Error('item encoder: no layer');
  let width = w.modalities.reduce((s, m) => s + m.dim, 0);
  w.layers.forEach((l, i) => {
    if (l.inDim !== width) throw new Error(`item encoder: layer ${i} takes ${l.inDim} inputs, the previous width is ${width}`);
    if (l.w.length !== l.inDim * l.outDim || l.b.length !== l.outDim) throw new Error(`item encoder: layer ${i} holds ${l.w.length} + ${l.b.length} values, expected ${l.inDim}×${l.outDim} + ${l.outDim}`);
    finite(l.w, `layer ${i} weights`);
    finite(l.b, `layer ${i} bias`);
    width = l.outDim;
  });
  if (dim !== undefined && width !== dim) throw new Error(`item encoder: outputs ${width} values, the bundle's dim is ${dim}`);
}

function finite(a: Float32Array, what: string): void {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new Error(`item encoder: ${what} has a non-finite value at ${i}`);
}

/** The output width of the encoder. */
export const itemEncoderDim = (w: ItemEncoderWeights): number => w.layers[w.layers.length - 1].outDim;

/**
 * The forward in plain TypeScript (float64 sums): features[k] is modality k's [n, d_m] rows.
 * Returns [n, d].
 */
export function encodeReference(w: ItemEncoderWeights, features: readonly Float32Array[], n: number): Float32Array {
  const width0 = w.modalities.reduce((s, m) => s + m.dim, 0);
  let x = new Float64Array(n * width0);
  let off = 0;
  w.modalities.forEach((m, k) => {
    const f = features[k];
    if (f.length !== n * m.dim) throw new Error(`item encoder: ${m.name} has ${f.length} values, expected ${n}×${m.dim}`);
    for (let r = 0; r < n; r++) for (let c = 0; c < m.dim; c++) x[r * width0 + off + c] = (f[r * m.dim + c] - w.mean[k][c]) * w.invStd[k][c];
    off += m.dim;
  });
  let width = width0;
  w.layers.forEach((l, i) => {
    const y = new Float64Array(n * l.outDim);
    for (let r = 0; r < n; r++) {
      const yr = r * l.outDim;
      for (let o = 0; o < l.outDim; o++) y[yr + o] = l.b[o];
      for (let a = 0; a < width; a++) {
        const v = x[r * width + a];
        if (v === 0) continue;
        const wr = a * l.outDim;
        for (let o = 0; o < l.outDim; o++) y[yr + o] += v * l.w[wr + o];
      }
      if (i < w.layers.length - 1) for (let o = 0; o < l.outDim; o++) if (y[yr + o] < 0) y[yr + o] = 0;
    }
    x = y;
    width = l.outDim;
  });
  return Float32Array.from(x);
}

function valueInfo(name: string, dims: (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  });
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The encoder as a serialized ModelProto (throws on inconsistent weights, see checkItemEncoderWeights). */
export function buildItemEncoderModel(w: ItemEncoderWeights): Uint8Array {
  checkItemEncoderWeights(w);
  const inits: InstanceType<typeof onnx.TensorProto>[] = [];
  const nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  const floats = (name: string, dims: number[], data: Float32Array) => {
    inits.push(onnx.TensorProto.create({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims, rawData: bytesOf(data) }));
    return name;
  };
  const op = (opType: string, input: string[], output: string, attribute: InstanceType<typeof onnx.AttributeProto>[] = []) => {
    nodes.push(onnx.NodeProto.create({ name: output, opType, input, output: [output], attribute }));
    return output;
  };
  const normalized = w.modalities.map((m, k) => {
    const mean = floats(`enc.${k}.mean`, [m.dim], w.mean[k]);
    const inv = floats(`enc.${k}.inv_std`, [m.dim], w.invStd[k]);
    return op('Mul', [op('Sub', [m.name, mean], `enc.${k}.centered`), inv], `enc.${k}.z`);
  });
  let h = normalized.length === 1 ? normalized[0] : op('Concat', normalized, 'enc.concat', [onnx.AttributeProto.create({ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 })]);
  w.layers.forEach((l, i) => {
    const last = i === w.layers.length - 1;
    const wi = floats(`enc.l${i}.w`, [l.inDim, l.outDim], l.w);
    const bi = floats(`enc.l${i}.b`, [l.outDim], l.b);
    const y = op('Add', [op('MatMul', [h, wi], `enc.l${i}.matmul`), bi], last ? ITEM_ENCODER_OUTPUT : `enc.l${i}.linear`);
    h = last ? y : op('Relu', [y], `enc.l${i}.relu`);
  });
  const d = itemEncoderDim(w);
  const graph = onnx.GraphProto.create({
    name: 'promptmm_item_encoder',
    docString: 'item_vector = MLP(concat_m((x_m - mean_m) * inv_std_m)); ReLU between layers',
    input: w.modalities.map((m) => valueInfo(m.name, ['batch', m.dim])),
    initializer: inits,
    node: nodes,
    output: [valueInfo(ITEM_ENCODER_OUTPUT, ['batch', d])],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: ITEM_ENCODER_OPSET }], producerName: 'promptmm', producerVersion: '1', graph });
  return onnx.ModelProto.encode(model).finish();
}

/** What the bundle check reads back from an item_encoder.onnx: input names and widths, output width. */
export function itemEncoderSignature(bytes: Uint8Array): { inputs: { name: string; dim: number | null }[]; outputs: { name: string; dim: number | null }[] } {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph;
  if (!g) throw new Error('no graph');
  const sig = (vs: onnxProto.onnx.IValueInfoProto[] | null | undefined) =>
    (vs ?? []).map((v) => {
      const dims = v.type?.tensorType?.shape?.dim ?? [];
      const last = dims.length === 2 ? dims[1] : null;
      const dv = last?.dimValue;
      return { name: v.name ?? '', dim: dims.length === 2 && dv !== undefined && dv !== null ? Number(dv.toString()) : null };
    });
  return { inputs: sig(g.input), outputs: sig(g.output) };
}
