"""Another source of chest X-rays: NLM normals (Shenzhen / Montgomery) against tuberculosis sets.

    python -m training.vision.sources build --mirror /path/to/lundis.git \
        --out ../shared/data/cxr-xsite
    python -m training.vision.sources measure --data ../shared/data/cxr-xsite \
        --dev ../shared/data/cxr-dev --out /tmp/xsite.json

`build` copies, from a git mirror of `GitKentC/lundis` at the commit cxr-dev was built from,
every `Normal/others (N).jpg` (404 adult normals, the NLM tuberculosis sets' normals: their
acquisition, with the Shenzhen "L" marker, is unlike cxr-dev's NIH normals) and, chosen with a
fixed seed, 344 `TB/Tuberculosis-N.png` and 344 `TB/TB.N.jpg` images (tuberculosis, several
sources) into the cxr-dev layout. 60 of the normals form the `calib` split (they are also
linked into `calib/` for `medsight calibrate vision`); everything else is `test`.

`measure` reports, for the shipped reference and after `calibrate vision` on the 60 `calib`
normals: AUROC per tuberculosis subset, specificity and sensitivity at the model's threshold,
the share accepted by the X-ray gate and flagged by the per-image population check, and how
often the drift monitor flags a window of 40 of the site's normals (with 24 dev-TEST normals
as the control that must stay `ok`).

The tuberculosis images come from other sources than these normals (see the data README), so
AUROC here mixes disease with source; the normals-only columns (specificity, population check,
drift) are the clean cross-site measurements.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .data import load_gray, read_manifest
from .robustness import auroc_or_none, drift_statuses, outside_population_flags, score_images

LUNDIS_COMMIT = "88ce7e355bb9a0b7f493a0750fbfb9a6b9d7af4e"
N_CALIB = 60
N_PER_TB_SET = 344
DRIFT_WINDOW = 40
DRIFT_CONTROL = 24
SUBSETS = {
    "Normal (others)": re.compile(r"/Normal/others \(\d+\)\.jpg$"),
    "TB (Tuberculosis-N.png)": re.compile(r"/TB/Tuberculosis-\d+\.png$"),
    "TB (TB.N.jpg)": re.compile(r"/TB/TB\.\d+\.jpg$"),
}


def build(mirror: Path, out: Path, seed: int = 0) -> int:
    """Write images/, manifest.csv and calib/ under `out`; returns the number of images."""

    git_exe = shutil.which("git")
    if git_exe is None:
        raise FileNotFoundError("git is needed to read the mirror")

    def git(*args: str) -> bytes:
        command = [git_exe, "-C", str(mirror), *args]
        return subprocess.run(command, check=True, capture_output=True).stdout  # noqa: S603

    names = git("ls-tree", "-r", "--name-only", LUNDIS_COMMIT).decode().splitlines()
    rng = np.random.default_rng(seed)
    picked: dict[str, list[str]] = {}
    for finding, pattern in SUBSETS.items():
        found = [n for n in sorted(names) if pattern.search(n)]
        found = [found[i] for i in rng.permutation(len(found))]
        picked[finding] = found if finding.startswith("Normal") else found[:N_PER_TB_SET]
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "calib").mkdir(exist_ok=True)
    rows: list[dict[str, str]] = []
    for finding, files in picked.items():
        for k, name in enumerate(files):
            data = git("show", f"{LUNDIS_COMMIT}:{name}")
            gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
            rid = f"xs-{len(rows) + 1:04d}"
            cv2.imwrite(str(out / "images" / f"{rid}.png"), gray)
            normal = finding.startswith("Normal")
            split = "calib" if normal and k < N_CALIB else "test"
            if split == "calib":
                link = out / "calib" / f"{rid}.png"
                link.unlink(missing_ok=True)
                link.symlink_to(Path("..") / "images" / f"{rid}.png")
            rows.append(
                {
                    "id": rid,
                    "label": "normal" if normal else "abnormal",
                    "finding": finding,
                    "source_repo": "GitKentC/lundis",
                    "source_path": name,
                    "split": split,
                }
            )
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts = Counter((r["finding"], r["split"]) for r in rows)
    table = "\n".join(f"| {f} | {sp} | {n} |" for (f, sp), n in sorted(counts.items()))
    (out / "README.md").write_text(DATA_README.format(commit=LUNDIS_COMMIT, seed=seed, table=table))
    return len(rows)


DATA_README = """# cxr-xsite: another source of chest X-rays

Built by `python -m training.vision.sources build --mirror <git dir of GitKentC/lundis>
--out <this folder>` (seed {seed}), from `GitKentC/lundis` (GitHub) at commit
`{commit}`, the commit cxr-dev was built from. Images are 8-bit grayscale
PNGs as decoded from the source files.

    images/<id>.png   ids xs-0001 ...
    manifest.csv      id,label,finding,source_repo,source_path,split
    calib/            links to the `calib` normals, for `medsight calibrate vision --normals`

| finding | split | images |
|---|---|---|
{table}

Provenance and caveats:
- `Normal/others (N).jpg`: 404 adult normals. The source repository gives no provenance; by
  appearance (acquisition, the Shenzhen "L" side marker) and count they are the NLM
  tuberculosis sets' normals (Shenzhen and Montgomery). They are unlike cxr-dev's NIH normals.
- `TB/Tuberculosis-N.png` and `TB/TB.N.jpg`: tuberculosis images of several other sources (the
  Kaggle tuberculosis database: Shenzhen, Montgomery, Belarus, NIAID; and a set of unknown
  provenance), processed differently from the normals. AUROC on this set therefore mixes
  disease with source and is not a tuberculosis result; the normals-only measurements
  (specificity, population check, drift) are the clean cross-site ones.
- Licence: the source repository states none; the upstream sets carry their own terms (NLM
  tuberculosis sets, Kaggle tuberculosis database). For evaluation here, not redistribution.
"""


def _evaluate(
    scorer: Any, images: list[np.ndarray], y: np.ndarray, finding: np.ndarray
) -> dict[str, Any]:
    cal = scorer.calibration
    thr = float(cal["fusion"][scorer.fusion]["threshold"])
    cols = score_images(scorer, images)
    s = cols["score"]
    outside = outside_population_flags(cols, scorer.reference)
    row: dict[str, Any] = {
        "auroc": auroc_or_none(y, s),
        "auroc_by_finding": {
            f: auroc_or_none(y[(finding == f) | (y == 0)], s[(finding == f) | (y == 0)])
            for f in sorted(set(finding[y == 1]))
        },
        "auroc_components": {k: auroc_or_none(y, cols[k]) for k in ("knn", "patch") if k in cols},
        "threshold": thr,
        "specificity": float((s[y == 0] < thr).mean()),
        "sensitivity": float((s[y == 1] >= thr).mean()),
        "normal_median_score": float(np.median(s[y == 0])),
        "accepted_as_xray": float((cols["ood"] <= cal["ood"]["threshold"]).mean()),
        "outside_population_normals": float(np.mean(outside[y == 0])),
        "outside_population_abnormals": float(np.mean(outside[y == 1])),
    }
    return {"row": row, "cols": cols}


def _drift_rate(
    cols: dict[str, np.ndarray], pick: np.ndarray, size: int, reference: dict[str, Any], seed: int
) -> dict[str, int]:
    """Statuses of 50 random windows of `size` images drawn from `pick`."""
    statuses = drift_statuses(cols, [(pick, size)], reference, np.random.default_rng(seed))
    return dict(Counter(statuses))


def measure(data: Path, dev: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    from backend.ml.vision.scorer import load_scorer

    from .calibrate import calibrate_vision

    records = [r for r in read_manifest(data) if r.split == "test"]
    y = np.array([r.label == "abnormal" for r in records], dtype=int)
    finding = np.array([r.finding for r in records])
    images = [load_gray(r.path) for r in records]
    dev_normals = [r for r in read_manifest(dev) if r.split == "test" and r.label == "normal"]
    dev_images = [load_gray(r.path) for r in dev_normals]
    normals = np.where(y == 0)[0]
    report: dict[str, Any] = {"n_test": len(records), "n_normals": int(len(normals))}
    with tempfile.TemporaryDirectory() as tmp:
        cal_file = Path(tmp) / "site.safetensors"
        summary = calibrate_vision(data / "calib", cal_file, progress=False)
        for name, calibration in (("shipped", None), ("calibrated", cal_file)):
            scorer = load_scorer(calibration=calibration)
            got = _evaluate(scorer, images, y, finding)
            control = score_images(scorer, dev_images)
            drift_ref = scorer.reference
            got["row"]["drift_site_normals"] = _drift_rate(
                got["cols"], normals, DRIFT_WINDOW, drift_ref, seed
            )
            got["row"]["drift_dev_test_normals"] = _drift_rate(
                control, np.arange(len(dev_images)), DRIFT_CONTROL, drift_ref, seed
            )
            report[name] = got["row"]
            print(name, json.dumps(got["row"]), flush=True)  # noqa: T201 - script output
    report["calibration"] = {
        k: summary[k] for k in ("n_normals", "n_given", "refused", "site_distance", "threshold")
    }
    out.write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--mirror", type=Path, required=True, help="git dir of GitKentC/lundis")
    b.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("measure")
    m.add_argument("--data", type=Path, required=True)
    m.add_argument("--dev", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.command == "build":
        print(build(args.mirror, args.out), "images")  # noqa: T201 - script output
    else:
        measure(args.data, args.dev, args.out)


if __name__ == "__main__":
    main()
