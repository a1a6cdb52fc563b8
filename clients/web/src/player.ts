// The lecture player. The demo course ships captions but no video files, so this is a simulated timeline:
// a clock that advances at the playback rate, shows the caption of the moment, and emits the same xAPI-style
// events (played, paused, seeked, rate changed, heartbeat, completed) a real <video> element would.
import { VideoEventType } from "../../../generated/ts/tutorstream/v1/agent_service_pb.js";
import { button, clear, h } from "./dom.js";
import { clock } from "./format.js";

export interface PlayerEvent {
  type: VideoEventType;
  position: number;
  from?: number;
  to?: number;
  rate?: number;
}

export interface Caption {
  start: number;
  end: number;
  text: string;
}

const TICK_MS = 200;
const HEARTBEAT_MS = 10_000;
const RATES = [0.75, 1, 1.25, 1.5, 2];
export const SKIP_BACK_SECONDS = 10;

export class SimulatedPlayer {
  position = 0;
  duration = 0;
  rate = 1;
  playing = false;
  private captions: Caption[] = [];
  private timer: number | undefined;
  private lastTick = 0;
  private sinceHeartbeat = 0;
  private readonly timeListeners: ((position: number) => void)[] = [];
  private readonly eventListeners: ((event: PlayerEvent) => void)[] = [];
  private readonly screen: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly titleLine: HTMLElement;
  private readonly playButton: HTMLButtonElement;
  private readonly seekBar: HTMLInputElement;
  private readonly timeLabel: HTMLElement;
  private readonly rateSelect: HTMLSelectElement;
  private readonly fill: HTMLElement;

  constructor(root: HTMLElement) {
    this.titleLine = h("div", { class: "screen-title" });
    this.caption = h("div", { class: "screen-caption", "data-testid": "caption" });
    this.fill = h("div", { class: "screen-progress-fill" });
    this.screen = h(
      "div",
      { class: "screen" },
      h("span", { class: "sim-label" }, "Simulated player · timed by the transcript (no video file in the demo course)"),
      this.titleLine,
      this.caption,
      h("div", { class: "screen-progress" }, this.fill),
    );
    this.playButton = button("Play", () => this.toggle(), { class: "primary", "data-testid": "play" });
    const back = button(`−${SKIP_BACK_SECONDS} s`, () => this.skip(-SKIP_BACK_SECONDS), {
      "data-testid": "skip-back",
      title: "Jump back",
    });
    this.seekBar = h("input", {
      type: "range",
      min: 0,
      max: 1,
      step: 0.1,
      value: 0,
      "aria-label": "Seek",
      "data-testid": "seek",
    });
    this.seekBar.addEventListener("change", () => this.seek(Number(this.seekBar.value)));
    this.timeLabel = h("span", { class: "time", "data-testid": "time" }, "00:00 / 00:00");
    this.rateSelect = h(
      "select",
      { "aria-label": "Playback rate", "data-testid": "rate" },
      ...RATES.map((rate) => h("option", { value: rate, selected: rate === 1 }, `${rate}×`)),
    );
    this.rateSelect.addEventListener("change", () => this.setRate(Number(this.rateSelect.value)));
    clear(root);
    root.append(
      this.screen,
      h("div", { class: "controls" }, this.playButton, back, this.seekBar, this.timeLabel, this.rateSelect),
    );
  }

  onTime(listener: (position: number) => void): void {
    this.timeListeners.push(listener);
  }

  onEvent(listener: (event: PlayerEvent) => void): void {
    this.eventListeners.push(listener);
  }

  load(title: string, duration: number, captions: Caption[]): void {
    this.pause(false);
    this.position = 0;
    this.duration = duration;
    this.captions = captions;
    this.titleLine.textContent = title;
    this.seekBar.max = String(duration);
    this.render();
    this.emit({ type: VideoEventType.INITIALIZED, position: 0 });
  }

  toggle(): void {
    if (this.playing) {
      this.pause();
    } else {
      this.play();
    }
  }

  play(): void {
    if (this.playing || this.duration <= 0) {
      return;
    }
    if (this.position >= this.duration) {
      this.position = 0;
    }
    this.playing = true;
    this.lastTick = performance.now();
    this.sinceHeartbeat = 0;
    this.timer = window.setInterval(() => this.tick(), TICK_MS);
    this.emit({ type: VideoEventType.PLAYED, position: this.position });
    this.render();
  }

  pause(report = true): void {
    if (!this.playing) {
      return;
    }
    this.advance();
    this.playing = false;
    window.clearInterval(this.timer);
    this.timer = undefined;
    if (report) {
      this.emit({ type: VideoEventType.PAUSED, position: this.position });
    }
    this.render();
  }

  seek(to: number): void {
    if (this.playing) {
      this.advance();
    }
    const from = this.position;
    const target = Math.min(Math.max(0, to), this.duration);
    if (Math.abs(target - from) < 0.05) {
      return;
    }
    this.position = target;
    this.emit({ type: VideoEventType.SEEKED, position: target, from, to: target });
    this.render();
  }

  skip(delta: number): void {
    this.seek(this.position + delta);
  }

  setRate(rate: number): void {
    if (this.playing) {
      this.advance();
    }
    this.rate = rate;
    this.rateSelect.value = String(rate);
    this.emit({ type: VideoEventType.RATE_CHANGED, position: this.position, rate });
  }

  private advance(): void {
    const now = performance.now();
    const elapsed = now - this.lastTick;
    this.lastTick = now;
    this.sinceHeartbeat += elapsed;
    this.position = Math.min(this.duration, this.position + (elapsed / 1000) * this.rate);
  }

  private tick(): void {
    this.advance();
    if (this.position >= this.duration) {
      this.pause(false);
      this.emit({ type: VideoEventType.COMPLETED, position: this.duration });
    } else if (this.sinceHeartbeat >= HEARTBEAT_MS) {
      this.sinceHeartbeat = 0;
      this.emit({ type: VideoEventType.HEARTBEAT, position: this.position });
    }
    this.render();
  }

  private emit(event: PlayerEvent): void {
    for (const listener of this.eventListeners) {
      listener(event);
    }
  }

  private render(): void {
    const position = this.position;
    this.playButton.textContent = this.playing ? "Pause" : "Play";
    this.seekBar.value = String(position);
    this.timeLabel.textContent = `${clock(position)} / ${clock(this.duration)}`;
    this.fill.style.width = this.duration > 0 ? `${(100 * position) / this.duration}%` : "0";
    const current = this.captions.find((cue) => cue.start <= position && position < cue.end);
    this.caption.textContent = current?.text ?? "";
    this.screen.classList.toggle("playing", this.playing);
    for (const listener of this.timeListeners) {
      listener(position);
    }
  }
}
