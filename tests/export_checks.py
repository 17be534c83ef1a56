"""`datagen validate`'s per-frame checks on EXR folders (what `datagen export --format exr`
and `datagen render` write): jitter equals SPEC §4 at the HR / LR width ratio (after
the recorded flips and turns), motion_hr reprojects frame t-1 onto frame t (motion_warp,
per frame and per sequence) and agrees with depth and the cameras (motion_camera), and
motion_lr is motion_hr / ratio at the jittered LR samples (motion_lr_hr), all read back
from the EXR files and sequence.json.

    python tests/export_checks.py EXPORT_DIR [...]   # every folder holding a sequence.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from datagen.exr import read_exr
from datagen.store import validate as v
from datagen.store.validate_motion import warp_sequence_problems


def read_frame(seq_dir: Path, record: dict) -> dict:
    """The arrays and per-frame values the checks take, from one frame's files."""
    lr, hr = read_exr(seq_dir / record["lr"]), read_exr(seq_dir / record["hr"])
    return {
        "color_hr": np.stack([hr["R"], hr["G"], hr["B"]], -1),
        "depth_hr": hr["Z"], "motion_hr": np.stack([hr["backward.u"], hr["backward.v"]], -1),
        "depth_lr": lr["Z"], "motion_lr": np.stack([lr["backward.u"], lr["backward.v"]], -1),
        "jitter_px": np.asarray(record["jitter_px"], np.float32),
        "view": np.asarray(record["view"], np.float32), "proj": np.asarray(record["proj"], np.float32),
        "exposure": np.float32(record["exposure"]), "camera_cut": record["camera_cut"], "t": record["index"],
    }


def check_sequence_dir(seq_dir: str | Path) -> dict:
    """{"frames", "ratio", "judged": {check: frames}, "failures": ["check: frame t: message"]}."""
    seq_dir = Path(seq_dir)
    doc = json.loads((seq_dir / "sequence.json").read_text())
    (W, H), (w, h) = doc["hr_size"], doc["lr_size"]
    ratio = (W / w, H / h)
    meta = (doc.get("sequence") or {}).get("meta") or {}
    tally, judged, failures, prev = v.Tally(), [], [], None
    for record in doc["frames"]:
        cur = read_frame(seq_dir, record)
        t = cur["t"]
        assert cur["color_hr"].shape[:2] == (H, W) and cur["motion_lr"].shape[:2] == (h, w)
        want = v.expected_jitter(t, ratio[0], meta)
        if not np.all(np.abs(cur["jitter_px"] - want) <= v.JITTER_TOL_PX):
            failures.append(f"jitter: frame {t}: {cur['jitter_px'].tolist()}, expected {want.tolist()}")
        failures += [f"{check}: frame {t}: {message}"
                     for check, message in v._motion_problems(ratio, cur, prev, tally, judged)]
        prev = cur
    failures += [f"motion_warp: {'sequence' if t is None else f'frame {t}'}: {message}"
                 for t, message in warp_sequence_problems(judged)]
    return {"frames": len(doc["frames"]), "ratio": ratio, "judged": tally.judged, "failures": failures}


def main(paths: list[str]) -> int:
    bad = 0
    for root in paths:
        for seq in sorted(p.parent for p in Path(root).rglob("sequence.json")):
            result = check_sequence_dir(seq)
            bad += bool(result["failures"])
            rx, ry = result["ratio"]
            print(f"{seq}: {result['frames']} frames, ratio {rx:.6f} x {ry:.6f}, judged {result['judged']}: "
                  + ("; ".join(result["failures"]) or "all checks pass"))
    return 3 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
