// The dashboard's charts, drawn by Chart.js. Each canvas carries what its chart holds (labels and datasets,
// read back from the chart) in `data-chart`, so a reader or a test can check the numbers behind the pixels.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from "chart.js";
import type { ArmOutcome, ConfusionSegment } from "../../../../generated/ts/tutorstream/v1/analytics_service_pb.js";
import { clock } from "../format.js";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Legend,
  Tooltip,
);

const SIGNAL_COLOURS = { rewatches: "#3157d5", pauses: "#b7791f", hints: "#0f8a80", wrongAnswers: "#c53030" };

/** A colour from pale (baseline and below) to deep red (three times the baseline or more). */
export function heat(score: number): string {
  const strength = Math.max(0, Math.min(1, (score - 0.5) / 2.5));
  const lightness = 96 - strength * 52;
  return `hsl(${8 - strength * 8}, ${60 + strength * 30}%, ${lightness}%)`;
}

function describe(chart: Chart, canvas: HTMLCanvasElement): void {
  canvas.dataset.chart = JSON.stringify({
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((dataset) => ({ label: dataset.label, data: dataset.data })),
  });
}

/** Replaces whatever chart the canvas had. */
function draw(canvas: HTMLCanvasElement, config: ChartConfiguration): Chart {
  Chart.getChart(canvas)?.destroy();
  const chart = new Chart(canvas, config);
  describe(chart, canvas);
  return chart;
}

export function segmentLabel(segment: ConfusionSegment): string {
  return clock(segment.range?.startSeconds ?? 0);
}

/** One bar per segment, as tall and as hot as its confusion score; a click picks the segment. */
export function drawHeatStrip(canvas: HTMLCanvasElement, segments: ConfusionSegment[], pick: (index: number) => void): Chart {
  return draw(canvas, {
    type: "bar",
    data: {
      labels: segments.map(segmentLabel),
      datasets: [
        {
          label: "confusion (1 = this lecture's baseline)",
          data: segments.map((segment) => segment.score),
          backgroundColor: segments.map((segment) => heat(segment.score)),
          borderColor: "#c9ced8",
          borderWidth: 1,
          barPercentage: 1,
          categoryPercentage: 1,
        },
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      onClick: (_event, elements) => {
        const hit = elements[0];
        if (hit !== undefined) {
          pick(hit.index);
        }
      },
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "score" } } },
    },
  });
}

/** Rewatches, pauses, hints and wrong answers per segment, stacked. */
export function drawSignals(canvas: HTMLCanvasElement, segments: ConfusionSegment[], pick: (index: number) => void): Chart {
  const series = (label: string, colour: string, value: (segment: ConfusionSegment) => bigint) => ({
    label,
    data: segments.map((segment) => Number(value(segment))),
    backgroundColor: colour,
    stack: "signals",
  });
  return draw(canvas, {
    type: "bar",
    data: {
      labels: segments.map(segmentLabel),
      datasets: [
        series("rewatches", SIGNAL_COLOURS.rewatches, (segment) => segment.rewatches),
        series("pauses", SIGNAL_COLOURS.pauses, (segment) => segment.pauses),
        series("hints", SIGNAL_COLOURS.hints, (segment) => segment.hints),
        series("wrong answers", SIGNAL_COLOURS.wrongAnswers, (segment) => segment.wrongAnswers),
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      onClick: (_event, elements) => {
        const hit = elements[0];
        if (hit !== undefined) {
          pick(hit.index);
        }
      },
      plugins: { legend: { position: "bottom" } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: "events" } } },
    },
  });
}

export function drawRatings(canvas: HTMLCanvasElement, counts: number[]): Chart {
  return draw(canvas, {
    type: "bar",
    data: {
      labels: counts.map((_, index) => `${index + 1} ★`),
      datasets: [{ label: "ratings", data: counts, backgroundColor: "#3157d5" }],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
}

/** Each arm's estimate (a point) inside its 95 % confidence interval (a floating bar); NaN stays empty. */
export function drawArms(canvas: HTMLCanvasElement, arms: ArmOutcome[], percent: boolean): Chart {
  const scale = percent ? 100 : 1;
  const finite = (value: number): number | null => (Number.isFinite(value) ? value * scale : null);
  return draw(canvas, {
    type: "bar",
    data: {
      labels: arms.map((arm) => `${arm.arm} (n=${arm.n})`),
      datasets: [
        {
          type: "bar",
          label: "95 % confidence interval",
          data: arms.map((arm) => {
            const low = finite(arm.ciLow);
            const high = finite(arm.ciHigh);
            return low === null || high === null ? null : [low, high];
          }),
          backgroundColor: "rgba(49, 87, 213, 0.25)",
          borderColor: "#3157d5",
          borderWidth: 1,
          barPercentage: 0.4,
        },
        {
          type: "line",
          label: "estimate",
          data: arms.map((arm) => finite(arm.estimate)),
          showLine: false,
          pointRadius: 6,
          pointStyle: "rectRot",
          backgroundColor: "#1d2330",
          borderColor: "#1d2330",
        },
      ],
    },
    options: {
      indexAxis: "x",
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { position: "bottom" } },
      scales: { y: { title: { display: true, text: percent ? "%" : "per student" } } },
    },
  });
}
