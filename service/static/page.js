// The edge-infer page: pick a model, give it images, show each image's top-k.
// Plain JavaScript, no build step, nothing fetched from outside the service. Every URL is
// relative to the page, so the page works under a path prefix (API Gateway stage, root_path).
"use strict";

function startPage() {
  const $ = (id) => document.getElementById(id);
  const modelSelect = $("model");
  const topKInput = $("top-k");
  const modelNote = $("model-note");
  const keyPanel = $("key-panel");
  const keyForm = $("key-form");
  const keyInput = $("api-key");
  const statusLine = $("status");
  const drop = $("drop");
  const fileInput = $("files");
  const results = $("results");
  const cameraInput = $("camera");
  const numberField = $("number-field");
  const numberMode = $("number-mode");
  // Model name -> whether it is a digit model (manifest preprocessing mnist_digit).
  const digitModels = new Map();

  // The API key lives in this variable only: never in storage, cookies or the URL.
  let apiKey = "";
  const keyHeader = document.body.dataset.keyHeader || "X-API-Key";
  $("key-header").textContent = keyHeader;
  const BATCH_FILES = 16;
  // null = not tried yet; false once the batch route answered 404/405 (older server).
  let batchRoute = null;
  let pendingAfterKey = null;

  class ApiError extends Error {
    constructor(status, detail, retryAfter) {
      super(detail);
      this.status = status;
      this.detail = detail;
      this.retryAfter = retryAfter;
    }
  }

  function headers() {
    return apiKey ? { [keyHeader]: apiKey } : {};
  }

  function detailText(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      // FastAPI validation errors: [{loc, msg, ...}]
      return detail.map((d) => (d.loc ? d.loc.join(".") + ": " : "") + (d.msg || JSON.stringify(d))).join("; ");
    }
    return detail === undefined ? "" : JSON.stringify(detail);
  }

  async function call(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
    } catch (err) {
      throw new ApiError(0, "could not reach the service (" + err.message + ")");
    }
    let body = null;
    const text = await response.text();
    try {
      body = text ? JSON.parse(text) : null;
    } catch (err) {
      body = { detail: text.slice(0, 300) };
    }
    if (!response.ok) {
      const retry = response.headers.get("Retry-After");
      throw new ApiError(response.status, detailText(body && body.detail), retry);
    }
    return body;
  }

  // One sentence a person can act on, for every status the API returns.
  function explain(err) {
    const d = err.detail ? ": " + err.detail : "";
    switch (err.status) {
      case 0: return "Network error" + d + ".";
      case 400: return "The image could not be read (empty, truncated or corrupt)" + d;
      case 401: return "API key needed or not accepted" + d + ". Enter a valid key above.";
      case 404: return "Not found" + d;
      case 405: return "This service does not accept that request" + d;
      case 413: return "Too large" + d + ". Try a smaller image, or fewer images at once.";
      case 415: return "Not an image, or a format the service does not accept" + d;
      case 422: return "Invalid request" + d;
      case 429:
      case 503:
        if (err.retryAfter) {
          return "The server is busy; retry in " + err.retryAfter + " s" + d;
        }
        return "The model is unavailable" + d;
      default: return "Error " + err.status + d;
    }
  }

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status" + (kind ? " " + kind : "");
  }

  function askForKey(message, retry) {
    keyPanel.hidden = false;
    pendingAfterKey = retry;
    setStatus(message, "error");
    keyInput.focus();
  }

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = keyInput.value.trim();
    setStatus("");
    const retry = pendingAfterKey;
    pendingAfterKey = null;
    if (retry) retry();
  });

  // ---- models ----
  let models = [];

  async function loadModels() {
    try {
      const list = await call("models");
      models = list.models;
      keyPanel.hidden = !apiKey;
      modelSelect.replaceChildren();
      for (const m of models) {
        const option = document.createElement("option");
        option.value = m.name;
        option.textContent = m.name + " v" + m.version + (m.for_real_predictions ? "" : " — not for real predictions");
        option.selected = m.name === list.default_model;
        modelSelect.append(option);
      }
      modelSelect.disabled = models.length === 0;
      if (models.length === 0) setStatus("No model is being served (see health).", "error");
      describeModel();
    } catch (err) {
      if (err.status === 401) {
        askForKey(explain(err), loadModels);
      } else {
        setStatus("Could not list the models. " + explain(err), "error");
      }
    }
  }

  // The "read a number" switch is offered for digit models only (GET models/{name} says).
  async function offerNumberSwitch(name) {
    if (!digitModels.has(name)) {
      try {
        const info = await call("models/" + encodeURIComponent(name));
        digitModels.set(name, info.preprocessing && info.preprocessing.kind === "mnist_digit");
      } catch (err) {
        digitModels.set(name, false);
      }
    }
    if (modelSelect.value === name) numberField.hidden = !digitModels.get(name);
  }

  function numberWanted(model) {
    return numberMode.checked && !numberField.hidden && digitModels.get(model) === true;
  }

  function describeModel() {
    const m = models.find((x) => x.name === modelSelect.value);
    if (!m) {
      modelNote.hidden = true;
      numberField.hidden = true;
      return;
    }
    offerNumberSwitch(m.name);
    modelNote.hidden = false;
    modelNote.className = "note" + (m.for_real_predictions ? "" : " warn");
    modelNote.textContent = m.for_real_predictions
      ? m.description + " (" + m.num_classes + " classes)"
      : "Not for real predictions: random weights, served only for parity and speed tests. " + m.description;
  }

  modelSelect.addEventListener("change", describeModel);

  // ---- images in ----
  function imagesFrom(list) {
    return Array.from(list || []).filter((f) => f && f.size !== undefined);
  }

  for (const input of [fileInput, cameraInput]) {
    input.addEventListener("change", () => {
      classify(imagesFrom(input.files));
      input.value = "";
    });
  }

  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    classify(imagesFrom(event.dataTransfer && event.dataTransfer.files));
  });
  document.addEventListener("paste", (event) => {
    const files = imagesFrom(event.clipboardData && event.clipboardData.files);
    if (files.length) {
      event.preventDefault();
      classify(files.map((f, i) => (f.name && f.name !== "image.png" ? f : new File([f], "pasted-" + (i + 1) + ".png", { type: f.type }))));
    }
  });

  // ---- results out ----
  function card(file) {
    const el = document.createElement("article");
    el.className = "card pending";
    el.setAttribute("data-testid", "result");
    const img = document.createElement("img");
    img.alt = "";
    const photo = document.createElement("div");
    photo.className = "photo";
    photo.append(img);
    img.addEventListener("load", () => URL.revokeObjectURL(img.src));
    img.addEventListener("error", () => img.classList.add("broken"));
    if (file.type.startsWith("image/")) img.src = URL.createObjectURL(file);
    else img.classList.add("broken");
    const body = document.createElement("div");
    body.className = "card-body";
    const name = document.createElement("h2");
    name.textContent = file.name;
    const state = document.createElement("p");
    state.className = "muted";
    state.textContent = "classifying…";
    body.append(name, state);
    el.append(photo, body);
    return { el, body, state, img, photo };
  }

  function percent(p) {
    return (p * 100).toFixed(1) + " %";
  }

  function showPrediction(view, prediction, seconds, batchSize) {
    view.el.className = "card done";
    const top = document.createElement("p");
    top.className = "prediction";
    top.setAttribute("data-testid", "prediction");
    top.textContent = prediction.prediction + " — " + percent(prediction.confidence);
    const list = document.createElement("ol");
    list.className = "top-k";
    for (const row of prediction.top_k) {
      const li = document.createElement("li");
      li.setAttribute("data-testid", "top-k-row");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = row.label;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "1");
      bar.setAttribute("aria-valuenow", String(row.probability));
      bar.setAttribute("aria-label", row.label);
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = Math.max(0, Math.min(100, row.probability * 100)).toFixed(1) + "%";
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = percent(row.probability);
      li.append(label, bar, value);
      list.append(li);
    }
    const meta = document.createElement("p");
    meta.className = "muted meta";
    const took = (seconds * 1000).toFixed(0) + " ms";
    meta.textContent =
      prediction.model + " v" + prediction.model_version + " · " +
      (batchSize > 1 ? took + " for a batch of " + batchSize : took);
    view.state.replaceWith(top);
    view.body.append(list, meta);
    if (!prediction.for_real_predictions) {
      const warn = document.createElement("p");
      warn.className = "note warn";
      warn.textContent = "Not for real predictions: this model has random weights.";
      view.body.append(warn);
    }
  }

  // A number: the digits and their product of confidences, each digit's box drawn over the
  // photo (boxes are in pixels of the upright image, as the browser shows it).
  function showNumber(view, reading, seconds) {
    view.el.className = "card done number";
    const top = document.createElement("p");
    top.className = "prediction";
    top.setAttribute("data-testid", "number");
    top.textContent = reading.number + " — " + percent(reading.confidence);
    const list = document.createElement("ol");
    list.className = "digits";
    for (const digit of reading.digits) {
      const li = document.createElement("li");
      li.setAttribute("data-testid", "digit-row");
      li.textContent = digit.prediction + " " + percent(digit.confidence);
      list.append(li);
    }
    const meta = document.createElement("p");
    meta.className = "muted meta";
    meta.textContent =
      reading.model + " v" + reading.model_version + " · " + (seconds * 1000).toFixed(0) + " ms";
    view.state.replaceWith(top);
    view.body.append(list, meta);
    const draw = () => {
      const w = view.img.naturalWidth, h = view.img.naturalHeight;
      if (!w || !h) return;
      for (const digit of reading.digits) {
        const [left, topPx, right, bottom] = digit.box;
        const box = document.createElement("span");
        box.className = "digit-box";
        box.setAttribute("data-testid", "digit-box");
        box.style.left = (100 * left / w).toFixed(3) + "%";
        box.style.top = (100 * topPx / h).toFixed(3) + "%";
        box.style.width = (100 * (right - left) / w).toFixed(3) + "%";
        box.style.height = (100 * (bottom - topPx) / h).toFixed(3) + "%";
        box.textContent = digit.prediction;
        view.photo.append(box);
      }
    };
    if (view.img.complete && view.img.naturalWidth) draw();
    else view.img.addEventListener("load", draw, { once: true });
  }

  async function readNumber(model, file, view) {
    const form = new FormData();
    form.append("file", file, file.name);
    const k = Math.max(1, Math.min(1000, parseInt(topKInput.value, 10) || 3));
    const start = performance.now();
    try {
      const reading = await call("models/" + encodeURIComponent(model) + "/number?top_k=" + k, {
        method: "POST",
        body: form,
      });
      showNumber(view, reading, (performance.now() - start) / 1000);
    } catch (err) {
      handleError(err, [file], [view], model);
    }
  }

  function showError(view, message, retry) {
    view.el.className = "card failed";
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("data-testid", "error");
    p.setAttribute("role", "alert");
    p.textContent = message;
    view.state.replaceWith(p);
    view.state = p;
    if (retry) {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Retry";
      again.addEventListener("click", () => {
        view.el.remove();
        retry();
      });
      view.body.append(again);
    }
  }

  function predictPath(model, batch) {
    const k = Math.max(1, Math.min(1000, parseInt(topKInput.value, 10) || 3));
    return "models/" + encodeURIComponent(model) + "/predict" + (batch ? "/batch" : "") + "?top_k=" + k;
  }

  async function predictOne(model, file, view) {
    const form = new FormData();
    form.append("file", file, file.name);
    const start = performance.now();
    try {
      const prediction = await call(predictPath(model, false), { method: "POST", body: form });
      showPrediction(view, prediction, (performance.now() - start) / 1000, 1);
    } catch (err) {
      handleError(err, [file], [view], model);
    }
  }

  function handleError(err, files, views, model) {
    const retry = () => classify(files, model);
    if (err.status === 401) {
      views.forEach((v) => v.el.remove());
      askForKey(explain(err), retry);
      return;
    }
    const busy = (err.status === 503 || err.status === 429) && err.retryAfter;
    views.forEach((v) => showError(v, explain(err), busy || err.status === 0 ? retry : null));
  }

  async function predictBatch(model, files, views) {
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    const start = performance.now();
    let answer;
    try {
      answer = await call(predictPath(model, true), { method: "POST", body: form });
    } catch (err) {
      // No batch route on this server ("Not Found" from routing, not "no model named ...").
      if (err.status === 405 || (err.status === 404 && err.detail === "Not Found")) {
        batchRoute = false;
        return Promise.all(files.map((f, i) => predictOne(model, f, views[i])));
      }
      // A batch over the body limit: one image per request still fits.
      if (err.status === 413 && files.length > 1) {
        return Promise.all(files.map((f, i) => predictOne(model, f, views[i])));
      }
      handleError(err, files, views, model);
      return undefined;
    }
    batchRoute = true;
    const seconds = (performance.now() - start) / 1000;
    answer.predictions.forEach((item, i) => {
      if (!views[i]) return;
      if (item.error) {
        showError(views[i], explain(new ApiError(item.error.status, detailText(item.error.detail))));
      } else {
        showPrediction(views[i], item, seconds, files.length);
      }
    });
    return undefined;
  }

  async function classify(files, model) {
    if (!files.length) return;
    model = model || modelSelect.value;
    if (!model) {
      setStatus("No model to classify with yet.", "error");
      return;
    }
    setStatus("");
    const views = files.map(card);
    // Newest first, each group in the order the files were given.
    results.prepend(...views.map((v) => v.el));
    if (numberWanted(model)) {
      await Promise.all(files.map((f, i) => readNumber(model, f, views[i])));
    } else if (files.length > 1 && batchRoute !== false) {
      // At most BATCH_FILES per request: under the server's per-request file limit (32 by
      // default) and its body limit for ordinary photos; a 413 still falls back to one each.
      const batches = [];
      for (let i = 0; i < files.length; i += BATCH_FILES) {
        batches.push(predictBatch(model, files.slice(i, i + BATCH_FILES), views.slice(i, i + BATCH_FILES)));
      }
      await Promise.all(batches);
    } else {
      await Promise.all(files.map((f, i) => predictOne(model, f, views[i])));
    }
  }

  loadModels();
}

// Added by the page's inline loader, this script may run before the body is parsed.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", startPage);
} else {
  startPage();
}
