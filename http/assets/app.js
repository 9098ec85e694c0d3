// Hearth's page: follows /api/ready/stream (polling /api/ready as a
// fallback) and shows the loading screen until READY; only then opens
// /ws/conversation and shows the conversation.
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = { tts: "TTS", stt: "STT", chat: "Chat", vad: "VAD" };
const ORDER = ["tts", "stt", "chat", "vad"];

const conv = { ws: null, bot: null, playAt: 0, audio: null, pendingAudio: null, recorder: null, partial: null };

const view = {
  ready: false,
  conversationOpened: false,
  pollTimer: null,
  source: null,
};

// ---------------------------------------------------------------- readiness

function serviceLine(name, s) {
  const label = LABELS[name] || name;
  const li = document.createElement("li");
  li.className = s.required ? s.status : `${s.status} optional`;
  li.dataset.service = name;
  const model = s.model ? ` (${s.model})` : "";
  const optional = s.required ? "" : " (optional)";
  let text;
  switch (s.status) {
    case "ready": text = `✓ ${label} ready${model}`; break;
    case "loading": text = `… ${label} loading${s.message ? ": " + s.message : ""}`; break;
    case "warming": text = `… ${label} warming up`; break;
    case "pending": text = `· ${label} waiting`; break;
    case "failed": text = `✗ ${label} failed${optional}`; break;
    default: text = `– ${label} not installed${optional}`;
  }
  li.append(text);
  const why = s.error || (s.status === "not_installed" ? s.reason : null) || s.health_error;
  if (s.status === "failed" || (s.status === "not_installed" && s.required)) {
    const button = document.createElement("button");
    button.textContent = "Retry";
    button.className = "retry";
    button.dataset.service = name;
    button.addEventListener("click", () => retry(name, button));
    li.append(button);
  }
  if (why && s.status !== "ready") {
    const span = document.createElement("span");
    span.className = "why";
    span.textContent = why;
    li.append(span);
  }
  return li;
}

/** POSTs `/api/services/{name}/{action}` (retry or restart); the stream
 * (or the poll) shows what happens next. */
async function serviceAction(name, action, button, note = "connection-note") {
  button.disabled = true;
  try {
    let response = await fetch(`/api/services/${name}/${action}`, { method: "POST", headers: adminHeaders() });
    if (response.status === 401) {
      // An admin token is configured: ask once, keep it for this tab.
      const token = window.prompt("Hearth's admin token (from [host] admin_token_file):");
      if (token) {
        sessionStorage.setItem("hearth-admin-token", token.trim());
        response = await fetch(`/api/services/${name}/${action}`, { method: "POST", headers: adminHeaders() });
      }
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $(note).textContent = body.error ? body.error.message : `${action} failed (${response.status})`;
      if (response.status === 429) {
        // Too soon after the last one: say when, and offer it again then.
        const wait = Number(response.headers.get("Retry-After") || "1");
        setTimeout(() => {
          button.disabled = false;
          if ($(note).textContent.startsWith(body.error?.message || "\u0000")) $(note).textContent = "";
        }, wait * 1000);
      }
    }
  } catch (e) {
    $(note).textContent = `${action} failed: ${e}`;
  }
  ensureFollowing();
}

/** The admin token the person typed in this tab, if any. */
function adminHeaders() {
  const token = sessionStorage.getItem("hearth-admin-token");
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function retry(name, button) {
  return serviceAction(name, "retry", button);
}

const SWITCHING = { tts: "switching voice", stt: "switching speech recognition", chat: "switching chat model", vad: "switching voice activity detection" };

/** Once the conversation is open: engines being swapped by a reload, a
 * swap that failed (the old engine still serves), and a ready engine whose
 * health check complains, with a Restart button. */
function updateEngines(services) {
  const note = $("engine-note");
  const items = [];
  for (const name of ORDER) {
    const s = services[name];
    if (!s) continue;
    if (s.next) {
      const span = document.createElement("span");
      span.className = "switching";
      span.dataset.service = name;
      span.textContent = `${SWITCHING[name]}… ${s.next.status === "warming" ? "warming up" : `${s.next.progress}%`}`;
      items.push(span);
    }
    if (s.reload_error) {
      const span = document.createElement("span");
      span.className = "why";
      span.textContent = `${LABELS[name]}: the new engine failed (${s.reload_error}); still using the old one`;
      items.push(span);
    }
    if (s.status === "ready" && s.health_error) {
      const span = document.createElement("span");
      span.className = "why";
      span.textContent = `${LABELS[name]}: ${s.health_error}`;
      const button = document.createElement("button");
      button.textContent = "Restart";
      button.className = "restart";
      button.dataset.service = name;
      button.disabled = !!s.next;
      button.addEventListener("click", () => serviceAction(name, "restart", button, "engine-note"));
      items.push(span, button);
    }
  }
  note.replaceChildren(...items);
}

function renderTimeline(r) {
  const rows = ORDER.filter((n) => r.services[n] && r.services[n].timeline && r.services[n].timeline.load_start_ms != null);
  if (rows.length === 0) return;
  const ends = rows.flatMap((n) => {
    const t = r.services[n].timeline;
    return [t.load_end_ms, t.warmup_end_ms, t.load_start_ms].filter((v) => v != null);
  });
  const span = Math.max(1, ...ends);
  const pct = (v) => `${(100 * v) / span}%`;
  const box = $("timeline");
  box.replaceChildren();
  for (const name of rows) {
    const s = r.services[name];
    const t = s.timeline;
    const row = document.createElement("div");
    row.className = "tl-row";
    row.dataset.service = name;
    const label = document.createElement("span");
    label.textContent = LABELS[name];
    const track = document.createElement("div");
    track.className = "tl-track";
    const bar = (cls, start, end, text) => {
      if (start == null) return;
      const b = document.createElement("div");
      b.className = `tl-bar ${cls}`;
      const stop = end != null ? end : span;
      b.style.left = pct(start);
      b.style.width = `max(2px, ${pct(stop - start)})`;
      b.textContent = text;
      b.title = text;
      track.append(b);
    };
    const failed = s.status === "failed";
    const loadEnd = t.load_end_ms;
    bar(failed && t.warmup_start_ms == null ? "fail" : "load", t.load_start_ms, loadEnd,
      `load ${loadEnd != null ? loadEnd - t.load_start_ms + " ms" : "…"}`);
    if (t.warmup_start_ms != null) {
      bar(failed ? "fail" : "warm", t.warmup_start_ms, t.warmup_end_ms,
        `warmup ${t.warmup_end_ms != null ? t.warmup_end_ms - t.warmup_start_ms + " ms" : "…"}`);
    }
    row.append(label, track);
    box.append(row);
  }
  const axis = document.createElement("div");
  axis.className = "tl-axis";
  axis.innerHTML = `<span>0 s</span><span>${(span / 1000).toFixed(2)} s</span>`;
  box.append(axis);
  $("timeline-section").hidden = false;
}

function render(r) {
  $("state-name").textContent = r.state;
  $("progress-text").textContent = `${r.progress}%`;
  $("progress-bar").style.width = `${r.progress}%`;
  $("progress").setAttribute("aria-valuenow", String(r.progress));
  const list = $("services");
  list.replaceChildren(...ORDER.filter((n) => r.services[n]).map((n) => serviceLine(n, r.services[n])));
  $("spinner").classList.toggle("stopped", r.state === "ERROR");
  $("loading-title").textContent =
    r.state === "ERROR" ? "The backend could not start" : r.state === "READY" ? "Ready" : "Initializing backend…";
  renderTimeline(r);
  updateMic(r.services.stt);
  updateHandsFree(r.services.stt, r.services.vad);
  updateEngines(r.services);
  if (r.ready && !view.ready) {
    view.ready = true;
    showConversation();
  }
}

function poll(delay) {
  clearTimeout(view.pollTimer);
  view.pollTimer = setTimeout(async () => {
    try {
      const response = await fetch("/api/ready", { cache: "no-store" });
      render(await response.json());
      $("connection-note").textContent = "";
      if (!view.ready) poll(1000);
    } catch (e) {
      $("connection-note").textContent = "backend unreachable; retrying…";
      poll(2000);
    }
  }, delay);
}

function ensureFollowing() {
  if (view.source || view.pollTimer) return;
  follow();
}

function follow() {
  if (!("EventSource" in window)) return poll(0);
  const source = new EventSource("/api/ready/stream?follow=true");
  view.source = source;
  source.onmessage = (e) => {
    $("connection-note").textContent = "";
    render(JSON.parse(e.data));
  };
  source.onerror = () => {
    // The stream broke (server restarting, proxy timeout): poll as in the
    // seed, every second, two after an error, until the stream is back.
    source.close();
    view.source = null;
    $("connection-note").textContent = "live updates lost; polling…";
    poll(2000);
    setTimeout(() => { if (!view.source) { clearTimeout(view.pollTimer); view.pollTimer = null; follow(); } }, 5000);
  };
}

// ------------------------------------------------------------- conversation

/** Voice input follows the optional STT service, which may still be loading
 * (or fail, or come back after a retry) while the conversation is open. */
function updateMic(stt) {
  const ready = !!stt && stt.status === "ready";
  if (ready) $("talk").dataset.ready = "1"; else delete $("talk").dataset.ready;
  if (conv.recorder) return;
  $("talk").disabled = !ready;
  if (ready) {
    if ($("mic-note").dataset.reason) $("mic-note").textContent = "";
    delete $("mic-note").dataset.reason;
    return;
  }
  let why = "speech to text is not configured";
  if (stt) {
    why = stt.status === "failed" ? `speech to text failed: ${stt.error}`
      : stt.status === "not_installed" ? `speech to text is not installed: ${stt.reason}`
      : `speech to text is ${stt.status}`;
  }
  $("mic-note").textContent = `Voice input unavailable: ${why}. Typing works.`;
  $("mic-note").dataset.reason = "stt";
}

/** Hands-free needs the VAD service as well as STT; without it the page
 * keeps push-to-talk. */
function updateHandsFree(stt, vad) {
  const ready = !!stt && stt.status === "ready" && !!vad && vad.status === "ready";
  conv.handsFreeReady = ready;
  if (conv.recorder) return;
  $("hands-free").disabled = !ready;
  $("hands-free").title = ready
    ? "Listen continuously: the server hears when you start and stop talking, and you may interrupt the reply"
    : `Hands-free unavailable: ${vad ? `voice activity detection is ${vad.status}` : "no [vad] service is configured"}`;
}

/** Stops what is playing (a cancelled reply). */
function stopPlayback() {
  if (conv.audio) { conv.audio.close(); conv.audio = null; conv.playAt = 0; }
}

function logLine(cls, text) {
  const div = document.createElement("div");
  div.className = `msg ${cls}`;
  div.textContent = text;
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function showConversation() {
  $("loading").hidden = true;
  $("conversation").hidden = false;
  if (!view.conversationOpened) {
    view.conversationOpened = true;
    openConversation();
  }
}

function openConversation() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/conversation`);
  ws.binaryType = "arraybuffer";
  conv.ws = ws;
  window.hearthConversationOpenedAt = Date.now();
  ws.onopen = () => { $("conv-status").textContent = "connected"; };
  ws.onclose = (e) => {
    $("conv-status").textContent = `closed (${e.code}${e.reason ? ": " + e.reason : ""})`;
    conv.ws = null;
  };
  ws.onmessage = (e) => {
    if (typeof e.data !== "string") return playAudio(e.data);
    const m = JSON.parse(e.data);
    switch (m.type) {
      case "ready":
        // The readiness stream keeps the microphone button in step with STT.
        break;
      case "listening":
        $("mic-note").textContent = "Hands-free: listening…";
        break;
      case "speech_started":
        $("mic-note").textContent = "Hands-free: hearing you…";
        break;
      case "partial_transcript":
        if (!conv.partial) conv.partial = logLine("user partial", "");
        conv.partial.textContent = m.text;
        break;
      case "speech_ended":
        if (conv.recorder && conv.recorder.handsFree) $("mic-note").textContent = "Hands-free: listening…";
        break;
      case "cancelled":
        // The person spoke over the reply: stop playing it.
        window.hearthCancelled = (window.hearthCancelled || 0) + 1;
        stopPlayback();
        if (conv.bot) conv.bot.classList.add("cancelled");
        conv.bot = null;
        break;
      case "transcript":
        if (conv.partial) { conv.partial.remove(); conv.partial = null; }
        logLine("user", m.text || "(nothing heard)").classList.add("transcript");
        break;
      case "reply_delta":
        if (!conv.bot) conv.bot = logLine("bot", "");
        conv.bot.append(m.text);
        $("log").scrollTop = $("log").scrollHeight;
        break;
      case "audio":
        conv.pendingAudio = m;
        break;
      case "done": {
        $("cancel").disabled = true;
        if (conv.bot) {
          const t = m.timings || {};
          const span = document.createElement("span");
          span.className = "timings";
          span.textContent = Object.entries(t).map(([k, v]) => `${k.replace(/_ms$/, "")} ${Math.round(v)} ms`).join(" · ");
          conv.bot.append(span);
          conv.bot.classList.add("done");
        }
        conv.bot = null;
        break;
      }
      case "error":
        logLine("error", `${m.code}: ${m.message}`);
        break;
    }
  };
}

function playAudio(buffer) {
  const meta = conv.pendingAudio;
  conv.pendingAudio = null;
  if (!meta) return;
  window.hearthAudioChunks = (window.hearthAudioChunks || 0) + 1;
  window.hearthAudioSamples = (window.hearthAudioSamples || 0) + meta.samples;
  if (!conv.audio) conv.audio = new AudioContext();
  const pcm = new Int16Array(buffer);
  const audioBuffer = conv.audio.createBuffer(1, pcm.length, meta.sample_rate);
  const data = audioBuffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 0x8000;
  const source = conv.audio.createBufferSource();
  source.buffer = audioBuffer;
  source.connect(conv.audio.destination);
  const at = Math.max(conv.audio.currentTime, conv.playAt);
  source.start(at);
  conv.playAt = at + audioBuffer.duration;
}

function sendText(text) {
  if (!conv.ws || conv.ws.readyState !== WebSocket.OPEN) return;
  logLine("user", text);
  conv.ws.send(JSON.stringify({ type: "text", text }));
  $("cancel").disabled = false;
}

/** Opens the microphone and streams it (16 kHz PCM16) after `start`. */
async function capture(start) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/assets/capture-worklet.js");
  const node = new AudioWorkletNode(context, "capture-processor");
  conv.ws.send(JSON.stringify({ type: "start", format: "pcm16", sample_rate: 16000, channels: 1, ...start }));
  node.port.onmessage = (e) => { if (conv.ws) conv.ws.send(e.data); };
  context.createMediaStreamSource(stream).connect(node);
  return { stream, context, node };
}

async function startTalking() {
  if (!conv.ws) return;
  try {
    conv.recorder = await capture({});
    $("talk").classList.add("recording");
    $("talk").textContent = "■ Send";
    $("hands-free").disabled = true;
    $("mic-note").textContent = "Listening… click again to send.";
  } catch (e) {
    $("mic-note").textContent = `Microphone unavailable: ${e.message || e}. Typing works.`;
  }
}

async function startHandsFree() {
  if (!conv.ws) return;
  try {
    conv.recorder = { ...(await capture({ mode: "hands_free" })), handsFree: true };
    $("hands-free").classList.add("recording");
    $("hands-free").setAttribute("aria-pressed", "true");
    $("talk").disabled = true;
  } catch (e) {
    $("mic-note").textContent = `Microphone unavailable: ${e.message || e}. Typing works.`;
  }
}

function stopTalking() {
  const r = conv.recorder;
  conv.recorder = null;
  if (!r) return;
  r.node.port.onmessage = null;
  r.stream.getTracks().forEach((t) => t.stop());
  r.context.close();
  if (conv.ws) conv.ws.send(JSON.stringify({ type: "end" }));
  $("talk").classList.remove("recording");
  $("talk").textContent = "● Talk";
  $("hands-free").classList.remove("recording");
  $("hands-free").setAttribute("aria-pressed", "false");
  $("talk").disabled = !$("talk").dataset.ready;
  $("mic-note").textContent = "";
  $("cancel").disabled = false;
  $("hands-free").disabled = !conv.handsFreeReady;
}

$("talk").addEventListener("click", () => (conv.recorder ? stopTalking() : startTalking()));
$("hands-free").addEventListener("click", () => (conv.recorder ? stopTalking() : startHandsFree()));
$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (text) sendText(text);
  $("text").value = "";
});
$("cancel").addEventListener("click", () => {
  if (conv.ws) conv.ws.send(JSON.stringify({ type: "cancel" }));
  stopPlayback();
});

follow();
