"""A person's split/join edits on one video's cut list (part of the split stage, 1:1).

Row in:  the split stage's analysed video: `cuts` (frames starting a new shot),
         `transition_mask`, `n_frames`, and `cut_edits` when OUT/overrides.jsonl has
         split or join lines for this video (`pipeline/review/overrides.py`, via the driver).
Row out: the same, with the edits applied, before the clips are planned.

Kept out of `split.py` so that the detectors' file stays about detection; the edits are
data handed in with the row, so the stage never reads OUT/overrides.jsonl itself.
"""

from __future__ import annotations

from typing import Any


def apply_cut_edits(video: dict[str, Any]) -> None:
    """["add", f, f] puts a cut at frame f; ["remove", a, b] drops every cut and transition
    mark in frames [a, b) (a false cut or dissolve the person joined). In file order, so a
    later edit wins. Planning then trims and windows as for any cut."""
    cuts = set(video["cuts"])
    transition = video["transition_mask"]
    for op, a, b in video.get("cut_edits") or []:
        if op == "add" and 0 < a < video["n_frames"]:
            cuts.add(int(a))
        elif op == "remove":
            cuts = {c for c in cuts if not a <= c < b}
            transition[max(0, a) : max(0, b)] = False
    video["cuts"] = sorted(cuts)
