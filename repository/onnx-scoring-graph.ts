/**
 * The exact scoring graph, built as ONNX protobuf in TypeScript: user vectors [B, d] and k
 * → Gemm against the item table (an initializer, so model.onnx is self-contained) → TopK.
 * TopK returns the k best scores per row, sorted, ties broken by the lower item row (the ONNX
 * spec's rule), which is what the tests' brute force does too.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const ONNX_OPSET = 17;
export const ONNX_INPUTS = ['users', 'k'];
export const ONNX_OUTPUTS = ['scores', 'items'];

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const ATTR_INT = onnx.AttributeProto.AttributeType.INT;

function valueInfo(name: string, elemType: number, dims: (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

function intAttr(name: string, i: number): InstanceType<typeof onnx.AttributeProto> {
  return onnx.AttributeProto.create({ name, type: ATTR_INT, i });
}

/** Serialized ModelProto scoring `users · itemsᵀ` and returning the top k of each row. */
export function buildScoringModel(items: Float32Array, nItems: number, dim: number): Uint8Array {
  if (items.length !== nItems * dim) throw new RangeError(`item table has ${items.length} values, expected ${nItems}×${dim}`);
  const graph = onnx.GraphProto.create({
    name: 'promptmm_topk',
    docString: 'scores = users · itemsᵀ; (scores, items) = TopK(scores, k)',
    input: [valueInfo('users', FLOAT, ['batch', dim]), valueInfo('k', INT64, [1])],
    initializer: [
      onnx.TensorProto.create({
        name: 'item_table',
        dataType: FLOAT,
        dims: [nItems, dim],
        rawData: new Uint8Array(items.buffer, items.byteOffset, items.byteLength),
      }),
    ],
    node: [
      onnx.NodeProto.create({ name: 'score', opType: 'Gemm', input: ['users', 'item_table'], output: ['all_scores'], attribute: [intAttr('transB', 1)] }),
      onnx.NodeProto.create({
        name: 'topk',
        opType: 'TopK',
        input: ['all_scores', 'k'],
        output: ['scores', 'items'],
        attribute: [intAttr('axis', -1), intAttr('largest', 1), intAttr('sorted', 1)],
      }),
    ],
    output: [valueInfo('scores', FLOAT, ['batch', 'k']), valueInfo('items', INT64, ['batch', 'k'])],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'promptmm',
    producerVersion: '1',
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}
