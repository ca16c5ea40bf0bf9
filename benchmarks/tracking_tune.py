"""Grid search of TrackerConfig on both sequences (same defaults for both).

Run: ``python benchmarks/tracking_tune.py key=v1,v2 other=v3 ...`` — prints HOTA, MOTA,
IDF1 per sequence and their means for every combination, best mean HOTA+IDF1 last.
"""

from __future__ import annotations

import itertools
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storesense.vision.tracking import TrackerConfig
from tracking import _ours, run_tracker, score
from tracking_detections import SEQUENCES, load_sequence


def _parse(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def main(argv: list[str]) -> None:
    grid = {}
    for arg in argv:
        key, values = arg.split("=", 1)
        grid[key] = [_parse(v) for v in values.split(",")]
    sequences = [load_sequence(name) for name in SEQUENCES]
    ranked = []
    for combo in itertools.product(*grid.values()):
        overrides = dict(zip(grid, combo, strict=True))
        try:
            config = TrackerConfig(**overrides)
        except ValueError as error:
            print(overrides, "invalid:", str(error).splitlines()[-2:])
            continue
        cells = []
        total = 0.0
        for seq in sequences:
            rows, _ = run_tracker(partial(_ours, config=config), seq)
            s = score(seq, rows)
            cells.append(f"{seq.name[:4]} {s.hota:5.1f} {s.mota:5.1f} {s.idf1:5.1f} {s.idsw:3d}")
            total += s.hota + s.idf1
        ranked.append((total, overrides))
        print(" | ".join(cells), overrides, flush=True)
    ranked.sort(key=lambda x: x[0])
    print("best:", ranked[-1] if ranked else None)


if __name__ == "__main__":
    main(sys.argv[1:])
