/**
 * Adam whose update is one fused kernel per variable (`PromptmmAdam`: a single SIMD pass
 * over x, g, m, v on wasm) instead of tfjs's ~10 elementwise passes. Same update rule and
 * defaults as tf.train.adam (β1 0.9, β2 0.999, ε 1e-7, bias correction), and the same
 * saved-state layout (`iter`, then every `<var>/m`, then every `<var>/v`).
 */
import { tf } from './backend.js';
import { ADAM } from './adam-kernel.js';

export interface OptimizerWeight {
  name: string;
  tensor: tf.Tensor;
}

export class FusedAdam {
  private step = 0;
  private readonly moments = new Map<tf.Variable, { m: tf.Tensor; v: tf.Tensor }>();

  constructor(
    readonly lr: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
  ) {}

  get iterations(): number {
    return this.step;
  }

  /** Computes f's gradients for `vars`, applies one step (a variable in `lrScale` at that multiple of lr), returns f's value (caller disposes). */
  minimize(f: () => tf.Scalar, vars: tf.Variable[], lrScale?: ReadonlyMap<tf.Variable, number>): tf.Scalar {
    const { value, grads } = tf.variableGrads(f, vars);
    this.step++;
    for (const x of vars) {
      const g = grads[x.name];
      if (!g) continue;
      const st = this.state(x);
      const [nx, nm, nv] = tf.engine().runKernel(ADAM, { x, g, m: st.m, v: st.v }, {
        lr: this.lr * (lrScale?.get(x) ?? 1),
        beta1: this.beta1,
        beta2: this.beta2,
        epsilon: this.epsilon,
        step: this.step,
      }) as tf.Tensor[];
      x.assign(nx);
      tf.dispose([nx, st.m, st.v, g]);
      st.m = nm;
      st.v = nv;
    }
    return value;
  }

  private state(x: tf.Variable): { m: tf.Tensor; v: tf.Tensor } {
    let st = this.moments.get(x);
    if (!st) {
      st = { m: tf.zerosLike(x), v: tf.zerosLike(x) };
      this.moments.set(x, st);
    }
    return st;
  }

  /** `iter`, then the first moments, then the second moments, in `vars` order. */
  getWeights(vars: tf.Variable[]): OptimizerWeight[] {
    const st = vars.map((x) => this.state(x));
    return [
      { name: 'iter', tensor: tf.scalar(this.step, 'int32') },
      ...vars.map((x, i) => ({ name: `${x.name}/m`, tensor: st[i].m })),
      ...vars.map((x, i) => ({ name: `${x.name}/v`, tensor: st[i].v })),
    ];
  }

  setState(step: number, vars: tf.Variable[], m: Float32Array[], v: Float32Array[]): void {
    this.step = step;
    vars.forEach((x, i) => {
      const old = this.moments.get(x);
      if (old) tf.dispose([old.m, old.v]);
      this.moments.set(x, { m: tf.tensor(m[i], x.shape), v: tf.tensor(v[i], x.shape) });
    });
  }

  dispose(): void {
    for (const st of this.moments.values()) tf.dispose([st.m, st.v]);
    this.moments.clear();
  }
}
