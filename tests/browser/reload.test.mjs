// Live reconfiguration as the page shows it (scripted engines, a test
// fixture): enabling speech to text by a reload makes the microphone
// available, disabling it says why, and a voice swap shows "switching
// voice…" without leaving the conversation.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, BUILD, launchBrowser, scripted, startHearthWith } from "./harness.mjs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function configText(tts, stt) {
  return `[host]\nplugin_dir = ${JSON.stringify(BUILD)}\n` + scripted("tts", tts) + stt + scripted("chat", "");
}

async function reload(url) {
  const response = await fetch(`${url}/api/reload`, { method: "POST" });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body;
}

test("a reload enables and disables the microphone and shows a voice swap", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-browser-"));
  const path = join(dir, "plugins.toml");
  writeFileSync(path, configText("", '[stt]\nplugin = "scripted-stt"\nenabled = false\n'));
  const hearth = await startHearthWith(path);
  const page = await browser.newPage();
  try {
    await page.goto(hearth.url);
    await page.locator("#conversation").waitFor({ state: "visible", timeout: 10000 });
    await page.locator("#mic-note", { hasText: "speech to text is not installed" }).waitFor();
    assert.equal(await page.locator("#talk").isDisabled(), true);

    // Enable STT: the microphone becomes available, the page stays open.
    writeFileSync(path, configText("", scripted("stt", 'transcript = "hello"')));
    const enabled = await reload(hearth.url);
    assert.equal(enabled.outcome.services.stt.outcome, "started");
    await page.waitForFunction(() => !document.querySelector("#talk").disabled, null, { timeout: 10000 });
    assert.equal(await page.locator("#mic-note").textContent(), "");

    // A voice swap that takes a while: "switching voice…" while it loads.
    writeFileSync(path, configText("load_ms = 2500\nload_steps = 5", scripted("stt", 'transcript = "hello"')));
    const swapping = fetch(`${hearth.url}/api/reload`, { method: "POST" });
    await page.locator("#engine-note .switching", { hasText: "switching voice…" }).waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(ARTIFACTS, "switching-voice.png") });
    assert.equal(await page.locator("#conversation").isVisible(), true, "the conversation stays open");
    assert.equal((await (await swapping).json()).ok, true);
    await page.waitForFunction(() => !document.querySelector("#engine-note .switching"), null, { timeout: 10000 });

    // Disable STT: the page says why.
    writeFileSync(path, configText("", '[stt]\nplugin = "scripted-stt"\nenabled = false\n'));
    const disabled = await reload(hearth.url);
    assert.equal(disabled.outcome.services.stt.outcome, "stopped");
    await page.locator("#mic-note", { hasText: "disabled in plugins.toml" }).waitFor({ timeout: 10000 });
    assert.equal(await page.locator("#talk").isDisabled(), true);
  } finally {
    await page.close();
    await hearth.stop();
  }
});
