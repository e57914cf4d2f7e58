"""A person's corrections: recorded by `clipmill review`, applied by `clipmill pack`.

overrides.py  OUT/overrides.jsonl: the line format, reading (a torn last line is
              skipped), validation against the manifest, keep/reject/caption applied
              at pack time, split/join turned into a video's cut edits for curate
server.py     `clipmill review`: the report page with controls on 127.0.0.1 only
"""
