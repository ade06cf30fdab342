/** Training curves as SVG (vega-lite compiled and rendered headless by vega). */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface EpochRecord {
  epoch: number;
  loss: number;
  seconds: number;
  /** mean of each loss term over the epoch's batches (BPR, KD terms, …) */
  terms?: Record<string, number>;
  /** validation metrics, present on evaluated epochs */
  val?: Record<string, number>;
}

/** Two panels: training loss per epoch; validation metrics per evaluated epoch. */
export async function trainingCurveSvg(curve: EpochRecord[], title: string): Promise<string> {
  const loss = curve.map((r) => ({ epoch: r.epoch, value: r.loss }));
  const metrics = curve.flatMap((r) =>
    Object.entries(r.val ?? {})
      .filter(([k]) => k.includes('@'))
      .map(([k, v]) => ({ epoch: r.epoch, metric: k, value: v })),
  );
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    vconcat: [
      {
        width: 520,
        height: 180,
        data: { values: loss },
        mark: { type: 'line', point: false },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
          y: { field: 'value', type: 'quantitative', title: 'training loss', scale: { zero: false } },
        },
      },
      {
        width: 520,
        height: 180,
        data: { values: metrics },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
          y: { field: 'value', type: 'quantitative', title: 'validation metric' },
          color: { field: 'metric', type: 'nominal', title: 'metric' },
        },
      },
    ],
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One line per series over x (e.g. the CKD teacher's modality weights per epoch). */
export async function seriesSvg(points: { x: number; series: string; y: number }[], labels: { title: string; x: string; y: string; series: string }): Promise<string> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: labels.title,
    width: 520,
    height: 220,
    data: { values: points },
    mark: { type: 'line', point: false },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: labels.x },
      y: { field: 'y', type: 'quantitative', title: labels.y, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: labels.series },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
