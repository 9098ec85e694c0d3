// Shared helpers of the browser tests: start `hearth serve` on a free
// loopback port with a scratch plugins.toml, and launch Debian's Chromium
// through playwright-core (its own browser download cannot work here).
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, "target");
export const BUILD = join(TARGET, process.env.HEARTH_PROFILE || "debug");
export const ARTIFACTS = join(ROOT, "tests/browser/artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
    server.on("error", fail);
  });
}

/** Starts `hearth serve` with `config` (a TOML string without [host]). */
export async function startHearth(config, { pluginDir = BUILD } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "hearth-browser-"));
  const path = join(dir, "plugins.toml");
  writeFileSync(path, `[host]\nplugin_dir = ${JSON.stringify(pluginDir)}\n${config}`);
  return startHearthWith(path);
}

/** Starts `hearth serve --config path` on a free loopback port. */
export async function startHearthWith(path, { readyTimeoutMs = 15000 } = {}) {
  const port = await freePort();
  const child = spawn(join(BUILD, "hearth"), ["serve", "--config", path, "--listen", `127.0.0.1:${port}`], {
    env: { ...process.env, HEARTH_LOG: process.env.HEARTH_LOG || "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${url}/livez`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`hearth did not start on ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    configPath: path,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Debian's Chromium, headless, with the flags this machine needs. */
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      ...extraArgs,
    ],
  });
}

export function scripted(service, config) {
  return `[${service}]\nplugin = "scripted-${service}"\n[${service}.config]\n${config}\n`;
}
