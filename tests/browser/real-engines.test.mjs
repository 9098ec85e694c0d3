// The page with the real default engines (plugins.toml: Piper, Whisper,
// SmolLM2 on llama-server): the JFK recording is played into a fake
// microphone, and the page must show its transcript, a streamed reply, and
// receive the reply's audio. Screenshots go to tests/browser/artifacts/.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, ROOT, launchBrowser, startHearthWith } from "./harness.mjs";

const JFK = join(ROOT, "samples/jfk.wav");

let browser;
let hearth;
before(async () => {
  assert.ok(existsSync(JFK), `${JFK} is missing: run scripts/fetch-models.sh`);
  browser = await launchBrowser([
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${JFK}`,
  ]);
  hearth = await startHearthWith(join(ROOT, "plugins.toml"));
});
after(async () => {
  await browser?.close();
  await hearth?.stop();
});

test("speaking the JFK clip gets a transcript, a streamed reply and audio", { timeout: 240000 }, async () => {
  const page = await browser.newPage();
  try {
    await page.goto(hearth.url);
    await page.locator("#loading").waitFor({ state: "visible" });
    await page.screenshot({ path: join(ARTIFACTS, "real-loading-screen.png") });
    await page.locator("#conversation").waitFor({ state: "visible", timeout: 180000 });
    await page.locator("#timeline-section").screenshot({ path: join(ARTIFACTS, "real-startup-timeline.png") });
    await page.locator("#conv-status", { hasText: "connected" }).waitFor();
    // STT is optional, so READY may come before it; the button follows it.
    await page.waitForFunction(() => !document.querySelector("#talk").disabled, null, { timeout: 60000 });

    // Talk for the length of the clip (11 s), then send.
    await page.click("#talk");
    await page.locator("#talk.recording").waitFor();
    await page.waitForTimeout(11500);
    await page.click("#talk");

    const transcript = page.locator(".msg.user.transcript");
    await transcript.waitFor({ timeout: 60000 });
    const heard = (await transcript.textContent()).toLowerCase().replace(/[^a-z ]/g, "");
    assert.match(heard, /ask not what your country can do for you/, `heard: ${heard}`);

    await page.locator(".msg.bot.done").waitFor({ timeout: 120000 });
    const reply = (await page.locator(".msg.bot").first().textContent()).trim();
    assert.ok(reply.length > 10, `reply too short: ${reply}`);
    const chunks = await page.evaluate(() => window.hearthAudioChunks || 0);
    const samples = await page.evaluate(() => window.hearthAudioSamples || 0);
    assert.ok(chunks >= 1, "no reply audio received");
    assert.ok(samples > 22050 / 2, `reply audio too short: ${samples} samples`);
    await page.screenshot({ path: join(ARTIFACTS, "real-finished-exchange.png") });
  } finally {
    await page.close();
  }
});
