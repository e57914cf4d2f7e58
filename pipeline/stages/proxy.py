"""The preview proxy: a 192-px, 8 fps copy of a video, written by the analysis decode.

The report's looping previews (`pipeline.report.previews`) once each decoded its clip
again, from the staged 360p mp4 or, for a clip rejected before transcode, from the source
at full size: 66-130 ms of CPU a clip, about a fifth of a 2-core run (RESULTS.md, issue 16).
The split already decodes every frame, so its ffmpeg also scales 8 frames a second to the
previews' size and encodes them (x264 ultrafast, ~0.45 s of CPU per 3 minutes of 720p,
~9 MB per hour of the 720p synth); a preview then decodes a few dozen tiny frames instead
(~33 ms a clip).

Timing: the proxy keeps the source's timestamps (the decode runs with `-copyts`), and its
frames sit on the 1/8-s grid with `round=up`: the proxy frame at grid time T is the latest
source frame at or before T, what is on screen at T. So the grid times in [start, end) of a
clip show that clip's frames and none of its neighbours' (`preview_frames` counts them; a
preview seeks to the first by timestamp). A long video analysed in spans has one proxy per
span; a preview is cut from the proxy of the span its clip starts in (it may end early
there: a span's proxy runs past its border only by the detectors' context).

`proxies.json` in the video's staging folder indexes them: the video's first timestamp
(`zero_s`) and, per proxy, the clip-timeline second its span starts at and its file name.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

PREVIEW_WIDTH, PREVIEW_FPS = 192, 8
PREVIEW_SCALE = f"scale={PREVIEW_WIDTH}:-2:flags=bilinear"  # a proxy's and a preview's size
PROXY = "proxy.mkv"
INDEX = "proxies.json"
# ffmpeg's complaints about its own outputs (the pipe closed by a reader that stopped
# early): never damage in the source.
_OUTPUT_LINE = re.compile(r"\[(out|vost)#\d|^\s*Last message repeated")


def proxy_filters(analysis_filter: str) -> list[str]:
    """The analysis decode's filter graph with the proxy's branch: `[lo]` is the analysis
    frames, `[pv]` the proxy's."""
    graph = (
        f"[0:v:0]split=2[a][b];[a]{analysis_filter}[lo];"
        f"[b]fps={PREVIEW_FPS}:round=up,{PREVIEW_SCALE}[pv]"
    )
    return ["-filter_complex", graph, "-map", "[lo]"]


def proxy_output(path: Path) -> list[str]:
    """The proxy's output options: tiny and fast to seek (a keyframe every 2 s), Matroska so
    the source's timestamps are kept to the millisecond (grid times are exact there)."""
    return [
        "-map", "[pv]", "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
        "-g", str(2 * PREVIEW_FPS), "-bf", "0", "-threads", "1",
        # Same bytes every run (Matroska otherwise writes a random segment id and the date).
        "-flags", "+bitexact", "-fflags", "+bitexact", "-f", "matroska", "-y", str(path),
    ]  # fmt: skip


def preview_frames(start_s: float, end_s: float, most: int) -> int:
    """How many proxy frames lie in [start_s, end_s) (grid times k/8), at most `most`."""
    first = math.ceil(start_s * PREVIEW_FPS - 1e-6)
    end = math.ceil(end_s * PREVIEW_FPS - 1e-6)
    return max(0, min(most, end - first))


def is_output_complaint(line: str) -> bool:
    return bool(_OUTPUT_LINE.search(line))


def write_index(folder: Path, zero_s: float | None, proxies: list[tuple[float, str]]) -> None:
    """Index the proxies in `folder` (each: the second its own frames start at, file name).
    Without the video's first timestamp a proxy cannot be placed: none is kept."""
    found = [[round(s, 6), name] for s, name in proxies if (folder / name).is_file()]
    if zero_s is None or not found:
        for _, name in found:
            (folder / name).unlink()
        (folder / INDEX).unlink(missing_ok=True)
        return
    (folder / INDEX).write_text(json.dumps({"zero_s": zero_s, "proxies": found}))


def proxy_at(folder: Path, start_s: float) -> tuple[Path, float] | None:
    """(proxy file, its timestamp of clip-timeline second `start_s`) for a clip starting
    there, or None when the video has no usable proxy."""
    try:
        index = json.loads((folder / INDEX).read_text())
        zero, entries = float(index["zero_s"]), index["proxies"]
        own = [(float(s), str(name)) for s, name in entries if float(s) <= start_s + 1e-6]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not own:
        return None
    name = max(own)[1]
    path = folder / Path(name).name  # a name from disk, never a path out of the folder
    return (path, zero + start_s) if path.is_file() else None
