// The browser page: submit a job (a sample or an upload), poll it, then play the input with every person's box
// drawn on the frame shown, list every person and draw the chosen one. Plain JS with no library and no build step,
// so the page is exactly what the service serves.
"use strict";

const EXPRESSIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
// Distinct under the common colour-vision deficiencies (Okabe-Ito), so the chart lines can be told apart.
const COLORS = {angry: "#d55e00", disgust: "#009e73", fear: "#cc79a7", happy: "#e69f00",
                sad: "#0072b2", surprise: "#56b4e9", neutral: "#555555"};
const POLL_MS = 300;
const MAX_THUMBNAILS = 60;     // a long video would otherwise ask for thousands of images
const THUMB_WIDTH = 160;
const PLAYER_WIDTH = 640;      // the widest picture the frame endpoints give
const DEFAULT_FPS = 25;        // an input without a frame rate (frames, a zip, a sample) plays at this rate
// One colour per person id, cycling; distinct under the common colour-vision deficiencies (Okabe-Ito).
const PERSON_COLORS = ["#009e73", "#e69f00", "#56b4e9", "#d55e00", "#cc79a7", "#0072b2", "#f0e442"];
const personColor = (id) => PERSON_COLORS[(id - 1) % PERSON_COLORS.length];
// Containers a browser is asked about before the upload is fetched for playback (Chromium plays none of them).
// Others (mp4, webm, mov, mkv...) are simply tried: browsers answer "" for some types they do play.
const VIDEO_TYPES = {avi: "video/x-msvideo", flv: "video/x-flv", mpg: "video/mpeg", mpeg: "video/mpeg",
                     gif: "image/gif"};

const $ = (id) => document.getElementById(id);
// A server reachable from other machines requires its API token on every API request. The page keeps what was
// typed in sessionStorage: it lives as long as the tab, is never sent anywhere but in the Authorization header,
// and is not shared with other tabs or kept after the browser closes.
const TOKEN_KEY = "faceanalysis.apiToken";

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (error) {
    return "";          // storage disabled: the field's value is still used
  }
}

function saveToken() {
  const token = $("token").value.trim();
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (error) {
    // storage disabled: nothing to keep
  }
}

function withToken(options = {}) {
  const token = $("token").value.trim() || storedToken();
  if (!token) return options;
  return {...options, headers: {...(options.headers || {}), Authorization: `Bearer ${token}`}};
}

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// Every API error is {"error": {"code", "message"}}; anything else (a proxy's HTML page) is reported as it came.
async function api(url, options) {
  let response;
  try {
    response = await fetch(url, withToken(options));
  } catch (error) {
    throw new ApiError("network_error", `the server could not be reached (${error.message})`, 0);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    if (body && body.error) throw new ApiError(body.error.code, body.error.message, response.status);
    throw new ApiError("http_error", `${response.status} ${response.statusText}`, response.status);
  }
  if (body === null) throw new ApiError("bad_response", "the server's answer is not JSON", response.status);
  return body;
}

// Numbers are shown with toFixed, and the page test formats the API's numbers the same way.
const percent = (p) => `${(p * 100).toFixed(1)}%`;

function showError(error) {
  const box = $("error");
  box.replaceChildren();
  const code = document.createElement("strong");
  code.textContent = error.code || "error";
  box.append(code, error.status ? ` (HTTP ${error.status}): ` : ": ", error.message);
  box.hidden = false;
  if (error.code === "unauthorized") $("token").focus();
}

function setStatus(text) {
  $("status").textContent = text;
}

async function loadSamples() {
  const select = $("sample");
  select.replaceChildren();
  try {
    const {samples} = await api("api/v2/samples");
    for (const name of samples) select.add(new Option(name, name));
    $("sample-note").textContent = samples.length ? "" : "no samples on the server: upload a file";
  } catch (error) {
    showError(error);
  }
}

function chosenKind() {
  return document.querySelector("input[name=kind]:checked").value;
}

function onKindChange() {
  const upload = chosenKind() === "upload";
  $("sample-row").hidden = upload;
  $("upload-row").hidden = !upload;
}

function chosenOptions() {
  const options = {};
  for (const [id, name] of [["stride", "stride"], ["max-frames", "max_frames"]]) {
    const input = $(id);
    const value = Number(input.value);
    if (!input.value || !Number.isInteger(value) || value < Number(input.min) ||
        (input.max && value > Number(input.max))) {
      throw new ApiError("invalid_option", `${name} must be a whole number from ${input.min}` +
                         (input.max ? ` to ${input.max}` : "") + `, not ${JSON.stringify(input.value)}`, 0);
    }
    options[name] = value;
  }
  return options;
}

function buildRequest() {
  const options = {...chosenOptions(), timeline: true};
  if (chosenKind() === "sample") {
    const sample = $("sample").value;
    if (!sample) throw new ApiError("invalid_request", "choose a sample", 0);
    return {label: sample, init: {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify({sample, ...options})}};
  }
  const file = $("file").files[0];
  if (!file) throw new ApiError("invalid_request", "choose a video or a zip file", 0);
  const form = new FormData();
  // The API takes a zip as "zip" and anything else as "video"; it refuses what is neither.
  form.append(file.name.toLowerCase().endsWith(".zip") ? "zip" : "video", file);
  // The server keeps the upload while it keeps the job, so that the page can play it with the boxes.
  for (const [name, value] of Object.entries({...options, keep_upload: true})) form.append(name, String(value));
  return {label: file.name, init: {method: "POST", body: form}};
}

// The options' bounds and defaults come from the server's OpenAPI document, so the form matches its limits.
async function loadOptionBounds() {
  try {
    const spec = await api("api/v2/openapi.json");
    const properties = spec.components.schemas.Options.properties;
    for (const [id, name] of [["stride", "stride"], ["max-frames", "max_frames"]]) {
      const schema = properties[name];
      if (!schema) continue;
      if (schema.minimum !== undefined) $(id).min = schema.minimum;
      if (schema.maximum !== undefined) $(id).max = schema.maximum;
      if (schema.default !== undefined) $(id).value = schema.default;
    }
  } catch (error) {
    // The form keeps its own defaults; the server still checks every value.
  }
}

function showProgress(progress) {
  const bar = $("progress");
  const {frames_done: done, frames_total: total} = progress || {};
  if (total) {
    bar.max = total;
    bar.value = done;
    $("progress-text").textContent = `${done} of ${total} frames`;
  } else {
    bar.removeAttribute("value");      // indeterminate: a video without a frame count
    $("progress-text").textContent = done ? `${done} frames` : "";
  }
}

// Time left from the rate seen since the first progress report: the models' load and the queue before it do
// not count, so the estimate is of this job's own speed.
function timeLeft(watch, progress) {
  const {frames_done: done, frames_total: total} = progress || {};
  if (!total || done === undefined) return "";
  const now = performance.now();
  if (!watch.start || done < watch.start.done) watch.start = {time: now, done};
  const frames = done - watch.start.done;
  const seconds = (now - watch.start.time) / 1000;
  if (frames <= 0 || seconds < 0.5) return "";
  const left = Math.max(0, (total - done) * seconds / frames);
  return left < 60 ? `about ${Math.ceil(left)} s left` : `about ${Math.ceil(left / 60)} min left`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let current = null;      // the job being waited for: {url, cancelled}

async function waitForJob(job) {
  const watch = {};
  for (;;) {
    const state = await api(job.url);
    showProgress(state.progress);
    if (state.status === "done") return state.result;
    if (state.status === "failed") throw new ApiError(state.error.code, state.error.message, state.error.status);
    $("time-left").textContent = state.status === "running" ? timeLeft(watch, state.progress) : "";
    setStatus(state.status === "queued" ? "Waiting for the jobs before this one…" : "Analysing…");
    await sleep(POLL_MS);
  }
}

async function onCancel() {
  if (!current || current.cancelled) return;
  current.cancelled = true;
  $("cancel").disabled = true;
  setStatus("Cancelling…");
  try {
    await api(current.url, {method: "DELETE"});
  } catch (error) {
    // job_finished: it ended meanwhile, and the poll shows how.
    if (error.code !== "job_finished") showError(error);
  }
}

async function onSubmit(event) {
  event.preventDefault();
  $("error").hidden = true;
  $("results").hidden = true;
  player.stop();
  const button = $("run");
  let request;
  try {
    request = buildRequest();
  } catch (error) {
    showError(error);
    return;
  }
  button.disabled = true;
  $("progress-row").hidden = false;
  $("cancel").disabled = true;
  $("time-left").textContent = "";
  showProgress(null);
  setStatus(chosenKind() === "upload" ? "Uploading…" : "Submitting…");
  try {
    const job = await api("api/v2/jobs", request.init);
    // job.url comes from the server (url_for), so it already carries any path prefix.
    current = {url: job.url, id: job.id, cancelled: false};
    $("cancel").disabled = false;
    const result = await waitForJob(current);
    setStatus(`Done: ${request.label}, ${result.meta.frames.read} frames read in ` +
              `${(result.meta.timings_ms.total / 1000).toFixed(1)} s.`);
    render(result, current);
  } catch (error) {
    if (error.code === "cancelled") {
      setStatus(`Cancelled: ${request.label}.`);
    } else {
      setStatus("");
      showError(error);
    }
  } finally {
    current = null;
    button.disabled = false;
    $("progress-row").hidden = true;
  }
}

function setBar(id, p) {
  const bar = $(`${id}-bar`);
  bar.firstElementChild.style.width = `${(p * 100).toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", (p * 100).toFixed(1));
  $(id).textContent = percent(p);
}

function render(result, job) {
  const frames = result.meta.frames;
  const truncated = $("truncated");
  truncated.hidden = !frames.truncated;
  if (frames.truncated) {
    const options = result.meta.options || {};
    truncated.textContent = `Cut short: only the first ${frames.read} frames were analysed ` +
        `(max_frames=${options.max_frames}, stride=${options.stride}); the rest of the input was not read. ` +
        "Raise “At most this many frames” or the stride to cover all of it.";
  }
  prepareDownloads(result);
  drawPersons(result);
  $("results").hidden = false;
  player.load(result, job);
  showPerson(result, result.persons.find((candidate) => candidate.primary), false);
}

// One row per person: picture, age, gender, expression, and the frames seen as spans on the frame axis. The whole
// row reacts to a click; its button is there for the keyboard (and a screen reader says whether it is chosen).
function drawPersons(result) {
  const body = $("persons").tBodies[0];
  body.replaceChildren();
  const timeline = result.timeline || [];
  const lastFrame = timeline.length ? timeline[timeline.length - 1].frame : 0;
  const withConfidence = result.persons.some((person) => typeof person.confidence === "number");
  for (const cell of document.querySelectorAll(".confidence-column")) cell.hidden = !withConfidence;
  for (const person of result.persons) {
    const row = body.insertRow();
    row.dataset.person = person.id;
    row.classList.add("clickable");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "person";
    button.setAttribute("aria-pressed", "false");
    const swatch = document.createElement("span");
    swatch.className = "person-swatch";
    swatch.style.background = personColor(person.id);
    button.append(swatch);
    if (person.picture) {
      const picture = document.createElement("img");
      picture.src = person.picture;
      picture.alt = `face of person ${person.id}`;
      button.append(picture);
    }
    button.append(`Person ${person.id}` + (person.primary ? " (main)" : ""));
    row.addEventListener("click", () => showPerson(result, person, true));
    row.insertCell().append(button);
    row.insertCell().textContent = `${person.age.value.toFixed(1)} (${person.age.interval[0].toFixed(0)}–` +
        `${person.age.interval[1].toFixed(0)})`;
    row.insertCell().textContent = `${percent(person.gender.female)} female` +
        (person.gender.uncertain ? " (uncertain)" : "");
    row.insertCell().textContent = person.expression.dominant;
    if (withConfidence) {
      const cell = row.insertCell();
      cell.className = "confidence-column";
      cell.textContent = typeof person.confidence === "number" ? percent(person.confidence) : "";
    }
    const seen = row.insertCell();
    seen.append(spansBar(person.spans || [], lastFrame), `${person.frames_seen} frames`);
  }
}

function spansBar(spans, lastFrame) {
  const width = 220, height = 16;
  const x = (frame) => (lastFrame > 0 ? (frame * width) / (lastFrame + 1) : 0);
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "spans", role: "img",
                           "aria-label": "seen in frames " + spans.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`))
                               .join(", ")});
  root.append(svg("rect", {x: 0, y: 4, width, height: height - 8, class: "axis"}));
  for (const [first, last] of spans) {
    root.append(svg("rect", {x: x(first).toFixed(1), y: 2, width: Math.max(x(last + 1) - x(first), 1.5).toFixed(1),
                             height: height - 4, class: "span"}));
  }
  return root;
}

function showPerson(result, person, seek) {
  for (const row of $("persons").tBodies[0].rows) {
    const chosen = Number(row.dataset.person) === person.id;
    row.classList.toggle("chosen", chosen);
    row.querySelector("button").setAttribute("aria-pressed", String(chosen));
  }
  $("person-id").textContent = `${person.id}` + (person.primary ? " (seen in most frames)" : "");
  $("age").textContent = person.age.value.toFixed(1);
  $("age-interval").textContent = `${person.age.interval[0].toFixed(0)}–${person.age.interval[1].toFixed(0)}`;
  setBar("male", person.gender.male);
  setBar("female", person.gender.female);
  const dominant = person.expression.dominant;
  $("dominant").textContent = dominant;
  $("dominant-probability").textContent = percent(person.expression[dominant]);
  const others = result.persons.length - 1;
  $("summary").textContent = `Person ${person.id}, seen in ${person.frames_seen} of ${result.meta.frames.read} ` +
      `frames` + (others ? `; ${others} other person${others > 1 ? "s" : ""} also seen.` : ".");
  $("evidence").textContent = evidenceText(person);
  $("evidence").hidden = !$("evidence").textContent;
  const timeline = result.timeline || [];
  drawChart(timeline, person.id);
  drawStrip(timeline, person.id, result.meta.input);
  player.choose(person.id);
  if (seek && person.spans && person.spans.length) player.seek(person.spans[0][0]);
}

// How much to trust a person's answer, when the server says: a confidence, gender flagged uncertain, and a
// quality summary (numbers, or an object of them).
function evidenceText(person) {
  const parts = [];
  if (typeof person.confidence === "number") parts.push(`confidence ${percent(person.confidence)}`);
  if (person.gender && person.gender.uncertain) parts.push("gender uncertain: the faces do not tell");
  const quality = person.quality;
  if (typeof quality === "number") parts.push(`quality ${quality.toFixed(2)}`);
  else if (quality && typeof quality === "object") {
    const items = Object.entries(quality).filter(([, value]) => typeof value === "number" ||
                                                                typeof value === "string");
    if (items.length) parts.push("quality: " + items.map(([key, value]) =>
        `${key.replaceAll("_", " ")} ${typeof value === "number" ? +value.toFixed(3) : value}`).join(", "));
  }
  return parts.join("; ");
}

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// One line per expression: the chosen person's face in each frame; a frame without it leaves a gap.
function drawChart(timeline, personId) {
  const chart = $("chart");
  chart.replaceChildren();
  const width = 900, height = 240, left = 44, right = 12, top = 10, bottom = 34;
  const plotW = width - left - right, plotH = height - top - bottom;
  const n = timeline.length;
  const x = (i) => left + (n > 1 ? (i * plotW) / (n - 1) : plotW / 2);
  const y = (p) => top + (1 - p) * plotH;
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
                           "aria-labelledby": "chart-title chart-desc"});
  root.append(svg("title", {id: "chart-title"}, "Expression probabilities per frame"));
  const faces = timeline.map((frame) => frame.faces.find((face) => face.person === personId));
  const shown = faces.filter(Boolean).length;
  root.append(svg("desc", {id: "chart-desc"},
                  `Seven lines, one per expression, probability 0 to 1 over ${n} frames; ` +
                  `person ${personId} is in ${shown} of them.`));
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(svg("line", {x1: left, x2: width - right, y1: y(p), y2: y(p), class: "grid"}));
    root.append(svg("text", {x: left - 6, y: y(p) + 4, "text-anchor": "end", class: "tick"}, p.toFixed(2)));
  }
  const step = Math.max(1, Math.ceil(n / 10));
  for (let i = 0; i < n; i += step) {
    root.append(svg("text", {x: x(i), y: height - bottom + 16, "text-anchor": "middle", class: "tick"},
                    String(timeline[i].frame)));
  }
  root.append(svg("text", {x: left + plotW / 2, y: height - 2, "text-anchor": "middle", class: "axis"}, "frame"));
  for (const label of EXPRESSIONS) {
    let d = "", pen = "M", points = 0;
    faces.forEach((face, i) => {
      if (!face) {
        pen = "M";
        return;
      }
      d += `${pen}${x(i).toFixed(1)},${y(face.expression[label]).toFixed(1)} `;
      pen = "L";
      points += 1;
    });
    if (points === 1) d += `h0.1`;     // a lone point still shows with a round cap
    const path = svg("path", {d: d.trim(), stroke: COLORS[label], class: "series", "data-expression": label,
                              "data-points": points});
    path.append(svg("title", {}, label));
    root.append(path);
  }
  const legend = document.createElement("ul");
  legend.className = "legend";
  legend.setAttribute("aria-label", "Legend");
  for (const label of EXPRESSIONS) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = COLORS[label];
    item.append(swatch, label);
    legend.append(item);
  }
  chart.append(root, legend);
  chart.dataset.frames = n;
}

// A picture of frame ``index`` of what the job analysed: a sample's file, or the job's kept upload.
function frameUrl(input, jobId, index, width) {
  if (input.kind === "sample") {
    return `api/v2/samples/${encodeURIComponent(input.name)}/frames/${index}.jpg?width=${width}`;
  }
  return `api/v2/jobs/${encodeURIComponent(jobId)}/frames/${index}.jpg?width=${width}`;
}

async function fetchFrame(url) {
  const response = await fetch(url, withToken());
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const frameWidth = Number(response.headers.get("X-Frame-Width"));
  const image = await createImageBitmap(await response.blob());
  return {image, scale: image.width / frameWidth};
}

// Thumbnails of the frames, the chosen person's box in green, anyone else's in orange.
function drawStrip(timeline, personId, input) {
  const strip = $("strip");
  strip.replaceChildren();
  thumbnails.clear();
  let frames = timeline;
  if (frames.length > MAX_THUMBNAILS) {
    const every = frames.length / MAX_THUMBNAILS;
    frames = Array.from({length: MAX_THUMBNAILS}, (_, i) => timeline[Math.floor(i * every)]);
  }
  $("strip-note").textContent = `${frames.length} of ${timeline.length} frames; ` +
      `green: person ${personId}'s face, orange: anyone else.`;
  for (const frame of frames) {
    const figure = document.createElement("figure");
    figure.setAttribute("role", "listitem");
    const canvas = document.createElement("canvas");
    canvas.width = THUMB_WIDTH;
    canvas.height = Math.round(THUMB_WIDTH * 3 / 4);
    const count = frame.faces.length;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `frame ${frame.frame} (${frame.name}): ${count} face${count === 1 ? "" : "s"}`);
    canvas.addEventListener("click", () => player.seek(frame.frame));
    const caption = document.createElement("figcaption");
    caption.textContent = `${frame.frame}`;
    figure.append(canvas, caption);
    strip.append(figure);
    thumbnails.add(() => drawThumbnail(canvas, frameUrl(input, player.jobId, frame.frame, THUMB_WIDTH), frame,
                                       personId));
  }
}

// Thumbnails load a few at a time, so that the player's picture (fetched outside this queue) never waits behind
// sixty of them: a browser opens at most six connections to one server. A new strip drops what is still waiting.
const THUMBNAILS_AT_ONCE = 3;
const thumbnails = {
  waiting: [], running: 0, generation: 0,
  clear() {
    this.waiting = [];
    this.generation += 1;
  },
  add(task) {
    this.waiting.push(task);
    this.next();
  },
  next() {
    while (this.running < THUMBNAILS_AT_ONCE && this.waiting.length) {
      const task = this.waiting.shift();
      this.running += 1;
      task().finally(() => {
        this.running -= 1;
        this.next();
      });
    }
  },
};

async function drawThumbnail(canvas, url, frame, personId) {
  try {
    const {image, scale} = await fetchFrame(url);
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    // Boxes are in frame pixels; the thumbnail is the frame scaled down by this factor.
    context.lineWidth = 2;
    for (const face of frame.faces) {
      const [x1, y1, x2, y2] = face.box.map((value) => value * scale);
      context.strokeStyle = face.person === personId ? "#00c853" : "#ff9100";
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      if (face.person === personId) canvas.dataset.box = [x1, y1, x2, y2].map((v) => v.toFixed(1)).join(",");
    }
    canvas.dataset.faces = frame.faces.length;
    canvas.dataset.drawn = "true";
  } catch (error) {
    canvas.dataset.drawn = "failed";
    canvas.setAttribute("aria-label", `frame ${frame.frame}: the thumbnail could not be loaded (${error.message})`);
  }
}

// --- the player: the input itself, with every person's box and id on the frame shown ----------------------------

// A video the browser can decode plays in a <video>, the boxes drawn on a canvas laid over it. Anything else (a
// sample, a zip, an AVI or GIF the browser cannot play) is shown frame by frame from the server's pictures, at the
// input's frame rate. Either way the boxes come from the timeline: the analysed frame at or before the one shown.
const player = {
  result: null, jobId: null, mode: null, fps: DEFAULT_FPS, stride: 1, frames: [], chosen: null,
  shown: -1, index: 0, timer: null, token: 0, objectUrl: null,

  stop() {
    this.token += 1;
    this.pause();
    const video = $("video");
    video.pause();
    video.removeAttribute("src");
    video.load();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  },

  async load(result, job) {
    this.stop();
    this.mode = null;
    const token = this.token;
    this.result = result;
    this.jobId = job.id;
    this.frames = result.timeline || [];
    const meta = result.meta;
    this.stride = (meta.options && meta.options.stride) || 1;
    this.fps = meta.input.fps || meta.fps || DEFAULT_FPS;
    this.shown = -1;
    this.index = 0;
    const position = $("position");
    position.max = Math.max(this.frames.length - 1, 0);
    position.value = 0;
    const stage = $("stage");
    stage.dataset.mode = "";
    if (!this.frames.length) {
      $("player-note").textContent = "No frame was analysed: nothing to show.";
      return;
    }
    if (meta.input.kind === "video" && await this.tryVideo(token)) return;
    if (token !== this.token) return;
    this.mode = "frames";
    stage.dataset.mode = "frames";
    $("video").hidden = true;
    $("frame-controls").hidden = false;
    $("player-note").textContent = (meta.input.kind === "video"
        ? "This browser cannot play this video format, so its analysed frames are shown one by one. "
        : "The analysed frames, one by one. ") + "Each person's box carries their id.";
    await this.showIndex(0);
  },

  // The video is fetched with the API token (a <video> cannot send one) and played from memory. A type the
  // browser says it cannot play (an .avi in Chromium) is not fetched at all.
  async tryVideo(token) {
    const video = $("video");
    const type = VIDEO_TYPES[(this.result.meta.input.name.match(/\.([^.]+)$/) || [])[1]?.toLowerCase()];
    if (type && !video.canPlayType(type)) return false;
    try {
      const response = await fetch(`api/v2/jobs/${encodeURIComponent(this.jobId)}/upload`, withToken());
      if (!response.ok) return false;
      const blob = await response.blob();
      if (token !== this.token) return false;
      this.objectUrl = URL.createObjectURL(blob);
      video.src = this.objectUrl;
      const playable = await new Promise((resolve) => {
        video.addEventListener("loadeddata", () => resolve(video.videoWidth > 0), {once: true});
        video.addEventListener("error", () => resolve(false), {once: true});
      });
      if (!playable || token !== this.token) {
        video.removeAttribute("src");
        video.load();
        return false;
      }
    } catch (error) {
      return false;
    }
    this.mode = "video";
    $("stage").dataset.mode = "video";
    video.hidden = false;
    $("frame-controls").hidden = true;
    $("player-note").textContent = "The uploaded video, with each person's box and id on the frame shown.";
    const draw = () => {
      if (token !== this.token) return;
      this.drawAt(Math.floor(video.currentTime * this.fps + 1e-6));
      if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(draw);
      else requestAnimationFrame(draw);
    };
    if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(draw);
    else requestAnimationFrame(draw);
    video.addEventListener("seeked", () => token === this.token && this.drawAt(
        Math.floor(video.currentTime * this.fps + 1e-6)));
    this.drawAt(0);
    return true;
  },

  // The analysed frame whose boxes belong on frame ``number``: the last one at or before it, if the stride
  // reaches it; past the last one analysed (max_frames) there is none.
  entryFor(number) {
    let low = 0, high = this.frames.length - 1, found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.frames[middle].frame <= number) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    if (found < 0 || number - this.frames[found].frame >= this.stride) return -1;
    return found;
  },

  drawAt(number) {
    const video = $("video");
    const canvas = $("overlay");
    const width = video.clientWidth, height = video.clientHeight;
    if (!width || !video.videoWidth) return;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    const index = this.entryFor(number);
    this.label(number, index);
    if (index < 0) return;
    this.index = index;
    this.boxes(context, this.frames[index], width / video.videoWidth);
  },

  async showIndex(index) {
    index = Math.max(0, Math.min(index, this.frames.length - 1));
    this.index = index;
    $("position").value = index;
    const entry = this.frames[index];
    const token = this.token;
    const url = frameUrl(this.result.meta.input, this.jobId, entry.frame, PLAYER_WIDTH);
    let picture;
    try {
      picture = await fetchFrame(url);
    } catch (error) {
      $("frame-label").textContent = `frame ${entry.frame}: the picture could not be loaded (${error.message})`;
      return;
    }
    if (token !== this.token || index !== this.index) return;
    const canvas = $("overlay");
    canvas.width = picture.image.width;
    canvas.height = picture.image.height;
    const context = canvas.getContext("2d");
    context.drawImage(picture.image, 0, 0);
    this.label(entry.frame, index);
    this.boxes(context, entry, picture.scale);
  },

  boxes(context, entry, scale) {
    const canvas = context.canvas;
    const drawn = [];
    context.font = "bold 14px system-ui, sans-serif";
    context.textBaseline = "bottom";
    for (const face of entry.faces) {
      const [x1, y1, x2, y2] = face.box.map((value) => value * scale);
      const color = personColor(face.person);
      context.lineWidth = face.person === this.chosen ? 4 : 2;
      context.strokeStyle = color;
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const text = `${face.person}`;
      const textWidth = context.measureText(text).width + 8;
      const top = y1 >= 18 ? y1 - 18 : y2;
      context.fillStyle = color;
      context.fillRect(x1 - context.lineWidth / 2, top, textWidth, 18);
      context.fillStyle = "#000";
      context.fillText(text, x1 + 4 - context.lineWidth / 2, top + 17);
      drawn.push({person: face.person, box: [x1, y1, x2, y2].map((v) => +v.toFixed(1))});
    }
    // What is on the canvas, for tests and for the assistive label.
    canvas.dataset.frame = entry.frame;
    canvas.dataset.boxes = JSON.stringify(drawn);
    canvas.setAttribute("aria-label", `frame ${entry.frame}: ` + (drawn.length
        ? drawn.map((item) => `person ${item.person}`).join(", ") : "no face"));
  },

  label(number, index) {
    const seconds = (number / this.fps).toFixed(2);
    const note = index < 0 ? " (not analysed)" : "";
    $("frame-label").textContent = `frame ${number} · ${seconds} s${note}`;
    if (index < 0) {
      const canvas = $("overlay");
      canvas.dataset.frame = number;
      canvas.dataset.boxes = "[]";
    }
  },

  choose(personId) {
    this.chosen = personId;
    if (this.mode === "video") this.drawAt(Math.floor($("video").currentTime * this.fps + 1e-6));
    else if (this.mode === "frames") this.showIndex(this.index);
  },

  seek(frameNumber) {
    if (this.mode === "video") {
      const video = $("video");
      video.pause();
      // The middle of the frame's display time, so rounding cannot land on the frame before.
      video.currentTime = (frameNumber + 0.5) / this.fps;
    } else if (this.mode === "frames") {
      this.pause();
      const index = this.entryFor(frameNumber);
      this.showIndex(index < 0 ? 0 : index);
    }
  },

  play() {
    if (this.timer !== null) return;
    $("play").textContent = "Pause";
    $("play").setAttribute("aria-pressed", "true");
    const step = async () => {
      const started = performance.now();
      if (this.index >= this.frames.length - 1) {
        this.pause();
        return;
      }
      await this.showIndex(this.index + 1);
      if (this.timer === null) return;
      const wait = Math.max(0, (this.stride * 1000) / this.fps - (performance.now() - started));
      this.timer = setTimeout(step, wait);
    };
    this.timer = setTimeout(step, 0);
  },

  pause() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    $("play").textContent = "Play";
    $("play").setAttribute("aria-pressed", "false");
  },
};

// --- downloads ---------------------------------------------------------------------------------------------------

function csvCell(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csv(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

// The persons as one row each; fields the server may add (confidence, gender uncertain, quality numbers) get
// their columns only when present.
function personsCsv(result) {
  const persons = result.persons;
  const qualityKeys = [...new Set(persons.flatMap((person) => (person.quality && typeof person.quality === "object")
      ? Object.keys(person.quality).filter((key) => typeof person.quality[key] === "number") : []))];
  const hasConfidence = persons.some((person) => typeof person.confidence === "number");
  const hasUncertain = persons.some((person) => person.gender && "uncertain" in person.gender);
  const header = ["person", "primary", "frames_seen", "age", "age_low", "age_high", "male", "female",
                  ...(hasUncertain ? ["gender_uncertain"] : []), ...(hasConfidence ? ["confidence"] : []),
                  "expression", ...EXPRESSIONS, "mean_detection_confidence", "spans",
                  ...qualityKeys.map((key) => `quality_${key}`)];
  const rows = persons.map((person) => [
    person.id, person.primary, person.frames_seen, person.age.value, person.age.interval[0], person.age.interval[1],
    person.gender.male, person.gender.female, ...(hasUncertain ? [person.gender.uncertain] : []),
    ...(hasConfidence ? [person.confidence] : []), person.expression.dominant,
    ...EXPRESSIONS.map((label) => person.expression[label]), person.mean_confidence,
    (person.spans || []).map(([a, b]) => `${a}-${b}`).join(" "),
    ...qualityKeys.map((key) => person.quality[key])]);
  return csv(header, rows);
}

// One row per face per analysed frame (the timeline), with its box in frame pixels.
function facesCsv(result) {
  const fps = result.meta.input.fps || result.meta.fps || null;
  const header = ["frame", "seconds", "name", "person", "x1", "y1", "x2", "y2", "detection_confidence", "age",
                  "male", "female", "expression", ...EXPRESSIONS];
  const rows = [];
  for (const frame of result.timeline || []) {
    const seconds = frame.time !== undefined ? frame.time : (fps ? +(frame.frame / fps).toFixed(3) : "");
    for (const face of frame.faces) {
      rows.push([frame.frame, seconds, frame.name, face.person, ...face.box, face.confidence, face.age,
                 face.gender.male, face.gender.female, face.expression.dominant,
                 ...EXPRESSIONS.map((label) => face.expression[label])]);
    }
  }
  return csv(header, rows);
}

function prepareDownloads(result) {
  const base = (result.meta.input.name || "answer").replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]+/g, "_");
  const files = [["download-json", `${base}.json`, JSON.stringify(result, null, 2), "application/json"],
                 ["download-persons", `${base}_persons.csv`, personsCsv(result), "text/csv"],
                 ["download-faces", `${base}_faces.csv`, facesCsv(result), "text/csv"]];
  for (const [id, name, text, type] of files) {
    const link = $(id);
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], {type}));
    link.download = name;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", onKindChange);
  $("input-form").addEventListener("submit", onSubmit);
  $("cancel").addEventListener("click", onCancel);
  $("play").addEventListener("click", () => (player.timer === null ? player.play() : player.pause()));
  $("position").addEventListener("input", () => {
    player.pause();
    player.showIndex(Number($("position").value));
  });
  $("token").value = storedToken();
  // A new token may open what the last one could not: the sample list is asked for again.
  $("token").addEventListener("change", () => {
    saveToken();
    $("error").hidden = true;
    loadSamples();
  });
  onKindChange();
  loadSamples();
  loadOptionBounds();
});
