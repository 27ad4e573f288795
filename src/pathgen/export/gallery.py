"""``gallery.html``: one static page to look at the dataset, opened straight from disk.

Why a single self-contained file: reviewers (pathologists) open it by double-click or attach it to
an email; no server, no CDN, no network. Thumbnails are embedded as ``data:`` JPEGs; the items sit
in a JSON ``<script>`` block and plain JavaScript draws a paginated grid, filters by project and
searches the text. All text goes through ``textContent`` so a caption can never inject markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathgen.rundir import atomic_write

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f4f8;color:#222}
header{background:#3d2a52;color:#fff;padding:12px 20px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;font-size:13px;opacity:.85}
.controls{display:flex;gap:10px;flex-wrap:wrap;align-items:center;padding:10px 20px;background:#fff;
border-bottom:1px solid #ddd;position:sticky;top:0;z-index:1}
.controls input{flex:1;min-width:200px;padding:6px}.controls select,.controls button{padding:6px}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:14px;padding:16px 20px}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.15);overflow:hidden}
.card img{width:100%;aspect-ratio:1/1;object-fit:cover;display:block;background:#eee}
.card .cap{font-size:13px;padding:8px 10px;line-height:1.35;overflow-wrap:anywhere}
.card .src{font-size:11px;color:#666;padding:0 10px 6px;word-break:break-all}
details{font-size:12px;padding:0 10px 10px}details h4{margin:8px 0 2px;font-size:12px}
details p{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.edit{margin:2px 0}.t{font-weight:bold;text-transform:capitalize}
.del{background:#fde2e1;text-decoration:line-through}.add{background:#ddf5e1}
#empty{padding:30px;text-align:center;color:#666}
.warn{background:#fff3cd;color:#6b4e00;padding:8px 20px;font-size:14px;border-bottom:1px solid #e6d38a}
"""

_JS = """
(function(){
  var DATA = JSON.parse(document.getElementById('gallery-data').textContent);
  var items = DATA.items, pageSize = DATA.page_size, page = 0, shown = items;
  var grid = document.getElementById('grid'), q = document.getElementById('q');
  var proj = document.getElementById('project'), info = document.getElementById('info');
  function el(tag, cls, text){var e=document.createElement(tag); if(cls) e.className=cls;
    if(text!==undefined&&text!==null) e.textContent=text; return e;}
  var params = {};
  location.hash.replace(/^#/, '').split('&').forEach(function(kv){
    var i = kv.indexOf('='); if(i > 0) params[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); });
  var projects = {};
  items.forEach(function(it){ projects[it.project || '(none)'] = 1; });
  Object.keys(projects).sort().forEach(function(p){
    var o=el('option',null,p); o.value=p; proj.appendChild(o); });
  function section(parent, title, text){ if(!text) return; parent.appendChild(el('h4',null,title));
    parent.appendChild(el('p',null,text)); }
  function card(it){
    var c = el('div','card'); c.setAttribute('data-key', it.key);
    var img = el('img'); img.alt = it.key; img.loading = 'eager';
    img.addEventListener('load', function(){ img.setAttribute('data-loaded', '1'); });
    img.src = it.img; c.appendChild(img);
    c.appendChild(el('div','cap',it.caption));
    var where = it.slide + (it.pos ? ' @ ' + it.pos[0] + ',' + it.pos[1] + ' (' + it.pos[2] + ' px)' : '');
    c.appendChild(el('div','src',(it.project ? it.project + ' · ' : '') + where));
    var d = el('details'); d.appendChild(el('summary',null,'description, revision, summary'));
    section(d,'Description',it.description);
    if(it.edits && it.edits.length){ d.appendChild(el('h4',null,'Revision edits (' + it.edits.length + ')'));
      it.edits.forEach(function(e){ var p=el('div','edit'); p.appendChild(el('span','t',e.type+': '));
        if(e.before) p.appendChild(el('span','del',e.before));
        if(e.before&&e.after) p.appendChild(el('span',null,' → '));
        if(e.after) p.appendChild(el('span','add',e.after)); d.appendChild(p); }); }
    section(d,'Revised description',it.revised);
    section(d,'Summary (caption)',it.caption);
    var models = Object.keys(it.models||{}).filter(function(k){return it.models[k];})
      .map(function(k){return k + ': ' + it.models[k];}).join(', ');
    section(d,'Models',models);
    if(params.expand === '1') d.open = true;
    c.appendChild(d); return c;
  }
  function apply(){
    var text = q.value.trim().toLowerCase(), p = proj.value;
    shown = items.filter(function(it){
      if(p && (it.project || '(none)') !== p) return false;
      if(!text) return true;
      return (it.caption + ' ' + it.description + ' ' + it.revised + ' ' + it.slide + ' ' + it.key)
        .toLowerCase().indexOf(text) >= 0;
    });
    page = 0; render();
  }
  function saveHash(){
    var h = 'q=' + encodeURIComponent(q.value) + '&project=' + encodeURIComponent(proj.value)
      + '&page=' + (page + 1) + (params.expand === '1' ? '&expand=1' : '');
    if(history.replaceState) history.replaceState(null, '', '#' + h);
  }
  function render(){
    var pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    grid.textContent = '';
    shown.slice(page * pageSize, (page + 1) * pageSize).forEach(function(it){ grid.appendChild(card(it)); });
    document.getElementById('empty').style.display = shown.length ? 'none' : 'block';
    saveHash();
    info.textContent = 'page ' + (page + 1) + ' / ' + pages + ' · ' + shown.length + ' of '
      + items.length + ' pairs';
  }
  // Deep links: gallery.html#q=gland&project=TCGA-COAD&page=2&expand=1 opens filtered (tests use it).
  if(params.q) q.value = params.q;
  if(params.project && projects[params.project]) proj.value = params.project;
  q.addEventListener('input', apply); proj.addEventListener('change', apply);
  document.getElementById('prev').addEventListener('click', function(){ page--; render(); });
  document.getElementById('next').addEventListener('click', function(){ page++; render(); });
  apply();
  if(params.page){ page = parseInt(params.page, 10) - 1 || 0; render(); }
})();
"""


def render_gallery(
    items: Sequence[dict[str, Any]], *, title: str, subtitle: str, page_size: int, warning: str | None = None
) -> str:
    payload = json.dumps({"items": list(items), "page_size": page_size}, ensure_ascii=True, sort_keys=True)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        + (f"<div class='warn' id='warning'>{html.escape(warning)}</div>" if warning else "")
        + "<div class='controls'>"
        "<input id='q' type='search' placeholder='search captions, descriptions, slides'>"
        "<select id='project'><option value=''>all projects</option></select>"
        "<button id='prev'>&larr; prev</button><span id='info'></span>"
        "<button id='next'>next &rarr;</button></div>"
        "<div id='grid'></div><div id='empty' style='display:none'>no pairs match</div>"
        f"<script id='gallery-data' type='application/json'>{payload}</script>"
        f"<script>{_JS}</script></body></html>\n"
    )


def write_gallery(
    path: Path,
    items: Sequence[dict[str, Any]],
    *,
    title: str,
    total: int,
    page_size: int = 48,
    warning: str | None = None,
) -> Path:
    """Write the page; ``total`` is the dataset size (the gallery may show a sample of it)."""
    sample = "" if len(items) >= total else f" (an evenly spread sample of {len(items)})"
    subtitle = f"{total} image-caption pairs{sample}. Click a card's details for the agents' outputs."
    page = render_gallery(items, title=title, subtitle=subtitle, page_size=page_size, warning=warning)
    atomic_write(path, page)
    return path
