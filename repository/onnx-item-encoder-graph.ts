/**
 * item_encoder.onnx: an item's modality feature vectors → a vector in the student's item space
 * (issue 18), built as ONNX protobuf in TypeScript like model.onnx and sequence.onnx. One input
 * per modality, named after it, float32[B, d_m]; each is z-scored per column inside the graph
 * ((x − mean) · invStd, the training catalog's statistics), the modalities are concatenated in the
 * bundle's order, then dense layers with ReLU between them (none after the last); output
 * `item_vector` float32[B, d]. Optionally (`outputNorm`) each output is rescaled to that norm.
 *
 * The `neighbors` design has no dense layer: each z-scored modality is scaled to norm 1/√M (M
 * modalities), so that the concatenation's dot product with a training item's row of `keys` (the
 * same normalisation, stored) is the mean of the per-modality cosines; the K most similar training
 * items (TopK) are weighted by softmax(sim / τ) and their student vectors (`values`, Gather)
 * summed; with `rescale`, the sum is rescaled to the weights' mean of those vectors' norms (a mean
 * of vectors is shorter than they are). Ops: MatMul → TopK → Softmax → Gather → weighted sum.
 *
 * Every weight is an initializer (the file is self-contained). `encodeReference` is the same
 * forward in plain TypeScript with float64 sums: the tests' reference and the trainer's evaluation.
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
  /** dense layers in order; ReLU between two layers, none after the last (empty with `neighbors`) */
  layers: DenseLayer[];
  /** when set, each output vector is rescaled to this norm (after the last layer) */
  outputNorm?: number;
  /** the neighbors design (no layers): the training items' normalised features and student vectors */
  neighbors?: NeighborTable;
}

/** The neighbors design's constants: a new item is the softmax(sim / τ)-weighted mean of its K most similar rows' values. */
export interface NeighborTable {
  /** [n, keyDim]: each training item's z-scored modalities, each scaled to norm 1/√M, concatenated (keyDim = Σ d_m) */
  keys: Float32Array;
  /** [n, outDim]: their student item vectors */
  values: Float32Array;
  n: number;
  keyDim: number;
  outDim: number;
  k: number;
  tau: number;
  /** rescale the weighted mean to the weighted mean of the neighbours' norms */
  rescale: boolean;
}

/** The per-modality norm floor of the neighbors design's normalisation: z / √(Σz² + ε). */
export const NEIGHBOR_NORM_EPS = 1e-12;

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
  let width = w.modalities.reduce((s, m) => s + m.dim, 0);
  if (w.outputNorm !== undefined && !(Number.isFinite(w.outputNorm) && w.outputNorm > 0)) throw new Error(`item encoder: outputNorm ${w.outputNorm} is not a positive number`);
  if (w.neighbors) {
    const nb = w.neighbors;
    if (w.layers.length !== 0) throw new Error('item encoder: the neighbors design has no dense layer');
    if (nb.keyDim !== width) throw new Error(`item encoder: neighbor keys have ${nb.keyDim} columns, the modalities ${width}`);
    if (!Number.isSafeInteger(nb.n) || nb.n < 1 || !Number.isSafeInteger(nb.outDim) || nb.outDim < 1) throw new Error(`item encoder: neighbor table of ${nb.n} × ${nb.outDim}`);
    if (nb.keys.length !== nb.n * nb.keyDim || nb.values.length !== nb.n * nb.outDim) throw new Error(`item encoder: neighbor table holds ${nb.keys.length} + ${nb.values.length} values, expected ${nb.n}×${nb.keyDim} + ${nb.n}×${nb.outDim}`);
    if (!Number.isSafeInteger(nb.k) || nb.k < 1 || nb.k > nb.n) throw new Error(`item encoder: neighbor k ${nb.k} outside 1..${nb.n}`);
    if (!(Number.isFinite(nb.tau) && nb.tau > 0)) throw new Error(`item encoder: neighbor tau ${nb.tau} is not a positive number`);
    finite(nb.keys, 'neighbor keys');
    finite(nb.values, 'neighbor values');
    if (dim !== undefined && nb.outDim !== dim) throw new Error(`item encoder: outputs ${nb.outDim} values, the bundle's dim is ${dim}`);
    return;
  }
  if (w.layers.length === 0) throw new Error('item encoder: no layer');
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
export const itemEncoderDim = (w: ItemEncoderWeights): number => (w.neighbors ? w.neighbors.outDim : w.layers[w.layers.length - 1].outDim);

/**
 * The neighbors design's key of each row: per modality (x − mean) · invStd scaled to norm 1/√M,
 * concatenated; features[k] is modality k's [n, d_m] rows. Returns [n, Σ d_m] (float64).
 */
export function neighborKeys(w: Pick<ItemEncoderWeights, 'modalities' | 'mean' | 'invStd'>, features: readonly Float32Array[], n: number): Float64Array {
  const width = w.modalities.reduce((s, m) => s + m.dim, 0);
  const x = new Float64Array(n * width);
  const scale = 1 / Math.sqrt(w.modalities.length);
  let off = 0;
  w.modalities.forEach((m, k) => {
    const f = features[k];
    if (f.length !== n * m.dim) throw new Error(`item encoder: ${m.name} has ${f.length} values, expected ${n}×${m.dim}`);
    for (let r = 0; r < n; r++) {
      let ss = 0;
      for (let c = 0; c < m.dim; c++) {
        const z = (f[r * m.dim + c] - w.mean[k][c]) * w.invStd[k][c];
        x[r * width + off + c] = z;
        ss += z * z;
      }
      const inv = scale / Math.sqrt(ss + NEIGHBOR_NORM_EPS);
      for (let c = 0; c < m.dim; c++) x[r * width + off + c] *= inv;
    }
    off += m.dim;
  });
  return x;
}

/**
 * The neighbors forward from keys already normalised ([n, keyDim] rows): top-k rows of the table by
 * dot product (ties: the lower row first, as ONNX TopK), softmax(sim / τ) weights, weighted sum of
 * the values, optionally rescaled to the weighted mean norm. Returns [n, outDim].
 */
export function encodeNeighborKeys(nb: NeighborTable, q: Float64Array | Float32Array, n: number): Float32Array {
  const { keyDim: D, outDim: d, k } = nb;
  const out = new Float32Array(n * d);
  const sims = new Float64Array(nb.n);
  const idx = new Int32Array(nb.n);
  const norms = new Float64Array(nb.n);
  for (let j = 0; j < nb.n; j++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += nb.values[j * d + c] ** 2;
    norms[j] = Math.sqrt(s);
  }
  const y = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nb.n; j++) {
      let s = 0;
      const ko = j * D;
      const qo = r * D;
      for (let c = 0; c < D; c++) s += q[qo + c] * nb.keys[ko + c];
      sims[j] = s;
      idx[j] = j;
    }
    // top-k by partial selection sort over an index array (k is small)
    for (let a = 0; a < k; a++) {
      let best = a;
      for (let b = a + 1; b < nb.n; b++) if (sims[idx[b]] > sims[idx[best]] || (sims[idx[b]] === sims[idx[best]] && idx[b] < idx[best])) best = b;
      const tmp = idx[a];
      idx[a] = idx[best];
      idx[best] = tmp;
    }
    weightedMean(nb, sims, idx, norms, y);
    for (let c = 0; c < d; c++) out[r * d + c] = y[c];
  }
  return out;
}

/** Σ softmax(sims[idx[0..k)] / τ) · values rows into y (rescaled with nb.rescale); shared by the reference and the trainer's grid. */
export function weightedMean(nb: Pick<NeighborTable, 'values' | 'outDim' | 'k' | 'tau' | 'rescale'>, sims: ArrayLike<number>, idx: ArrayLike<number>, norms: ArrayLike<number>, y: Float64Array): void {
  const { outDim: d, k, tau } = nb;
  const top = sims[idx[0]];
  let z = 0;
  const w = new Float64Array(k);
  for (let a = 0; a < k; a++) z += w[a] = Math.exp((sims[idx[a]] - top) / tau);
  y.fill(0);
  let target = 0;
  for (let a = 0; a < k; a++) {
    const wa = w[a] / z;
    const vo = idx[a] * d;
    for (let c = 0; c < d; c++) y[c] += wa * nb.values[vo + c];
    target += wa * norms[idx[a]];
  }
  if (nb.rescale) {
    let s = 0;
    for (let c = 0; c < d; c++) s += y[c] * y[c];
    const f = target / Math.sqrt(s + NEIGHBOR_NORM_EPS);
    for (let c = 0; c < d; c++) y[c] *= f;
  }
}

/** Each row of x ([n, d]) rescaled to norm `target` (in place). */
function rescaleRows(x: Float64Array, n: number, d: number, target: number): void {
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[r * d + c] ** 2;
    const f = target / Math.sqrt(s + NEIGHBOR_NORM_EPS);
    for (let c = 0; c < d; c++) x[r * d + c] *= f;
  }
}

/**
 * The forward in plain TypeScript (float64 sums): features[k] is modality k's [n, d_m] rows.
 * Returns [n, d].
 */
export function encodeReference(w: ItemEncoderWeights, features: readonly Float32Array[], n: number): Float32Array {
  if (w.neighbors) return encodeNeighborKeys(w.neighbors, neighborKeys(w, features, n), n);
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
  if (w.outputNorm !== undefined) rescaleRows(x, n, width, w.outputNorm);
  return Float32Array.from(x);
}

function valueInfo(name: string, dims: (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  });
}

const bytesOf = (a: Float32Array | BigInt64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

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
  const ints = (name: string, data: number[]) => {
    inits.push(onnx.TensorProto.create({ name, dataType: onnx.TensorProto.DataType.INT64, dims: [data.length], rawData: bytesOf(BigInt64Array.from(data.map(BigInt))) }));
    return name;
  };
  const intAttr = (name: string, i: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
  const nb = w.neighbors;
  const axis1 = nb || w.outputNorm !== undefined ? ints('enc.axis1', [1]) : '';
  /** x rescaled to norm `target` per row: x · target / √(Σx² + ε) */
  const toNorm = (x: string, target: string, out: string) => {
    const ss = op('ReduceSum', [op('Mul', [x, x], `${out}.sq`), axis1], `${out}.ss`, [intAttr('keepdims', 1)]);
    const norm = op('Sqrt', [op('Add', [ss, floats(`${out}.eps`, [], Float32Array.of(NEIGHBOR_NORM_EPS))], `${out}.ss_eps`)], `${out}.norm`);
    return op('Mul', [x, op('Div', [target, norm], `${out}.factor`)], out);
  };
  const normalized = w.modalities.map((m, k) => {
    const mean = floats(`enc.${k}.mean`, [m.dim], w.mean[k]);
    const inv = floats(`enc.${k}.inv_std`, [m.dim], w.invStd[k]);
    const z = op('Mul', [op('Sub', [m.name, mean], `enc.${k}.centered`), inv], `enc.${k}.z`);
    return nb ? toNorm(z, floats(`enc.${k}.key_norm`, [], Float32Array.of(1 / Math.sqrt(w.modalities.length))), `enc.${k}.key`) : z;
  });
  let h = normalized.length === 1 ? normalized[0] : op('Concat', normalized, 'enc.concat', [intAttr('axis', 1)]);
  if (nb) {
    // sims [B, n] → top-k → softmax(sim / τ) → Σ w · values[idx] (→ rescaled to Σ w · ‖values[idx]‖)
    const keysT = new Float32Array(nb.keyDim * nb.n);
    for (let j = 0; j < nb.n; j++) for (let c = 0; c < nb.keyDim; c++) keysT[c * nb.n + j] = nb.keys[j * nb.keyDim + c];
    const sims = op('MatMul', [h, floats('enc.nb.keys_t', [nb.keyDim, nb.n], keysT)], 'enc.nb.sims');
    nodes.push(onnx.NodeProto.create({ name: 'enc.nb.topk', opType: 'TopK', input: [sims, ints('enc.nb.k', [nb.k])], output: ['enc.nb.top_sims', 'enc.nb.top_idx'], attribute: [intAttr('axis', 1), intAttr('largest', 1), intAttr('sorted', 1)] }));
    const wts = op('Softmax', [op('Div', ['enc.nb.top_sims', floats('enc.nb.tau', [], Float32Array.of(nb.tau))], 'enc.nb.scaled')], 'enc.nb.weights', [intAttr('axis', 1)]);
    const gathered = op('Gather', [floats('enc.nb.values', [nb.n, nb.outDim], nb.values), 'enc.nb.top_idx'], 'enc.nb.gathered', [intAttr('axis', 0)]);
    const weighted = op('Mul', [gathered, op('Unsqueeze', [wts, ints('enc.axis2', [2])], 'enc.nb.weights3')], 'enc.nb.weighted');
    const mean = op('ReduceSum', [weighted, axis1], nb.rescale ? 'enc.nb.mean' : ITEM_ENCODER_OUTPUT, [intAttr('keepdims', 0)]);
    if (nb.rescale) {
      const norms = new Float32Array(nb.n);
      for (let j = 0; j < nb.n; j++) {
        let s = 0;
        for (let c = 0; c < nb.outDim; c++) s += nb.values[j * nb.outDim + c] ** 2;
        norms[j] = Math.sqrt(s);
      }
      const gn = op('Gather', [floats('enc.nb.norms', [nb.n], norms), 'enc.nb.top_idx'], 'enc.nb.top_norms', [intAttr('axis', 0)]);
      const target = op('ReduceSum', [op('Mul', [gn, wts], 'enc.nb.weighted_norms'), axis1], 'enc.nb.target', [intAttr('keepdims', 1)]);
      toNorm(mean, target, ITEM_ENCODER_OUTPUT);
    }
  }
  w.layers.forEach((l, i) => {
    const last = i === w.layers.length - 1;
    const wi = floats(`enc.l${i}.w`, [l.inDim, l.outDim], l.w);
    const bi = floats(`enc.l${i}.b`, [l.outDim], l.b);
    const out = last && w.outputNorm === undefined ? ITEM_ENCODER_OUTPUT : `enc.l${i}.linear`;
    const y = op('Add', [op('MatMul', [h, wi], `enc.l${i}.matmul`), bi], out);
    h = last ? y : op('Relu', [y], `enc.l${i}.relu`);
  });
  if (!nb && w.outputNorm !== undefined) toNorm(h, floats('enc.output_norm', [], Float32Array.of(w.outputNorm)), ITEM_ENCODER_OUTPUT);
  const d = itemEncoderDim(w);
  const graph = onnx.GraphProto.create({
    name: 'promptmm_item_encoder',
    docString: nb
      ? `item_vector = sum_topk softmax(sim/tau) * values (k ${nb.k}, tau ${nb.tau}${nb.rescale ? ', rescaled to the weighted mean norm' : ''}); sim = concat_m(unit((x_m - mean_m) * inv_std_m) / sqrt(M)) . keys`
      : `item_vector = MLP(concat_m((x_m - mean_m) * inv_std_m)); ReLU between layers${w.outputNorm !== undefined ? `; rescaled to norm ${w.outputNorm}` : ''}`,
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
