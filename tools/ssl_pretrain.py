"""Self-supervised pretraining of the KneeNet feature extractor on unlabelled radiographs.

Method: SimCLR-style two-view contrastive learning (NT-Xent, temperature TAU) at small scale on
CPU. Each training item is a 256x256 radiograph window at the knee-crop scale; its two views
are independent draws of tools/knee_cnn.augment (random position inside the central region,
affine scale/rotation, flip, blur or down/up-sampling, gamma, contrast/brightness, noise,
percentile re-normalisation) at VIEW px. The encoder is KneeNet.features followed by global
average pooling; a 2-layer projection head (discarded afterwards) maps it to PROJ dims.

Unlabelled data ("every radiograph we can legally use"):
- the knee ROI crops of the development set (labels never read here), restricted by the
  caller to the images a fold may see (LOSO: the held-out source is excluded);
- every distinct CR/DX/RF/MG/XA single-frame radiograph shipped in the installed test-data
  packages pydicom-data (MIT) and deid-data (MIT), read with the product's DICOM reader
  (edgeosteo.intake: modality LUT, windowing, MONOCHROME1 inverted so bone is bright),
  de-duplicated (the same image in several transfer syntaxes counts once), resampled to the
  knee-crop scale and cut into PUBLIC_WINDOWS windows each (windows that are mostly
  collimator/air are rejected).
"""

from __future__ import annotations

import glob
import math
import os
import time
import warnings
from dataclasses import dataclass

import cv2
import knee_cnn
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

VIEW = 64  # px per view (32 mm at the knee-crop scale, several trabecular periods)
BATCH = 64  # items per step (2 views each)
STEPS = 120
LR = 2e-3
WD = 1e-4
TAU = 0.2
PROJ = 64
# knee crops are resampled to 160 px per knee width (~80 mm): about 0.5 mm per pixel
TARGET_MM_PER_PX = 0.5
# CR files that do not record pixel spacing: a typical computed-radiography pitch (stated in
# the report; the random scale jitter of the windows covers the uncertainty)
ASSUMED_MM_PER_PX = 0.2
PUBLIC_WINDOWS = 80  # windows per distinct public radiograph
RADIOGRAPH_MODALITIES = ("CR", "DX", "RF", "MG", "XA")


@dataclass
class PublicImage:
    name: str
    package: str
    modality: str
    body_part: str | None
    spacing_mm: float
    spacing_assumed: bool
    files: list[str]
    pixels: np.ndarray  # resampled to TARGET_MM_PER_PX, float32 [0,1], bone bright
    shape: tuple[int, int]  # original
    thumb: np.ndarray


def _candidate_files() -> list[tuple[str, str]]:
    out = []
    try:
        from pydicom.data import get_testdata_files

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out += [("pydicom-data", f) for f in get_testdata_files("*")]
    except ImportError:
        pass
    try:
        import deid_data

        root = os.path.dirname(deid_data.__file__)
        out += [
            ("deid-data", f)
            for f in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True))
            if os.path.isfile(f) and not f.endswith((".py", ".pyc", ".md", ".zip"))
        ]
    except ImportError:
        pass
    return out


def public_radiographs(min_side: int = 512) -> tuple[list[PublicImage], dict]:
    """Every distinct plain radiograph in the installed DICOM test-data packages."""
    import pydicom

    from edgeosteo.errors import IntakeError
    from edgeosteo.intake import read_image

    seen: list[PublicImage] = []
    scanned: dict[str, int] = {}
    for pkg, f in _candidate_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue
        scanned[pkg] = scanned.get(pkg, 0) + 1
        mod = str(ds.get("Modality", "")).upper()
        if mod not in RADIOGRAPH_MODALITIES or int(ds.get("NumberOfFrames", 1) or 1) > 1:
            continue
        try:
            rg = read_image(f).radiograph
        except IntakeError:
            continue
        g = rg.pixels
        if g.ndim != 2 or min(g.shape) < min_side:
            continue
        # the same image stored in several transfer syntaxes (lossless or lossy) or pixel
        # representations: same shape and a near-identical 64x64 thumbnail
        thumb = cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA).ravel()
        dup = next(
            (p for p in seen if p.shape == g.shape and np.corrcoef(p.thumb, thumb)[0, 1] > 0.98),
            None,
        )
        if dup is not None:
            dup.files.append(os.path.basename(f))
            continue
        if rg.pixel_spacing_mm:
            sp, assumed = float(np.mean(rg.pixel_spacing_mm)), False
        else:
            sp, assumed = ASSUMED_MM_PER_PX, True
        fct = sp / TARGET_MM_PER_PX
        r = cv2.resize(
            g,
            (max(1, round(g.shape[1] * fct)), max(1, round(g.shape[0] * fct))),
            interpolation=cv2.INTER_AREA,
        )
        seen.append(
            PublicImage(
                name=os.path.basename(f),
                package=pkg,
                modality=mod,
                body_part=rg.body_part,
                spacing_mm=sp,
                spacing_assumed=assumed,
                files=[os.path.basename(f)],
                pixels=r.astype(np.float32),
                shape=g.shape,
                thumb=thumb,
            )
        )
    imgs = sorted(seen, key=lambda p: p.name)
    info = {
        "dicom_files_read_by_package": scanned,
        "modalities_kept": list(RADIOGRAPH_MODALITIES),
        "distinct_radiographs": len(imgs),
        "images": [
            {
                "package": p.package,
                "files": sorted(p.files),
                "modality": p.modality,
                "body_part": p.body_part,
                "mm_per_px": p.spacing_mm,
                "spacing_assumed": p.spacing_assumed,
                "resampled_shape": list(p.pixels.shape),
            }
            for p in imgs
        ],
    }
    return imgs, info


def public_windows(imgs: list[PublicImage], per_image: int = PUBLIC_WINDOWS, seed: int = 7):
    """256x256 windows at the knee-crop scale (scale jitter 0.8-1.25), percentile-normalised
    like the knee crops; windows that are mostly flat background are rejected."""
    from edgeosteo.knee_roi import percentile_normalise

    rng = np.random.default_rng(seed)
    out, names = [], []
    for p in imgs:
        got, tries = 0, 0
        while got < per_image and tries < per_image * 50:
            tries += 1
            s = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
            w = round(256 / s)
            H, W = p.pixels.shape
            if w > H or w > W:
                continue
            y0, x0 = int(rng.integers(0, H - w + 1)), int(rng.integers(0, W - w + 1))
            win = cv2.resize(p.pixels[y0 : y0 + w, x0 : x0 + w], (256, 256))
            flat = np.mean((win < 0.02) | (win > 0.98))
            if flat > 0.25 or win.std() < 0.05:
                continue
            out.append(percentile_normalise(win))
            names.append(p.name)
            got += 1
    if not out:
        return np.zeros((0, 256, 256), np.float32), np.array([], dtype=object)
    return np.stack(out).astype(np.float32), np.array(names, dtype=object)


class SSLNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = knee_cnn.KneeNet().features
        w = self.features[-3].out_channels
        self.proj = nn.Sequential(
            nn.Linear(w, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Linear(128, PROJ)
        )

    def embed(self, x):
        return self.features(x).mean((2, 3))

    def forward(self, x):
        return self.proj(self.embed(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """SimCLR loss: each view must pick its partner among the 2B-1 other views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / tau
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def pretrain(
    pool: np.ndarray,
    seed: int,
    steps: int = STEPS,
    batch: int = BATCH,
    view: int = VIEW,
    log=None,
) -> tuple[dict, dict]:
    """pool: [M,256,256] unlabelled windows. Returns (KneeNet.features state_dict, info)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SSLNet()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WD)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    net.train()
    t0 = time.time()
    losses = []
    order = np.array([], int)
    for step in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(len(pool))])
        bi, order = order[:batch], order[batch:]
        v1 = np.stack([knee_cnn.augment(pool[i], rng, patch=view) for i in bi])[:, None]
        v2 = np.stack([knee_cnn.augment(pool[i], rng, patch=view) for i in bi])[:, None]
        loss = nt_xent(net(torch.from_numpy(v1)), net(torch.from_numpy(v2)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step % 60 == 59 or step == steps - 1):
            log(f"  ssl step {step + 1}: loss {np.mean(losses[-20:]):.3f}")
    k = max(1, min(20, steps // 5))
    info = {
        "steps": steps,
        "batch": batch,
        "view_px": view,
        "pool": len(pool),
        "epochs_equiv": round(steps * batch / max(len(pool), 1), 1),
        "loss_first": round(float(np.mean(losses[:k])), 4),
        "loss_last": round(float(np.mean(losses[-k:])), 4),
        "chance_loss": round(math.log(2 * batch - 1), 4),
        "seconds": round(time.time() - t0, 1),
    }
    return {kk: v.clone() for kk, v in net.features.state_dict().items()}, info


@torch.no_grad()
def embed_crops(features_state: dict, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """Global-average-pooled encoder features of full 256x256 crops: [K, 64]."""
    net = SSLNet()
    net.features.load_state_dict(features_state)
    net.eval()
    out = []
    for b0 in range(0, len(crops), batch):
        x = torch.from_numpy(crops[b0 : b0 + batch][:, None].astype(np.float32))
        out.append(net.embed(x).numpy())
    return np.concatenate(out)
