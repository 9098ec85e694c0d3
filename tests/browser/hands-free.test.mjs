// Hands-free with the real default engines (plugins.toml: Piper, Whisper,
// Silero VAD, SmolLM2 on llama-server): Chromium's fake microphone plays the
// JFK recording followed by 12 s of silence (it loops the file), the
// Hands-free button is pressed once, and the page must show partial
// transcripts, the final transcript and a streamed reply with its audio —
// without anyone pressing Talk or Send. Screenshots go to
// tests/browser/artifacts/.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, ROOT, launchBrowser, startHearthWith } from "./harness.mjs";

const JFK = join(ROOT, "samples/jfk.wav");
const CLIP = join(ARTIFACTS, "jfk-then-silence.wav");

/** JFK (16 kHz mono PCM16) followed by `seconds` of silence, as a WAV file. */
function withSilence(source, target, seconds) {
  const wav = readFileSync(source);
  let at = 12;
  let pcm = null;
  while (at + 8 <= wav.length) {
    const id = wav.toString("ascii", at, at + 4);
    const size = wav.readUInt32LE(at + 4);
    if (id === "data") pcm = wav.subarray(at + 8, at + 8 + size);
    at += 8 + size + (size % 2);
  }
  assert.ok(pcm, `${source} has no data chunk`);
  const data = Buffer.concat([pcm, Buffer.alloc(16000 * 2 * seconds)]);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(16000, 24);
  header.writeUInt32LE(32000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(data.length, 40);
  writeFileSync(target, Buffer.concat([header, data]));
}

let browser;
let hearth;
before(async () => {
  assert.ok(existsSync(JFK), `${JFK} is missing: run scripts/fetch-models.sh`);
  mkdirSync(ARTIFACTS, { recursive: true });
  withSilence(JFK, CLIP, 12);
  browser = await launchBrowser([
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${CLIP}`,
  ]);
  hearth = await startHearthWith(join(ROOT, "plugins.toml"));
});
after(async () => {
  await browser?.close();
  await hearth?.stop();
});

test("hands-free, the JFK clip is heard piece by piece and answered without a click", { timeout: 240000 }, async () => {
  const page = await browser.newPage();
  try {
    await page.goto(hearth.url);
    await page.locator("#conversation").waitFor({ state: "visible", timeout: 180000 });
    await page.locator("#conv-status", { hasText: "connected" }).waitFor();
    // VAD and STT are optional: the button follows their readiness.
    await page.waitForFunction(() => !document.querySelector("#hands-free").disabled, null, { timeout: 60000 });

    await page.click("#hands-free");
    await page.locator("#hands-free.recording").waitFor();
    // A partial transcript shows while JFK is still speaking.
    await page.locator(".msg.user.partial").waitFor({ timeout: 30000 });
    await page.screenshot({ path: join(ARTIFACTS, "hands-free-partial.png") });

    const transcript = page.locator(".msg.user.transcript");
    await transcript.waitFor({ timeout: 60000 });
    const heard = (await transcript.first().textContent()).toLowerCase().replace(/[^a-z ]/g, "");
    assert.match(heard, /ask not what your country can do for you/, `heard: ${heard}`);

    await page.locator(".msg.bot.done").first().waitFor({ timeout: 120000 });
    const reply = (await page.locator(".msg.bot").first().textContent()).trim();
    assert.ok(reply.length > 10, `reply too short: ${reply}`);
    const samples = await page.evaluate(() => window.hearthAudioSamples || 0);
    assert.ok(samples > 22050 / 2, `reply audio too short: ${samples} samples`);
    // Nothing was clicked after Hands-free: still listening.
    assert.equal(await page.getAttribute("#hands-free", "aria-pressed"), "true");
    await page.screenshot({ path: join(ARTIFACTS, "hands-free-exchange.png") });
    await page.click("#hands-free");
    await page.locator("#hands-free.recording").waitFor({ state: "detached" });
  } finally {
    await page.close();
  }
});
