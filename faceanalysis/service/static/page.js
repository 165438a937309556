// The browser page: submit a job (a sample or an upload), poll it, then list every person and draw the chosen one.
// Plain JS with no library and no build step, so the page is exactly what the service serves.
"use strict";

const EXPRESSIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
// Distinct under the common colour-vision deficiencies (Okabe-Ito), so the chart lines can be told apart.
const COLORS = {angry: "#d55e00", disgust: "#009e73", fear: "#cc79a7", happy: "#e69f00",
                sad: "#0072b2", surprise: "#56b4e9", neutral: "#555555"};
const POLL_MS = 300;
const MAX_THUMBNAILS = 60;     // a long video would otherwise ask for thousands of images
const THUMB_WIDTH = 160;

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

function buildRequest() {
  if (chosenKind() === "sample") {
    const sample = $("sample").value;
    if (!sample) throw new ApiError("invalid_request", "choose a sample", 0);
    return {label: sample, init: {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify({sample, timeline: true})}};
  }
  const file = $("file").files[0];
  if (!file) throw new ApiError("invalid_request", "choose a video or a zip file", 0);
  const form = new FormData();
  // The API takes a zip as "zip" and anything else as "video"; it refuses what is neither.
  form.append(file.name.toLowerCase().endsWith(".zip") ? "zip" : "video", file);
  form.append("timeline", "true");
  return {label: file.name, init: {method: "POST", body: form}};
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForJob(url) {
  for (;;) {
    const job = await api(url);
    showProgress(job.progress);
    if (job.status === "done") return job.result;
    if (job.status === "failed") throw new ApiError(job.error.code, job.error.message, job.error.status);
    setStatus(job.status === "queued" ? "Waiting for the jobs before this one…" : "Analysing…");
    await sleep(POLL_MS);
  }
}

async function onSubmit(event) {
  event.preventDefault();
  $("error").hidden = true;
  $("results").hidden = true;
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
  showProgress(null);
  setStatus(chosenKind() === "upload" ? "Uploading…" : "Submitting…");
  try {
    const job = await api("api/v2/jobs", request.init);
    // job.url comes from the server (url_for), so it already carries any path prefix.
    const result = await waitForJob(job.url);
    setStatus(`Done: ${request.label}, ${result.meta.frames.read} frames read in ` +
              `${(result.meta.timings_ms.total / 1000).toFixed(1)} s.`);
    render(result);
  } catch (error) {
    setStatus("");
    showError(error);
  } finally {
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

function render(result) {
  drawPersons(result);
  showPerson(result, result.persons.find((candidate) => candidate.primary));
  $("results").hidden = false;
}

// One row per person: picture, age, gender, expression, and the frames seen as spans on the frame axis.
function drawPersons(result) {
  const body = $("persons").tBodies[0];
  body.replaceChildren();
  const timeline = result.timeline || [];
  const lastFrame = timeline.length ? timeline[timeline.length - 1].frame : 0;
  for (const person of result.persons) {
    const row = body.insertRow();
    row.dataset.person = person.id;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "person";
    button.setAttribute("aria-pressed", "false");
    if (person.picture) {
      const picture = document.createElement("img");
      picture.src = person.picture;
      picture.alt = `face of person ${person.id}`;
      button.append(picture);
    }
    button.append(`Person ${person.id}` + (person.primary ? " (main)" : ""));
    button.addEventListener("click", () => showPerson(result, person));
    row.insertCell().append(button);
    row.insertCell().textContent = `${person.age.value.toFixed(1)} (${person.age.interval[0].toFixed(0)}–` +
        `${person.age.interval[1].toFixed(0)})`;
    row.insertCell().textContent = `${percent(person.gender.female)} female`;
    row.insertCell().textContent = person.expression.dominant;
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

function showPerson(result, person) {
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
  const timeline = result.timeline || [];
  drawChart(timeline, person.id);
  drawStrip(timeline, person.id, result.meta.input);
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

// Thumbnails come from the sample's frames on the server; an upload is not kept, so it has no strip.
function drawStrip(timeline, personId, input) {
  const strip = $("strip");
  strip.replaceChildren();
  if (input.kind !== "sample") {
    $("strip-note").textContent = "Frame thumbnails are shown for samples only: uploads are not kept.";
    return;
  }
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
    const caption = document.createElement("figcaption");
    caption.textContent = `${frame.frame}`;
    figure.append(canvas, caption);
    strip.append(figure);
    drawThumbnail(canvas, input.name, frame, personId);
  }
}

async function drawThumbnail(canvas, sample, frame, personId) {
  const url = `api/v2/samples/${encodeURIComponent(sample)}/frames/${frame.frame}.jpg?width=${THUMB_WIDTH}`;
  try {
    const response = await fetch(url, withToken());
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const frameWidth = Number(response.headers.get("X-Frame-Width"));
    const image = await createImageBitmap(await response.blob());
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    // Boxes are in frame pixels; the thumbnail is the frame scaled down by this factor.
    const scale = image.width / frameWidth;
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

document.addEventListener("DOMContentLoaded", () => {
  for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", onKindChange);
  $("input-form").addEventListener("submit", onSubmit);
  $("token").value = storedToken();
  // A new token may open what the last one could not: the sample list is asked for again.
  $("token").addEventListener("change", () => {
    saveToken();
    $("error").hidden = true;
    loadSamples();
  });
  onKindChange();
  loadSamples();
});
