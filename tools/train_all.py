"""Re-run the whole bone-density model pipeline end to end with fixed seeds.

Usage: python tools/train_all.py DATA_DIR --out models/ [--cnn-repeats 2] [--extra-repeats 1]

Steps: clinical model (evaluation + export) -> image research (texture + CNN, CV and LOSO,
fusion) -> final experimental CNN (FP32/INT8 ONNX, OpenVINO IR) + fused graph ->
manifests and cards. Reports: tools/reports/{clinical,image_research,image,train_all}.json.
9-21 minutes measured on 2 shared CPU cores before the issue #3 extras (self-supervised
pretraining, ordinal head: 4 short pretrainings and 16 more CNN trainings, --extra-repeats 1);
with them 39 minutes measured while other processes kept the 2 cores busy (load average 6-8;
tools/reports/train_all.json). The time is dominated by the CNN trainings of the research
step; a rerun reproduced every shipped model file byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv=None):
    ap = argparse.ArgumentParser(description="train and export all knee bone-density models")
    ap.add_argument("data_dir")
    ap.add_argument("--out", default="models")
    ap.add_argument("--reports", default=str(HERE / "reports"))
    ap.add_argument("--cnn-repeats", type=int, default=2)
    ap.add_argument(
        "--extra-repeats",
        type=int,
        default=1,
        help="CV repeats for the self-supervised and ordinal variants (0 skips them)",
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    import image_research
    import train_clinical
    import train_image
    import write_cards

    rep = Path(args.reports)
    rep.mkdir(parents=True, exist_ok=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    times = {}
    t0 = time.time()
    train_clinical.main([args.data_dir, "--out", args.out, "--report", str(rep / "clinical.json")])
    times["clinical_s"] = round(time.time() - t0, 1)
    t1 = time.time()
    image_research.main(
        [
            args.data_dir,
            "--report",
            str(rep / "image_research.json"),
            "--cnn-repeats",
            str(args.cnn_repeats),
            "--extra-repeats",
            str(args.extra_repeats),
        ]
    )
    times["image_research_s"] = round(time.time() - t1, 1)
    t1 = time.time()
    train_image.main(
        [
            args.data_dir,
            "--out",
            args.out,
            "--report",
            str(rep / "image.json"),
            "--research",
            str(rep / "image_research.json"),
        ]
    )
    times["train_image_s"] = round(time.time() - t1, 1)
    write_cards.main(["--out", args.out, "--reports", str(rep)])
    times["total_s"] = round(time.time() - t0, 1)
    (rep / "train_all.json").write_text(
        json.dumps(
            {
                "timings": times,
                "data_dir": Path(args.data_dir).name,
                "cnn_repeats": args.cnn_repeats,
                "extra_repeats": args.extra_repeats,
            },
            indent=1,
        )
    )
    print(json.dumps(times))


if __name__ == "__main__":
    main()
