// ferkeras live page: camera -> JPEG frames over WS /v1/stream -> boxes, labels and probability bars.
"use strict";

const CAPTURE_WIDTH = 640;     // frames are scaled down to this width before sending
const JPEG_QUALITY = 0.8;
const MAX_IN_FLIGHT = 2;       // frames sent but not yet answered; the server skips stale ones
const ANSWER_TIMEOUT_MS = 3000;
const COLORS = {
  angry: "#ff5252", disgust: "#8bc34a", fear: "#b388ff", happy: "#ffd740",
  neutral: "#b0bec5", sad: "#40c4ff", surprise: "#ff9100", uncertain: "#9e9e9e",
};

const $ = (id) => document.getElementById(id);
const video = $("video"), overlay = $("overlay"), context = overlay.getContext("2d");
const capture = document.createElement("canvas");

const stream = { socket: null, sent: 0, answered: -1, lastAnswerAt: 0, retryMs: 1000, answers: [] };

function setState(state, status, message) {
  document.body.dataset.state = state;
  $("status").textContent = status;
  $("message").hidden = !message;
  $("message").textContent = message || "";
}

async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error("This browser gives no camera access here (the page must be opened as http://localhost or over https)."), { name: "Unsupported" });
  }
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  await video.play();
}

function cameraProblem(error) {
  const reasons = {
    NotAllowedError: "Camera access was refused. Allow the camera for this page in the browser's site settings, then reload.",
    NotFoundError: "No camera was found. Connect one, then reload.",
    NotReadableError: "The camera is in use by another program. Close it, then reload.",
  };
  setState("error", "No camera", reasons[error.name] || `The camera could not be opened: ${error.message}`);
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream`;
  const socket = new WebSocket(url, ["ferkeras.v1"]);
  stream.socket = socket;
  stream.sent = 0;
  stream.answered = -1;
  socket.onopen = () => {
    stream.retryMs = 1000;
    stream.lastAnswerAt = performance.now();
    setState("live", "Connected");
  };
  socket.onmessage = (event) => onAnswer(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (stream.socket !== socket) return;
    stream.socket = null;
    draw([], 1, 1);
    const seconds = Math.round(stream.retryMs / 1000);
    const why = event.code === 1008 ? "The service refused this page (token or origin)." : "The ferkeras service is not answering.";
    setState("offline", "Disconnected", `${why} Reconnecting in ${seconds} s…`);
    setTimeout(connect, stream.retryMs);
    stream.retryMs = Math.min(stream.retryMs * 2, 10000);
  };
}

function onAnswer(answer) {
  if (typeof answer.frame === "number") stream.answered = answer.frame;
  stream.lastAnswerAt = performance.now();
  if (answer.type === "error") {
    console.warn("frame refused:", answer.error.message);
    return;
  }
  if (answer.type !== "faces") return;
  const now = performance.now();
  stream.answers.push(now);
  while (stream.answers.length && now - stream.answers[0] > 1000) stream.answers.shift();
  $("fps").textContent = `${stream.answers.length} FPS`;
  $("latency").textContent = `${answer.server_ms.toFixed(0)} ms`;
  draw(answer.faces, answer.image.width, answer.image.height);
}

function draw(faces, width, height) {
  overlay.width = width;
  overlay.height = height;
  context.clearRect(0, 0, width, height);
  const scale = Math.max(1, width / 640);
  context.lineWidth = 2 * scale;
  context.font = `${Math.round(14 * scale)}px system-ui, sans-serif`;
  const items = [];
  for (const face of faces) {
    const { x, y, w, h } = face.box;
    const color = COLORS[face.label] || "#fff";
    context.strokeStyle = color;
    context.strokeRect(x, y, w, h);
    const text = face.label === "uncertain" ? `? ${leader(face.probabilities)} ${Math.round(face.confidence * 100)}%` : `${face.label} ${Math.round(face.confidence * 100)}%`;
    const textHeight = 18 * scale;
    context.fillStyle = color;
    context.fillRect(x, Math.max(0, y - textHeight), context.measureText(text).width + 8 * scale, textHeight);
    context.fillStyle = "#000";
    context.fillText(text, x + 4 * scale, Math.max(textHeight, y) - 4 * scale);
    drawBars(face.probabilities, x, y + h + 2 * scale, Math.max(w, 70 * scale), scale);
    const item = document.createElement("li");
    item.dataset.label = face.label;
    item.dataset.faceId = face.face_id ?? "";
    item.style.borderLeft = `4px solid ${color}`;
    item.textContent = `#${face.face_id ?? "?"} ${text}`;
    items.push(item);
  }
  $("faces").replaceChildren(...items);
}

function leader(probabilities) {
  return Object.entries(probabilities).reduce((best, item) => (item[1] > best[1] ? item : best))[0];
}

function showLegend(names) {
  const legend = $("legend");
  if (legend.childElementCount) return;
  legend.replaceChildren(...names.map((name) => {
    const item = document.createElement("li");
    item.style.setProperty("--swatch", COLORS[name] || "#fff");
    item.textContent = name;
    return item;
  }));
}

function drawBars(probabilities, x, y, width, scale) {
  const names = Object.keys(probabilities);
  showLegend(names);
  const bar = 5 * scale;
  names.forEach((name, i) => {
    context.fillStyle = "rgba(0,0,0,.55)";
    context.fillRect(x, y + i * bar, width, bar - 1);
    context.fillStyle = COLORS[name] || "#fff";
    context.fillRect(x, y + i * bar, width * probabilities[name], bar - 1);
  });
}

function sendFrame() {
  const socket = stream.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN || video.readyState < 2 || !video.videoWidth) return;
  if (stream.sent - 1 - stream.answered >= MAX_IN_FLIGHT) {
    if (performance.now() - stream.lastAnswerAt < ANSWER_TIMEOUT_MS) return;
    stream.answered = stream.sent - 1; // answers lost: start counting again
  }
  const scale = Math.min(1, CAPTURE_WIDTH / video.videoWidth);
  capture.width = Math.round(video.videoWidth * scale);
  capture.height = Math.round(video.videoHeight * scale);
  capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
  stream.sent += 1;
  capture.toBlob((blob) => {
    if (blob && socket.readyState === WebSocket.OPEN) socket.send(blob);
  }, "image/jpeg", JPEG_QUALITY);
}

async function main() {
  setState("starting", "Opening the camera…");
  try {
    await openCamera();
  } catch (error) {
    cameraProblem(error);
    return;
  }
  setState("connecting", "Connecting…");
  connect();
  const loop = () => {
    sendFrame();
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}

main();
