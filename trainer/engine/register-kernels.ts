/**
 * Registers the kernels the project adds to tfjs (segment sum, gather rows, CSR × dense, the fused
 * propagation, ListKD's row dots, fused Adam) and their gradients on the backends that lack them, and patches wasm's slow ones.
 */
import * as tf from '@tensorflow/tfjs';
import { SEGMENT_SUM, segmentSumKernel } from './segment-sum.js';
import { GATHER_ROWS, gatherRowsGradient, gatherRowsKernel } from './gather-rows.js';
import { CSR_MATMUL, csrMatMulGradient, csrMatMulKernel } from './csr-matmul.js';
import { ADAM, adamKernel } from './adam-kernel.js';
import { patchWasmKernels } from './wasm-patches.js';
import { registerPropagate } from './propagate.js';
import { registerRowDots } from './row-dots.js';

let registered = false;

/** Registers the kernels and gradients; idempotent. Call after importing a backend package. */
export function registerProjectKernels(): void {
  if (registered) return;
  registered = true;
  patchWasmKernels();
  for (const backendName of ['wasm', 'cpu']) {
    // The cpu backend ships a slow UnsortedSegmentSum; replace it (wasm has none).
    if (tf.getKernel(SEGMENT_SUM, backendName)) tf.unregisterKernel(SEGMENT_SUM, backendName);
    tf.registerKernel({ kernelName: SEGMENT_SUM, backendName, kernelFunc: segmentSumKernel as tf.KernelFunc });
  }
  for (const backendName of ['wasm', 'cpu', 'tensorflow']) {
    tf.registerKernel({ kernelName: CSR_MATMUL, backendName, kernelFunc: csrMatMulKernel as tf.KernelFunc });
    tf.registerKernel({ kernelName: GATHER_ROWS, backendName, kernelFunc: gatherRowsKernel as tf.KernelFunc });
    tf.registerKernel({ kernelName: ADAM, backendName, kernelFunc: adamKernel as unknown as tf.KernelFunc });
  }
  tf.registerGradient(gatherRowsGradient);
  tf.registerGradient(csrMatMulGradient);
  registerPropagate();
  registerRowDots(['wasm', 'cpu', 'tensorflow']);
}
