/**
 * Issue 18: how a served version places an item it was not exported with (PUT /items) in the
 * student's item space, from the item's modality features. The bundle's ONNX item encoder
 * (item-encoder.ts, `item_encoder.onnx`) implements it; tests use a fixed linear map
 * (test-support/fake-embedder.ts). A version without one has `embedder: null`, and PUT /items
 * answers that this bundle has no item encoder.
 */
export interface ItemEmbedder {
  /** modality name → feature dimension, in the bundle's order */
  readonly modalities: readonly { name: string; dim: number }[];
  /** one vector (length = the bundle's dim) per item; features already validated */
  embed(items: readonly Record<string, Float32Array>[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}
