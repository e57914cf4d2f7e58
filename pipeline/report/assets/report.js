// clipmill report: builds the page from the JSON block above it.
// Every element is made with createElement + textContent (no HTML string is ever parsed), so a
// caption or file name can hold anything. Galleries are paged and previews load when they
// scroll into view, so 10,000 clips never become 10,000 elements at once.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const CLIPS = DATA.clips.map(function (row) {
    const clip = {};
    DATA.columns.forEach(function (name, i) { clip[name] = row[i]; });
    return clip;
  });
  const VIDEOS = DATA.videos;
  const PAGE = 48, GROUP_PAGE = 12, VIDEO_PAGE = 40;
  const SVG = "http://www.w3.org/2000/svg";
  // As in the CSS; canvas colours and SVG attributes cannot read CSS variables.
  const KEPT = "#2e9d5b", REJECTED = "#d1495b", TRIMMED = "#c9ccd1";
  const SHORT = { motion_score: "motion", motion_min: "motion min", blank_fraction: "blank",
    sharpness: "sharp", text_area: "text", clip_score: "clip", aesthetic: "aesth",
    sample_weight: "weight" };
  const state = { reason: "", video: "", text: "", keptPage: 0, groupPages: {}, videoPage: 0 };

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function fmt(x) {
    if (x === null || x === undefined) return "–";
    if (typeof x !== "number") return String(x);
    if (Math.abs(x) >= 1000 || Number.isInteger(x)) return x.toFixed(0);
    return String(Number(x.toPrecision(3)));
  }
  function secs(x) { return (x || 0).toFixed(1) + " s"; }
  function $(id) { return document.getElementById(id); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // Lazy previews: a preview gets its src when it scrolls into view; a video pauses off screen.
  const observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      const m = e.target;
      if (e.isIntersecting && !m.getAttribute("src")) m.setAttribute("src", m.dataset.src);
      if (m.tagName === "VIDEO") { if (e.isIntersecting) m.play().catch(function () {}); else m.pause(); }
    });
  }, { rootMargin: "300px" }) : null;
  function observeMedia(root) {
    root.querySelectorAll(".media[data-src]").forEach(function (m) {
      if (observer) observer.observe(m); else m.setAttribute("src", m.dataset.src);
    });
  }

  function release(root) {  // empty a gallery, and stop watching what it showed
    if (observer) root.querySelectorAll(".media").forEach(function (m) { observer.unobserve(m); });
    clear(root);
  }

  function row(table, cells, attrs) {
    const tr = el("tr");
    cells.forEach(function (c, i) {
      const td = el(i ? "td" : "th", i ? Object.assign({ class: "num" }, attrs || {}) : {}, c);
      tr.appendChild(td);
    });
    table.appendChild(tr);
  }
  function renderTotals() {
    const t = DATA.totals, s = t.seconds, box = el("div", { class: "tables" });
    const sec = el("table", { id: "seconds-table" });
    row(sec, ["input (ok videos)", secs(s.input)], { "data-seconds": "input" });
    row(sec, ["kept", secs(s.kept)], { "data-seconds": "kept" });
    Object.keys(s.rejected_by_reason).forEach(function (r) {
      row(sec, ["rejected: " + r, secs(s.rejected_by_reason[r])], { "data-seconds": r });
    });
    row(sec, ["trimmed at cuts", secs(s.trimmed_at_cuts)], { "data-seconds": "trimmed" });
    const counts = el("table", { id: "counts-table" });
    row(counts, ["candidate clips", t.clips], { "data-total": "clips" });
    row(counts, ["kept", t.kept], { "data-total": "kept" });
    row(counts, ["rejected", t.rejected], { "data-total": "rejected" });
    Object.keys(t.rejected_by_reason).forEach(function (r) {
      row(counts, ["  " + r, t.rejected_by_reason[r]], { "data-reason-count": r });
    });
    const vids = el("table", { id: "videos-table" });
    Object.keys(t.videos).forEach(function (k) {
      row(vids, ["videos " + k, t.videos[k]], { "data-videos": k });
    });
    [sec, counts, vids].forEach(function (n) { box.appendChild(n); });
    $("totals").appendChild(box);
  }

  function clipsOfVideo() {
    const by = {};
    CLIPS.forEach(function (c) { (by[c.video] = by[c.video] || []).push(c); });
    return by;
  }
  const BY_VIDEO = clipsOfVideo();

  // A canvas, not one SVG rect per clip: a video cut into 1,000 clips stays one element.
  function strip(v, i) {
    const c = el("canvas", { class: "strip", "data-video": String(i), height: 16 });
    const clips = BY_VIDEO[i] || [], dur = v.duration_s || 1;
    c.draw = function () {
      const w = c.width = Math.max(100, Math.round(c.clientWidth || 800));
      const g = c.getContext("2d");
      g.fillStyle = TRIMMED; g.fillRect(0, 0, w, 16);
      clips.forEach(function (clip) {
        g.fillStyle = clip.kept ? KEPT : REJECTED;
        g.fillRect(w * clip.start_s / dur, 0, Math.max(1, w * clip.duration_s / dur), 16);
      });
    };
    c.addEventListener("mousemove", function (e) {
      const t = dur * e.offsetX / (c.clientWidth || 1);
      const hit = clips.find(function (clip) { return clip.start_s <= t && t < clip.end_s; });
      c.title = hit ? hit.clip_id + (hit.kept ? " kept" : " " + hit.reject_reasons.join(", "))
        : "trimmed at a cut / not in a clip";
    });
    return c;
  }
  function renderVideos() {
    const list = $("video-list");
    clear(list);
    const pages = Math.max(1, Math.ceil(VIDEOS.length / VIDEO_PAGE));
    state.videoPage = Math.min(state.videoPage, pages - 1);
    const start = state.videoPage * VIDEO_PAGE;
    VIDEOS.slice(start, start + VIDEO_PAGE).forEach(function (v, k) {
      const i = start + k, box = el("div", { class: "video", "data-video": String(i) });
      box.appendChild(el("div", { class: "name" }, v.source_path));
      let facts = v.status + " · " + secs(v.duration_s) + " · " + v.n_kept + "/" + v.n_clips +
        " clips kept · kept " + secs(v.kept_s) + ", rejected " + secs(v.rejected_s) +
        ", trimmed " + secs(v.trimmed_s);
      if (v.error) facts += " · " + v.error;
      if (v.duplicate_of) facts += " · duplicate of " + v.duplicate_of;
      box.appendChild(el("div", { class: "facts" }, facts));
      if (v.status === "ok") {
        const s = strip(v, i);
        s.addEventListener("click", function () {  // this video's clips, below
          setFilter("video", String(i));
          $("filters").scrollIntoView();
        });
        box.appendChild(s);
      }
      list.appendChild(box);
    });
    list.querySelectorAll("canvas.strip").forEach(function (c) { c.draw(); });
    pager($("video-pager"), state.videoPage, pages, function (p) { state.videoPage = p; renderVideos(); });
  }

  function scaler(lo, hi, log, a, b) {
    const f = log ? Math.log : function (x) { return x; };
    const l = f(lo), h = f(hi) === f(lo) ? f(lo) + 1 : f(hi);
    return function (x) { return a + (b - a) * (f(Math.max(x, log ? lo : -Infinity)) - l) / (h - l); };
  }
  function chart(title, id) {
    const box = el("div", { class: "chart", id: id });
    box.appendChild(el("h3", {}, title));
    const s = svg("svg", { viewBox: "0 0 300 130" });
    box.appendChild(s);
    return [box, s];
  }
  function axisText(s, x, y, text, anchor) {
    const t = svg("text", { x: x, y: y, "font-size": 9, fill: "#69727d", "text-anchor": anchor || "start" });
    t.textContent = text;
    s.appendChild(t);
  }
  function renderHistograms() {
    const root = $("histograms");
    DATA.histograms.forEach(function (h) {
      const parts = chart(h.score + (h.log ? " (log scale)" : ""), "hist-" + h.score);
      const s = parts[1], n = h.kept.length, e = h.edges;
      const top = Math.max.apply(null, h.kept.map(function (k, i) { return k + h.rejected[i]; }).concat([1]));
      const x = scaler(e[0], e[n], h.log, 28, 296), y = function (c) { return 110 - 100 * c / top; };
      for (let i = 0; i < n; i++) {
        const x0 = x(e[i]), w = Math.max(0.5, x(e[i + 1]) - x0 - 0.5);
        s.appendChild(svg("rect", { x: x0, y: y(h.kept[i]), width: w, height: 110 - y(h.kept[i]), fill: KEPT }));
        s.appendChild(svg("rect", { x: x0, y: y(h.kept[i] + h.rejected[i]), width: w,
          height: y(h.kept[i]) - y(h.kept[i] + h.rejected[i]), fill: REJECTED }));
      }
      h.thresholds.forEach(function (t) {
        const xt = x(t.value);
        s.appendChild(svg("line", { x1: xt, x2: xt, y1: 6, y2: 112, stroke: "#111", "stroke-width": 1.5,
          "class": "threshold", "data-flag": t.flag }));
      });
      axisText(s, 28, 122, fmt(e[0])); axisText(s, 296, 122, fmt(e[n]), "end");
      axisText(s, 2, 14, String(top));
      const notes = h.thresholds.map(function (t) {
        return "--" + t.flag + " " + fmt(t.value) + " → " + t.reason;
      });
      if (h.missing) notes.push(h.missing + (h.missing === 1 ? " clip" : " clips") + " without this score");
      parts[0].appendChild(el("div", { class: "note" }, notes.join(" · ") || "no threshold"));
      root.appendChild(parts[0]);
    });
    if (!DATA.histograms.length) root.appendChild(el("p", { class: "empty" }, "no scores recorded"));
  }
  function renderWhatIf() {
    const root = $("whatif-charts");
    DATA.what_if.forEach(function (w) {
      const parts = chart(w.flag, "whatif-" + w.flag), s = parts[1];
      const xs = w.points.map(function (p) { return p[0]; }), ys = w.points.map(function (p) { return p[1]; });
      const lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
      const log = lo > 0 && hi / lo > 20, top = Math.max(DATA.totals.seconds.input || 0, Math.max.apply(null, ys), 1);
      const x = scaler(lo, hi, log, 28, 296), y = function (v) { return 110 - 100 * v / top; };
      const d = w.points.map(function (p, i) { return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); });
      s.appendChild(svg("path", { d: d.join(" "), fill: "none", stroke: KEPT, "stroke-width": 2 }));
      w.points.forEach(function (p) {
        const chosen = w.chosen !== null && Math.abs(p[0] - w.chosen) <= 1e-9 * Math.max(1, Math.abs(p[0]));
        s.appendChild(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: chosen ? 4 : 2.5,
          fill: chosen ? "#111" : KEPT }));
      });
      axisText(s, 28, 122, fmt(lo)); axisText(s, 296, 122, fmt(hi), "end");
      axisText(s, 2, 14, secs(top));
      parts[0].appendChild(el("div", { class: "note" }, "reason " + w.reason + " · chosen " +
        (w.chosen === null ? "off" : fmt(w.chosen)) + " · y: seconds kept of " + secs(DATA.totals.seconds.input)));
      root.appendChild(parts[0]);
    });
    if (!DATA.what_if.length) root.appendChild(el("p", { class: "empty" }, "this run recorded no what-if yields"));
  }

  function pager(box, page, pages, go) {
    clear(box);
    if (pages <= 1) return;
    const prev = el("button", { type: "button", "data-role": "prev" }, "‹ previous");
    const next = el("button", { type: "button", "data-role": "next" }, "next ›");
    prev.disabled = page <= 0; next.disabled = page >= pages - 1;
    prev.addEventListener("click", function () { go(page - 1); });
    next.addEventListener("click", function () { go(page + 1); });
    box.appendChild(prev);
    box.appendChild(el("span", { "data-role": "page" }, "page " + (page + 1) + " / " + pages));
    box.appendChild(next);
  }

  function media(clip) {
    const p = clip.preview;
    if (!p) return el("div", { class: "media none" }, "no preview: not encoded");
    if (p[0] === "mp4") {
      const v = el("video", { class: "media", "data-src": p[1], muted: "", loop: "",
        playsinline: "", preload: "none" });
      v.muted = true;
      return v;
    }
    return el("img", { class: "media", "data-src": p[1], alt: clip.clip_id });
  }
  function card(clip) {
    const c = el("div", { class: clip.kept ? "card kept" : "card rejected", id: "clip-" + clip.clip_id,
      "data-clip-id": clip.clip_id });
    c.appendChild(media(clip));
    c.appendChild(el("div", { class: "caption" }, clip.caption === null ? "(no caption)" : clip.caption));
    const v = VIDEOS[clip.video] || {};
    const source = v.source_path || "";
    c.appendChild(el("div", { class: "meta", title: source }, secs(clip.duration_s) + " · frames " +
      clip.start_frame + "–" + clip.end_frame + " · " + clip.clip_id + " · " + source.split("/").pop()));
    if (!clip.kept) {
      let why = clip.reject_reasons.join(", ");
      if (clip.duplicate_of) why += " (of " + clip.duplicate_of + ")";
      c.appendChild(el("div", { class: "reasons" }, why));
    }
    const scores = Object.keys(SHORT).filter(function (k) { return clip[k] !== null && clip[k] !== undefined; })
      .map(function (k) { return SHORT[k] + " " + fmt(clip[k]); });
    c.appendChild(el("div", { class: "scores" }, scores.join(" · ")));
    if (clip.errors) c.appendChild(el("div", { class: "reasons" }, clip.errors));
    const notes = [];
    if (clip.override && clip.override.length) notes.push("override: " + clip.override.join(", "));
    if (clip.split) notes.push("split: " + clip.split);
    if (notes.length) c.appendChild(el("div", { class: "meta notes" }, notes.join(" · ")));
    if (DATA.review && window.clipmillReviewControls) c.appendChild(window.clipmillReviewControls(clip));
    return c;
  }

  function matches(c) {
    if (state.reason === "kept" && !c.kept) return false;
    if (state.reason === "rejected" && c.kept) return false;
    if (state.reason && state.reason !== "kept" && state.reason !== "rejected" &&
        c.reject_reasons.indexOf(state.reason) < 0) return false;
    if (state.video !== "" && String(c.video) !== state.video) return false;
    if (state.text) {
      const hay = ((c.caption || "") + " " + c.clip_id).toLowerCase();
      if (hay.indexOf(state.text) < 0) return false;
    }
    return true;
  }
  function gallery(box, pagerBox, clips, page, size, go) {
    release(box);
    const pages = Math.max(1, Math.ceil(clips.length / size));
    page = Math.min(page, pages - 1);
    clips.slice(page * size, page * size + size).forEach(function (c) { box.appendChild(card(c)); });
    if (!clips.length) box.appendChild(el("p", { class: "empty" }, "no clip matches"));
    pager(pagerBox, page, pages, go);
    observeMedia(box);
  }
  function renderKept(shown) {
    const kept = shown.filter(function (c) { return c.kept; });
    $("kept-count").textContent = "(" + kept.length + ")";
    gallery($("kept-gallery"), $("kept-pager"), kept, state.keptPage, PAGE,
      function (p) { state.keptPage = p; renderKept(shown); });
  }
  function renderGroup(reason, clips) {
    const box = el("div", { class: "group", "data-reason": reason });
    const total = clips.reduce(function (a, c) { return a + c.duration_s; }, 0);
    const n = clips.length + (clips.length === 1 ? " clip, " : " clips, ");
    box.appendChild(el("h3", {}, reason + " — " + n + secs(total)));
    const g = el("div", { class: "gallery" }), p = el("div", { class: "pager" });
    box.appendChild(g); box.appendChild(p);
    const go = function (page) {
      state.groupPages[reason] = page;
      gallery(g, p, clips, page, GROUP_PAGE, go);
    };
    go(state.groupPages[reason] || 0);
    return box;
  }
  function renderRejected(shown) {
    const root = $("rejected-groups"), groups = {};
    release(root);
    shown.forEach(function (c) {
      if (!c.kept) c.reject_reasons.forEach(function (r) { (groups[r] = groups[r] || []).push(c); });
    });
    const reasons = Object.keys(groups).sort();
    $("rejected-count").textContent = "(" + shown.filter(function (c) { return !c.kept; }).length + ")";
    reasons.forEach(function (r) {
      if (!state.reason || state.reason === "rejected" || state.reason === r) root.appendChild(renderGroup(r, groups[r]));
    });
    if (!root.firstChild) root.appendChild(el("p", { class: "empty" }, "no clip matches"));
  }
  function render() {
    const shown = CLIPS.filter(matches);
    $("filter-count").textContent = shown.length + " of " + CLIPS.length + " clips match";
    renderKept(shown);
    renderRejected(shown);
  }
  function setFilter(key, value) {
    state[key] = value;
    state.keptPage = 0; state.groupPages = {};
    const ids = { reason: "filter-reason", video: "filter-video" };
    if (ids[key]) $(ids[key]).value = value;
    render();
  }

  function renderFilters() {
    const reason = $("filter-reason"), video = $("filter-video"), text = $("filter-text");
    reason.appendChild(el("option", { value: "" }, "all clips"));
    reason.appendChild(el("option", { value: "kept" }, "kept (" + DATA.totals.kept + ")"));
    reason.appendChild(el("option", { value: "rejected" }, "rejected (" + DATA.totals.rejected + ")"));
    Object.keys(DATA.totals.rejected_by_reason).forEach(function (r) {
      reason.appendChild(el("option", { value: r }, r + " (" + DATA.totals.rejected_by_reason[r] + ")"));
    });
    video.appendChild(el("option", { value: "" }, "all videos"));
    VIDEOS.forEach(function (v, i) {
      if (BY_VIDEO[i]) video.appendChild(el("option", { value: String(i) }, v.source_path));
    });
    reason.addEventListener("change", function () { setFilter("reason", reason.value); });
    video.addEventListener("change", function () { setFilter("video", video.value); });
    let timer = null;
    text.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { setFilter("text", text.value.trim().toLowerCase()); }, 150);
    });
  }

  // The folder's name comes from the address, not the data: the page's bytes do not depend on it.
  const parts = decodeURIComponent(location.pathname).split("/").filter(Boolean);
  const folder = location.protocol === "file:" && parts.length > 1 ? parts[parts.length - 2] : "";
  document.title = $("title").textContent = "clipmill report" + (folder ? ": " + folder : "");
  $("mode").textContent = DATA.review
    ? "review mode: each action is sent to the review server and appended to overrides.jsonl"
    : "read-only (run `clipmill review OUT` to correct clips)";
  renderTotals();
  renderVideos();
  window.addEventListener("resize", function () {
    document.querySelectorAll("canvas.strip").forEach(function (c) { c.draw(); });
  });
  renderHistograms();
  renderWhatIf();
  renderFilters();
  render();
})();
