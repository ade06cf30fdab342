export interface ItemEmbedder {
  /** modality name → feature dimension, in the bundle's order */
  readonly modalities: readonly { name: string; dim: number }[];
  /** one vector (length = the bundle's dim) per item; features already validated */
  embed(items: readonly Record<string, Float32Array>[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}
