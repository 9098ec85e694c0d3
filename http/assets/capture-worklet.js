// Hearth's microphone capture: an AudioWorklet that downsamples the input to
// 16 kHz mono PCM16 and posts it to the page in ~100 ms frames.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.position = 0;
    this.frame = [];
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const channels = input.length;
    const length = input[0].length;
    for (let i = 0; i < length; i++) {
      // Box-filter the samples that fall into each output sample: simple
      // anti-aliasing, plenty for speech recognition.
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += input[c][i];
      this.acc = (this.acc || 0) + sum / channels;
      this.count = (this.count || 0) + 1;
      this.position += 1;
      if (this.position >= this.ratio) {
        this.position -= this.ratio;
        const v = Math.max(-1, Math.min(1, this.acc / this.count));
        this.frame.push(v < 0 ? v * 0x8000 : v * 0x7fff);
        this.acc = 0;
        this.count = 0;
      }
    }
    if (this.frame.length >= 1600) {
      this.port.postMessage(Int16Array.from(this.frame).buffer, []);
      this.frame = [];
    }
    return true;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
