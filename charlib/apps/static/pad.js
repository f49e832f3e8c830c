// The drawing pad served by `python -m charlib serve`: pointer events (mouse, touch, pen) draw
// white on black; the strokes, not the pixels, go to POST /predict (as on the notebook's pad).
"use strict";
(() => {
  const PEN = 0.06; // pen width as a share of the canvas side: charlib.vision.strokes.PEN
  const pad = document.querySelector(".charlib-pad");
  const canvas = pad.querySelector(".charlib-canvas");
  const ctx = canvas.getContext("2d");
  const results = pad.querySelector(".charlib-results");
  const counter = pad.querySelector(".charlib-strokes");
  const live = pad.querySelector(".charlib-live input");
  const view = pad.querySelector(".charlib-view");
  const footer = pad.querySelector(".charlib-footer");
  const teach = pad.querySelector(".charlib-teach");
  const label = pad.querySelector(".charlib-label");
  const saved = pad.querySelector(".charlib-saved");
  const counts = pad.querySelector(".charlib-counts");
  let topGuess = null; // the model's last answer, kept with a saved drawing
  let strokes = [];
  let current = null; // the stroke being drawn, with the pointer that draws it
  let asked = 0; // requests sent; an answer to an older one is dropped

  function reset() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = ctx.fillStyle = "#fff";
    ctx.lineWidth = PEN * Math.min(canvas.width, canvas.height);
    ctx.lineCap = ctx.lineJoin = "round";
  }

  function point(event) { // on the canvas, in its own pixels, clamped to it
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) * canvas.width) / box.width;
    const y = ((event.clientY - box.top) * canvas.height) / box.height;
    const clamp = (v, top) => Math.round(Math.min(Math.max(v, 0), top) * 10) / 10;
    return [clamp(x, canvas.width), clamp(y, canvas.height)];
  }

  function dot([x, y]) {
    ctx.beginPath();
    ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function showCount() {
    const n = strokes.length;
    counter.textContent = `${n} stroke${n === 1 ? "" : "s"}`;
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (current || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = { id: event.pointerId, points: [point(event)] };
    dot(current.points[0]);
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!current || event.pointerId !== current.id) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      const p = point(e);
      const last = current.points[current.points.length - 1];
      if (p[0] === last[0] && p[1] === last[1]) continue;
      ctx.beginPath();
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(p[0], p[1]);
      ctx.stroke();
      current.points.push(p);
    }
  });

  function endStroke(event) {
    if (!current || event.pointerId !== current.id) return;
    strokes.push(current.points);
    current = null;
    showCount();
    if (live.checked) predict();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  function row(guess) {
    const pct = (100 * guess.confidence).toFixed(1);
    const div = document.createElement("div");
    div.className = "charlib-prediction";
    div.dataset.char = guess.char;
    div.dataset.code = guess.code;
    div.dataset.confidence = guess.confidence.toFixed(6);
    div.innerHTML =
      '<span class="charlib-char"></span><span class="charlib-code"></span>' +
      '<span class="charlib-bar"><span></span></span><span class="charlib-confidence"></span>';
    div.querySelector(".charlib-char").textContent = guess.char;
    div.querySelector(".charlib-code").textContent = guess.code;
    div.querySelector(".charlib-bar span").style.width = `${pct}%`;
    div.querySelector(".charlib-confidence").textContent = `${pct}%`;
    div.title = "pick this character as the right one";
    div.addEventListener("click", () => { label.value = guess.char; label.focus(); });
    return div;
  }

  function status(text, kind) {
    const div = document.createElement("div");
    div.className = `charlib-status charlib-${kind}`;
    div.textContent = text;
    return div;
  }

  function show(answer) {
    results.replaceChildren();
    results.classList.toggle("charlib-unsure-bars", answer.status === "unsure");
    if (answer.status === "nothing drawn") {
      results.append(status("nothing drawn", "nothing-drawn"));
    } else {
      const note = answer.status === "unsure" ? " (low confidence)" : "";
      const head = `${answer.status}${note} · ${Math.round(answer.ms)} ms on the server`;
      results.append(status(head, answer.status.replace(" ", "-")));
      for (const guess of answer.guesses) results.append(row(guess));
    }
    topGuess = answer.guesses && answer.guesses.length ? answer.guesses[0].char : null;
    view.hidden = !answer.view;
    if (answer.view) view.querySelector("img").src = answer.view;
  }

  async function predict() {
    const mine = ++asked;
    const body = { strokes, width: canvas.width, height: canvas.height };
    let answer;
    try {
      const response = await fetch("/predict?top_k=5&view=true", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      answer = await response.json();
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    } catch (error) {
      if (mine !== asked) return;
      results.replaceChildren(status(`could not predict: ${error.message}`, "error"));
      return;
    }
    if (mine === asked) show(answer);
  }

  function clear() {
    asked++; // an answer still on its way is for the old drawing
    strokes = [];
    current = null;
    reset();
    showCount();
    view.hidden = true;
    results.classList.remove("charlib-unsure-bars");
    results.replaceChildren(status("Draw a character, then press Predict.", "ready"));
  }

  function showCounts(examples) {
    counts.textContent = `saved so far: ${examples.summary}`;
  }

  async function save() {
    const body = { strokes, width: canvas.width, height: canvas.height, label: label.value };
    if (topGuess !== null) body.guess = topGuess;
    saved.className = "charlib-saved";
    try {
      const response = await fetch("/mine", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      saved.textContent = `saved as ${answer.saved}`;
      showCounts(answer);
      label.value = "";
    } catch (error) {
      saved.classList.add("charlib-error");
      saved.textContent = `not saved: ${error.message}`;
    }
  }

  pad.querySelector(".charlib-save").addEventListener("click", save);
  pad.querySelector(".charlib-predict").addEventListener("click", predict);
  pad.querySelector(".charlib-clear").addEventListener("click", clear);

  fetch("/health")
    .then((r) => r.json())
    .then((h) => {
      footer.textContent =
        `run ${h.run}${h.about ? ` (${h.about})` : ""} · ${h.classes} classes · ` +
        `${h.backend} on ${h.device} · API at /docs`;
    })
    .catch(() => { footer.textContent = "the server does not answer"; });
  fetch("/mine")
    .then((r) => r.json())
    .then((examples) => {
      teach.hidden = !examples.enabled;
      if (examples.enabled) showCounts(examples);
    })
    .catch(() => {});

  reset();
})();
