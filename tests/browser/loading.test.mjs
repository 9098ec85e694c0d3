// The loading screen with slow scripted engines (a test fixture, not real
// speech): progress, service lines in order, the conversation UI and its
// WebSocket only after READY, errors with a working Retry button.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ARTIFACTS, launchBrowser, scripted, startHearth } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test("loading screen advances, then the conversation opens only when ready", async () => {
  const hearth = await startHearth(
    scripted("tts", "load_ms = 3000\nload_steps = 10\nwarmup_ms = 500") +
      scripted("stt", 'load_ms = 1000\ntranscript = "hello"') +
      scripted("chat", 'load_ms = 1200\nload_steps = 4\nmodel = "scripted-model"\nreply = "Nice to meet you. Goodbye."'),
  );
  const page = await browser.newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push({ url: ws.url(), at: Date.now() }));
  try {
    await page.goto(hearth.url);
    await page.locator("#loading").waitFor({ state: "visible" });
    assert.equal(await page.locator("#loading-title").textContent(), "Initializing backend…");
    assert.equal(await page.locator("#conversation").isVisible(), false);

    // Sample the progress bar and the service lines while loading.
    const widths = [];
    const lineOrder = [];
    let sawReadyAt = null;
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      // State and visibility read in one step: READY may arrive between
      // two separate reads.
      const [state, conversationShown] = await page.evaluate(() => [
        document.querySelector("#state-name").textContent,
        !document.querySelector("#conversation").hidden,
      ]);
      if (state !== "READY") {
        // Until READY: no conversation, no WebSocket.
        assert.equal(conversationShown, false, "conversation visible before READY");
        assert.equal(sockets.length, 0, `a WebSocket was opened in state ${state}`);
        widths.push(Number(await page.locator("#progress").getAttribute("aria-valuenow")));
        for (const li of await page.locator("#services li.ready").all()) {
          const name = await li.getAttribute("data-service");
          if (!lineOrder.includes(name)) lineOrder.push(name);
        }
        if (widths.length === 5) await page.screenshot({ path: join(ARTIFACTS, "loading-screen.png") });
      } else {
        sawReadyAt = Date.now();
        break;
      }
      await page.waitForTimeout(100);
    }
    assert.ok(sawReadyAt, "never became READY");
    assert.ok(widths.length >= 10, `too few samples: ${widths}`);
    for (let i = 1; i < widths.length; i++) assert.ok(widths[i] >= widths[i - 1], `progress went back: ${widths}`);
    assert.ok(new Set(widths).size >= 4, `the bar did not advance: ${widths}`);
    // stt (1.0 s) and chat (1.2 s) finish long before tts (3.5 s).
    assert.deepEqual(lineOrder.slice(0, 2), ["stt", "chat"], `lines appeared as ${lineOrder}`);

    await page.locator("#conversation").waitFor({ state: "visible" });
    await page.locator("#conv-status", { hasText: "connected" }).waitFor();
    assert.equal(sockets.length, 1);
    assert.match(sockets[0].url, /\/ws\/conversation$/);

    // The timeline shows a load bar per service and the warmup of tts.
    assert.equal(await page.locator(".tl-row").count(), 3);
    assert.match(await page.locator('.tl-row[data-service="tts"]').textContent(), /warmup \d+ ms/);
    await page.locator("#timeline-section").screenshot({ path: join(ARTIFACTS, "startup-timeline.png") });

    // A typed exchange: streamed reply and audio.
    await page.fill("#text", "Hi there");
    await page.click("#send");
    await page.locator(".msg.bot.done").waitFor({ timeout: 10000 });
    assert.match(await page.locator(".msg.bot").textContent(), /Nice to meet you\. Goodbye\./);
    assert.equal(await page.evaluate(() => window.hearthAudioChunks), 2);
  } finally {
    await page.close();
    await hearth.stop();
  }
});

test("a failed required service shows its error and Retry brings it back", async () => {
  const hearth = await startHearth(
    scripted("tts", "load_ms = 200") + scripted("chat", 'name = "browser-retry"\nfail_loads = 1\nload_ms = 300'),
  );
  const page = await browser.newPage();
  try {
    await page.goto(hearth.url);
    await page.locator("#state-name", { hasText: "ERROR" }).waitFor({ timeout: 10000 });
    assert.equal(await page.locator("#loading-title").textContent(), "The backend could not start");
    const line = page.locator('#services li[data-service="chat"]');
    assert.match(await line.textContent(), /Chat failed/);
    assert.match(await line.locator(".why").textContent(), /scripted failure 1 of 1/);
    await page.screenshot({ path: join(ARTIFACTS, "error-with-retry.png") });
    await line.locator("button.retry").click();
    await page.locator("#conversation").waitFor({ state: "visible", timeout: 10000 });
    assert.equal(await page.locator("#loading").isVisible(), false);
  } finally {
    await page.close();
    await hearth.stop();
  }
});

test("without speech to text the microphone is disabled with the reason", async () => {
  const hearth = await startHearth(
    scripted("tts", "") + scripted("stt", 'fail_load = "no whisper model"') + scripted("chat", ""),
  );
  const page = await browser.newPage();
  try {
    await page.goto(hearth.url);
    await page.locator("#conversation").waitFor({ state: "visible", timeout: 10000 });
    await page.locator("#mic-note", { hasText: "speech to text failed: no whisper model" }).waitFor();
    assert.equal(await page.locator("#talk").isDisabled(), true);
  } finally {
    await page.close();
    await hearth.stop();
  }
});
