"""The web app's page: plain HTML with a little inline CSS and JavaScript, no external assets.

A query box (the ``batchseg query`` grammar), a sortable, paged table of the matching images
with overlay thumbnails (one page of rows is fetched at a time from ``/api/query``), and an
image view: overlay with an opacity slider, class legend with toggles, region outlines on/off,
the confidence map, the image's statistics and its objects. Data is only ever inserted as text
(``textContent``), never as HTML. The page's own URL keeps the query, the page of rows, the open
image and its overlay settings (``?where=&columns=&sort=&offset=&limit=&image=&alpha=&hide=
&outlines=``), so a URL can be shared or bookmarked and the back button steps through them.
Images are fetched as ``/api/image/PART?id=ID``, which every id survives.
"""

from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>batchseg</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:8px 16px}header h1{font-size:18px;margin:0}
header .sub{font-size:12px;color:#cfd8dc}
main{display:flex;gap:16px;padding:12px 16px;align-items:flex-start}
#left{flex:1 1 60%;min-width:0}#right{flex:1 1 40%;min-width:320px;position:sticky;top:8px}
form{display:flex;gap:6px;flex-wrap:wrap;margin-bottom:6px}
input[type=text]{font:13px monospace;padding:4px;flex:1 1 300px}
#error{color:#c62828;font-family:monospace;min-height:1.2em;white-space:pre-wrap}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{border-bottom:1px solid #e0e0e0;padding:2px 6px;text-align:left;white-space:nowrap}
th{cursor:pointer;background:#f5f5f5;position:sticky;top:0;user-select:none}
tbody tr{cursor:pointer}tbody tr:hover{background:#e3f2fd}tr.sel{background:#bbdefb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td img{height:40px;display:block;background:#eee}
#pager{margin:6px 0;display:flex;gap:8px;align-items:center}
#view img{width:100%;height:auto;display:block;background:#eee;margin:4px 0}
#view h2{font-size:15px;margin:4px 0;word-break:break-all;font-family:monospace}
.legend label{display:inline-block;margin-right:10px;font-size:12px}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #777;vertical-align:middle;
margin:0 3px}.muted{color:#777;font-size:12px}
#stats td:first-child{color:#555}.objs{max-height:240px;overflow:auto}
</style></head>
<body>
<header><h1 id="title">batchseg</h1><div class="sub" id="subtitle"></div></header>
<main><div id="left">
<form id="qform"><input type="text" id="where" name="where" autocomplete="off"
 placeholder="query (the batchseg query grammar; empty: all images)">
<input type="text" id="columns" placeholder="columns (default: key ones; * = all)"
 style="flex:0 1 200px"><button type="submit">Query</button></form>
<div id="error"></div>
<div id="pager"><button id="prev" type="button">&larr; prev</button><span id="count"></span>
<button id="next" type="button">next &rarr;</button>
<label class="muted">rows <select id="psize"><option>25</option><option selected>50</option>
<option>100</option><option>200</option></select></label></div>
<table id="rows"><thead></thead><tbody></tbody></table>
</div>
<div id="right"><div id="view"><p class="muted">Click a row to open the image.</p></div></div>
</main>
<script>
"use strict";
const S = {where: "", columns: "", sort: "", offset: 0, limit: 50, meta: null, id: null,
           hidden: new Set(), alpha: 0.5, outlines: true};
const $ = (id) => document.getElementById(id);
function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function imageUrl(id, part, params) {
  const p = new URLSearchParams(params || {});
  p.set("id", id);
  return "/api/image" + (part ? "/" + part : "") + "?" + p;
}
function pageQuery() {
  const p = new URLSearchParams();
  if (S.where) p.set("where", S.where);
  if (S.columns) p.set("columns", S.columns);
  if (S.sort) p.set("sort", S.sort);
  if (S.offset) p.set("offset", S.offset);
  if (S.limit !== 50) p.set("limit", S.limit);
  if (S.id !== null) p.set("image", S.id);
  if (+S.alpha !== 0.5) p.set("alpha", S.alpha);
  if (S.hidden.size) p.set("hide", [...S.hidden].join(","));
  if (!S.outlines) p.set("outlines", "0");
  return p.toString();
}
function remember(replace) {
  const q = pageQuery(), url = location.pathname + (q ? "?" + q : "");
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
}
function restore() {
  const p = new URLSearchParams(location.search);
  S.where = p.get("where") || ""; S.columns = p.get("columns") || ""; S.sort = p.get("sort") || "";
  S.offset = Math.max(0, parseInt(p.get("offset"), 10) || 0);
  const limit = parseInt(p.get("limit"), 10);
  S.limit = [25, 50, 100, 200].includes(limit) ? limit : 50;
  S.id = p.get("image");
  const alpha = parseFloat(p.get("alpha"));
  S.alpha = alpha >= 0 && alpha <= 1 ? alpha : 0.5;
  S.hidden = new Set((p.get("hide") || "").split(",").filter((t) => /^\d+$/.test(t)).map(Number));
  S.outlines = p.get("outlines") !== "0";
  $("where").value = S.where; $("columns").value = S.columns; $("psize").value = String(S.limit);
}
async function show() {
  await runQuery(true);
  if (S.id !== null) await openImage(S.id, true);
  else $("view").replaceChildren(el("p", "Click a row to open the image.", {"class": "muted"}));
}
async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toPrecision(4);
  return String(v);
}
async function init() {
  restore();
  S.meta = await getJSON("/api/meta");
  $("title").textContent = S.meta.store;
  $("subtitle").textContent = S.meta.method + " (" + S.meta.kind + "), " +
    S.meta.images + " images";
  $("where").placeholder = "query, e.g. " + S.meta.example + " (empty: all images)";
  await show();
}
async function runQuery(restoring) {
  if (!restoring) remember(false);
  const p = new URLSearchParams({where: S.where, columns: S.columns, sort: S.sort,
                                 offset: S.offset, limit: S.limit});
  $("error").textContent = "";
  let data;
  try { data = await getJSON("/api/query?" + p); }
  catch (e) { $("error").textContent = e.message; return; }
  drawTable(data);
}
function drawTable(data) {
  const head = $("rows").tHead, body = $("rows").tBodies[0];
  head.replaceChildren(); body.replaceChildren();
  const tr = el("tr");
  tr.appendChild(el("th", ""));
  for (const c of data.columns) {
    const mark = S.sort === c ? " \u25b2" : S.sort === "-" + c ? " \u25bc" : "";
    const th = el("th", c + mark, {"data-col": c});
    th.addEventListener("click", () => {
      S.sort = S.sort === c ? "-" + c : c; S.offset = 0; runQuery();
    });
    tr.appendChild(th);
  }
  head.appendChild(tr);
  for (const row of data.rows) {
    const r = el("tr", null, {"data-id": row.image_id});
    const td = el("td");
    if (row.status === undefined || row.status === "done")
      td.appendChild(el("img", null, {src: imageUrl(row.image_id, "overlay.png", {size: 64}),
                                      alt: "", loading: "lazy"}));
    r.appendChild(td);
    for (const c of data.columns) {
      const v = row[c];
      r.appendChild(el("td", fmt(v), typeof v === "number" ? {"class": "num"} : {}));
    }
    r.addEventListener("click", () => openImage(row.image_id));
    if (row.image_id === S.id) r.classList.add("sel");
    body.appendChild(r);
  }
  const last = Math.min(data.total, S.offset + data.rows.length);
  $("count").textContent = data.total ? `rows ${S.offset + 1}-${last} of ${data.total}`
                                      : "no matching images";
  $("prev").disabled = S.offset <= 0;
  $("next").disabled = last >= data.total;
}
function pictureParams() {
  const p = new URLSearchParams({alpha: S.alpha, size: 720});
  if (S.hidden.size) p.set("hide", [...S.hidden].join(","));
  if (!S.outlines) p.set("outlines", "0");
  return p;
}
function refreshOverlay() {
  const img = $("overlay");
  remember(true);
  if (img && S.id !== null) img.src = imageUrl(S.id, "overlay.png", pictureParams());
}
async function openImage(id, restoring) {
  S.id = id;
  if (!restoring) remember(false);
  for (const r of $("rows").tBodies[0].rows) r.classList.toggle("sel", r.dataset.id === id);
  const view = $("view");
  view.replaceChildren(el("h2", id));
  let row;
  try { row = await getJSON(imageUrl(id)); }
  catch (e) { view.appendChild(el("p", e.message, {"class": "muted"})); return; }
  if (row.status === "done") drawPictures(view); else
    view.appendChild(el("p", row.status + (row.error ? ": " + row.error : ""), {id: "problem"}));
  const stats = el("table", null, {id: "stats"});
  for (const [k, v] of Object.entries(row))
    if (k !== "image_id") { const tr = el("tr"); tr.appendChild(el("td", k));
      tr.appendChild(el("td", fmt(v))); stats.appendChild(tr); }
  view.appendChild(el("h3", "Statistics")); view.appendChild(stats);
  if (S.meta.objects && row.status === "done") drawObjects(view, id);
}
function drawPictures(view) {
  const slider = el("input", null, {type: "range", min: 0, max: 1, step: 0.05, id: "alpha",
                                   value: S.alpha});
  let timer = null;
  slider.addEventListener("input", () => { S.alpha = slider.value; clearTimeout(timer);
                                           timer = setTimeout(refreshOverlay, 120); });
  const lab = el("label", "overlay opacity "); lab.appendChild(slider); view.appendChild(lab);
  const legend = el("div", null, {"class": "legend", id: "legend"});
  const classes = S.meta.kind === "classes";
  for (const c of classes ? S.meta.classes : S.meta.legend) {
    const l = el("label");
    if (classes) {
      const box = el("input", null, {type: "checkbox", "data-class": c.id});
      box.checked = !S.hidden.has(c.id);
      box.addEventListener("change", () => { if (box.checked) S.hidden.delete(c.id);
        else S.hidden.add(c.id); refreshOverlay(); });
      l.appendChild(box);
    }
    l.appendChild(el("span", null, {"class": "sw",
      style: `background:rgb(${c.colour.join(",")})`}));
    l.appendChild(document.createTextNode(c.name));
    legend.appendChild(l);
  }
  if (!classes) {
    const l = el("label"), box = el("input", null, {type: "checkbox", id: "outlines"});
    box.checked = S.outlines;
    box.addEventListener("change", () => { S.outlines = box.checked; refreshOverlay(); });
    l.appendChild(box); l.appendChild(document.createTextNode(" outlines"));
    legend.appendChild(l);
  }
  view.appendChild(legend);
  view.appendChild(el("img", null, {id: "overlay", alt: "overlay",
    src: imageUrl(S.id, "overlay.png", pictureParams())}));
  if (S.meta.confidence) {
    view.appendChild(el("h3", "Confidence"));
    view.appendChild(el("img", null, {id: "confidence", alt: "confidence",
      src: imageUrl(S.id, "confidence.png", {size: 480})}));
  }
}
async function drawObjects(view, id) {
  let objs;
  try { objs = await getJSON(imageUrl(id, "objects")); } catch (e) { return; }
  view.appendChild(el("h3", `Objects (${objs.length})`));
  const box = el("div", null, {"class": "objs"}), t = el("table", null, {id: "objects"});
  const cols = ["label", "area", "centroid_row", "centroid_col", "eccentricity", "solidity"];
  const tr = el("tr"); for (const c of cols) tr.appendChild(el("th", c)); t.appendChild(tr);
  for (const o of objs.slice(0, 500)) {
    const r = el("tr"); for (const c of cols) r.appendChild(el("td", fmt(o[c]))); t.appendChild(r);
  }
  box.appendChild(t); view.appendChild(box);
}
$("qform").addEventListener("submit", (ev) => {
  ev.preventDefault(); S.where = $("where").value.trim(); S.columns = $("columns").value.trim();
  S.offset = 0; runQuery();
});
$("prev").addEventListener("click", () => { S.offset = Math.max(0, S.offset - S.limit); runQuery(); });
$("next").addEventListener("click", () => { S.offset += S.limit; runQuery(); });
$("psize").addEventListener("change", () => { S.limit = +$("psize").value; S.offset = 0; runQuery(); });
window.addEventListener("popstate", () => {
  restore(); show().catch((e) => { $("error").textContent = e.message; });
});
init().catch((e) => { $("error").textContent = e.message; });
</script>
</body></html>
"""
