// pathgen review: page through pairs, decide with the keyboard. Data goes into the page with
// textContent only (never innerHTML), so a caption holding HTML shows as text.
"use strict";

// `shown` counts show() calls: only the latest one may paint, and the page says which pair it
// shows only once that pair is loaded, so a key never acts on the pair before.
const state = { list: [], pos: 0, pair: null, zoom: 1, shown: 0, busy: false };
const $ = (id) => document.getElementById(id);

function setText(id, text) { $(id).textContent = text == null ? "" : String(text); }

async function api(path, options) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

function filters() {
  const params = new URLSearchParams();
  document.querySelectorAll("[data-filter]").forEach((el) => {
    if (el.value) params.set(el.dataset.filter, el.value);
  });
  return params.toString();
}

function fillFacets(facets) {
  for (const [name, values] of Object.entries(facets)) {
    const select = document.querySelector(`[data-filter="${name}"]`);
    if (!select || select.dataset.filled) continue;
    for (const v of values) {
      const opt = document.createElement("option");
      opt.value = v;
      opt.textContent = v;
      select.appendChild(opt);
    }
    select.dataset.filled = "1";
  }
}

async function loadList(keepTile) {
  const data = await api("/api/pairs?" + filters());
  fillFacets(data.facets);
  state.list = data.pairs;
  setText("counts", Object.entries(data.counts).map(([k, v]) => `${k} ${v}`).join(" · "));
  if (keepTile) {
    const at = state.list.findIndex((p) => p.tile_id === keepTile);
    state.pos = at >= 0 ? at : Math.min(state.pos, Math.max(0, state.list.length - 1));
  } else {
    state.pos = 0;
  }
  await show();
}

async function show() {
  const item = state.list[state.pos];
  const ticket = ++state.shown;
  if (!item) { state.pair = null; setText("position", "no pair matches"); return; }
  const p = await api(`/api/pair/${item.index}`);
  if (ticket !== state.shown) return;  // a later show() superseded this one
  state.pair = p;
  $("patch").src = `/image/patch/${p.index}.jpg`;
  $("context").src = `/image/context/${p.index}.jpg`;
  setZoom(1, 0, 0);
  setText("where", `${p.slide_id} · x ${p.x}, y ${p.y}, ${p.size} px · ${p.project || "no project"} · ${p.reason || ""}`);
  setText("caption", p.caption);
  setText("tokens", `${p.caption_tokens} CLIP tokens`);
  setText("description", p.description);
  setText("revised", p.revised);
  const flags = $("flags");
  flags.replaceChildren();
  for (const f of p.flags) {
    const span = document.createElement("span");
    span.className = "flag";
    span.textContent = f;
    flags.appendChild(span);
  }
  const edits = $("edits");
  edits.replaceChildren();
  for (const e of p.edits) {
    const li = document.createElement("li");
    li.textContent = `${e.type}: ${e.before || "∅"} → ${e.after || "∅"}`;
    edits.appendChild(li);
  }
  $("edit").value = p.review_caption || p.caption;
  setStatus(p.status, p.reviewer);
  setText("message", "");
  setText("position", `pair ${state.pos + 1} / ${state.list.length}`);
}

function setStatus(status, reviewer) {
  setText("status", status);
  $("status").dataset.status = status;
  setText("status-by", reviewer ? `by ${reviewer}` : "");
}

async function decide(decision) {
  const p = state.pair;
  if (!p || state.busy) return;
  const reviewer = $("reviewer").value.trim();
  if (!reviewer) { setText("message", "enter your name as reviewer first"); $("reviewer").focus(); return; }
  const body = { tile_id: p.tile_id, decision, reviewer };
  if (decision === "edit") body.caption = $("edit").value;
  state.busy = true;
  try {
    const r = await api("/api/decision", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    setStatus(r.status, r.reviewer);
    $("edit").blur();
    const next = state.list[state.pos + 1];
    await loadList(next ? next.tile_id : p.tile_id);
  } catch (err) {
    setText("message", err.message);
  } finally {
    state.busy = false;
  }
}

function move(step) {
  const to = state.pos + step;
  if (to >= 0 && to < state.list.length) { state.pos = to; show(); }
}

function setZoom(z, ox, oy) {
  state.zoom = Math.min(8, Math.max(1, z));
  $("patch").style.transformOrigin = `${ox}px ${oy}px`;
  $("patch").style.transform = `scale(${state.zoom})`;
}

document.addEventListener("keydown", (ev) => {
  const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
  if (ev.target === $("edit") && ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault(); decide("edit"); return;
  }
  if (typing) { if (ev.key === "Escape") ev.target.blur(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const actions = {
    a: () => decide("accept"), r: () => decide("reject"), e: () => $("edit").focus(),
    j: () => move(1), ArrowRight: () => move(1), k: () => move(-1), ArrowLeft: () => move(-1),
  };
  const act = actions[ev.key];
  if (act) { ev.preventDefault(); act(); }
});

window.addEventListener("DOMContentLoaded", () => {
  const reviewer = $("reviewer");
  reviewer.value = localStorage.getItem("pathgen-reviewer") || "";
  reviewer.addEventListener("change", () => localStorage.setItem("pathgen-reviewer", reviewer.value.trim()));
  document.querySelectorAll("[data-filter]").forEach((el) => el.addEventListener("change", () => loadList()));
  $("prev").addEventListener("click", () => move(-1));
  $("next").addEventListener("click", () => move(1));
  $("accept").addEventListener("click", () => decide("accept"));
  $("reject").addEventListener("click", () => decide("reject"));
  $("save-edit").addEventListener("click", () => decide("edit"));
  const zoom = $("zoom");
  zoom.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = zoom.getBoundingClientRect();
    setZoom(state.zoom * (ev.deltaY < 0 ? 1.25 : 0.8), ev.clientX - r.left, ev.clientY - r.top);
  });
  zoom.addEventListener("click", (ev) => {
    const r = zoom.getBoundingClientRect();
    setZoom(state.zoom > 1 ? 1 : 3, ev.clientX - r.left, ev.clientY - r.top);
  });
  loadList().catch((err) => setText("message", err.message));
});
