// clipmill review: the per-clip controls, inlined only into the page `clipmill review` serves.
// Each control POSTs {clip_id, action, value} as JSON to the relative URL api/override and
// shows the server's JSON answer ({"ok": true, ...} or {"error": "..."}) beside the clip.
// Stable hooks for tests: button[data-action][data-clip-id], textarea[data-field=caption],
// input[data-field=split-frame], and the answer in #reply-<clip_id> (data-state ok | error).
"use strict";
window.clipmillReviewControls = (function () {
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function show(reply, answer) {
    const ok = Boolean(answer && answer.ok);
    reply.textContent = JSON.stringify(answer);
    reply.className = "reply " + (ok ? "ok" : "error");
    reply.setAttribute("data-state", ok ? "ok" : "error");
  }
  function send(clipId, action, value, reply) {
    reply.textContent = "…";
    reply.removeAttribute("data-state");
    fetch("api/override", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ clip_id: clipId, action: action, value: value }) })
      .then(function (r) { return r.json().catch(function () { return { error: "HTTP " + r.status }; }); })
      .then(function (answer) { show(reply, answer); })
      .catch(function (err) { show(reply, { error: String(err) }); });
  }
  return function controls(clip) {
    const id = clip.clip_id;
    const box = el("div", { class: "controls", "data-clip-id": id });
    const reply = el("span", { class: "reply", id: "reply-" + id, "data-clip-id": id });
    const caption = el("textarea", { rows: 2, "data-field": "caption", "data-clip-id": id });
    caption.value = clip.caption || "";
    // A source frame, as the card's frame range and overrides.jsonl count them; the server
    // checks it lies strictly inside the clip.
    const first = clip.start_frame + 1, last = clip.end_frame - 1;
    const frame = el("input", { type: "number", min: first, max: last, step: 1,
      "data-field": "split-frame", "data-clip-id": id, placeholder: first + "–" + last,
      title: "source frame to cut before, " + first + " to " + last });
    const actions = [
      ["keep", "Keep", function () { return null; }],
      ["reject", "Reject", function () { return null; }],
      ["caption", "Save caption", function () { return caption.value; }],
      ["split", "Split at frame", function () { return parseInt(frame.value, 10); }],
      ["join", "Join with next", function () { return null; }],
    ];
    actions.forEach(function (a) {
      const button = el("button", { type: "button", "data-action": a[0], "data-clip-id": id }, a[1]);
      button.addEventListener("click", function () {
        const value = a[2]();
        if (a[0] === "split" && !Number.isInteger(value)) return show(reply, { error: "enter a frame number" });
        send(id, a[0], value, reply);
      });
      if (a[0] === "caption") box.appendChild(caption);
      if (a[0] === "split") box.appendChild(frame);
      box.appendChild(button);
    });
    box.appendChild(reply);
    return box;
  };
})();
