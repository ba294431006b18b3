"""Minimal PNG plots drawn with OpenCV (matplotlib is not installed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

W, H, M = 640, 480, 60  # canvas and margin
COLOURS = [(200, 80, 30), (40, 40, 220), (40, 160, 40), (160, 40, 160), (0, 140, 220), (90, 90, 90)]


class Axes:
    def __init__(
        self,
        title: str,
        xlabel: str,
        ylabel: str,
        xlim: tuple[float, float] = (0, 1),
        ylim: tuple[float, float] = (0, 1),
    ) -> None:
        self.img = np.full((H, W, 3), 255, np.uint8)
        self.xlim, self.ylim = xlim, ylim
        cv2.rectangle(self.img, (M, M // 2), (W - M // 2, H - M), (0, 0, 0), 1)
        self.text(title, (M, M // 2 - 8), 0.55)
        self.text(xlabel, (W // 2 - 40, H - 15), 0.5)
        self.text(ylabel, (5, 14), 0.45)
        for t in np.linspace(0, 1, 6):
            xv = xlim[0] + t * (xlim[1] - xlim[0])
            yv = ylim[0] + t * (ylim[1] - ylim[0])
            px, py = self.px(xv, ylim[0]), self.px(xlim[0], yv)
            cv2.line(self.img, (px[0], H - M), (px[0], H - M + 5), (0, 0, 0), 1)
            self.text(f"{xv:.3g}", (px[0] - 10, H - M + 20), 0.4)
            cv2.line(self.img, (M - 5, py[1]), (M, py[1]), (0, 0, 0), 1)
            self.text(f"{yv:.3g}", (M - 40, py[1] + 4), 0.4)
        self.n_legend = 0

    def px(self, x: float, y: float) -> tuple[int, int]:
        fx = (x - self.xlim[0]) / max(self.xlim[1] - self.xlim[0], 1e-12)
        fy = (y - self.ylim[0]) / max(self.ylim[1] - self.ylim[0], 1e-12)
        return int(M + fx * (W - 1.5 * M)), int(H - M - fy * (H - 1.5 * M))

    def text(
        self,
        s: str,
        org: tuple[int, int],
        scale: float = 0.45,
        colour: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        cv2.putText(self.img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        colour: tuple[int, int, int],
        label: str | None = None,
        thickness: int = 2,
    ) -> None:
        pts = np.array([self.px(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
        cv2.polylines(self.img, [pts], False, colour, thickness, cv2.LINE_AA)
        if label:
            self.legend(label, colour)

    def legend(self, label: str, colour: tuple[int, int, int]) -> None:
        y = M // 2 + 20 + 18 * self.n_legend
        cv2.line(self.img, (W - 250, y - 4), (W - 225, y - 4), colour, 3)
        self.text(label, (W - 220, y), 0.42)
        self.n_legend += 1

    def bar(self, x0: float, x1: float, y: float, colour: tuple[int, int, int]) -> None:
        p0, p1 = self.px(x0, self.ylim[0]), self.px(x1, y)
        overlay = self.img.copy()
        cv2.rectangle(overlay, (p0[0], p1[1]), (p1[0], p0[1]), colour, -1)
        cv2.addWeighted(overlay, 0.45, self.img, 0.55, 0, self.img)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), self.img)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path) -> None:
    ax = Axes("ROC", "false positive rate", "TPR")
    ax.line([0, 1], [0, 1], (180, 180, 180), thickness=1)
    for i, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        ax.line(fpr, tpr, COLOURS[i % len(COLOURS)], f"{name} AUC {auc:.3f}")
    ax.save(path)


def plot_pr(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path) -> None:
    ax = Axes("Precision-recall", "recall", "precision")
    for i, (name, (rec, prec, ap)) in enumerate(curves.items()):
        ax.line(rec, prec, COLOURS[i % len(COLOURS)], f"{name} AP {ap:.3f}")
    ax.save(path)


def plot_histograms(scores_by_group: dict[str, np.ndarray], threshold: float, path: Path) -> None:
    bins = np.linspace(0, 100, 26)
    hists = {
        k: np.histogram(v, bins=bins, density=True)[0] * 4.0 for k, v in scores_by_group.items()
    }
    ymax = max(float(h.max()) for h in hists.values()) * 1.1 or 1.0
    ax = Axes("Anomaly score by finding", "anomaly score (0-100)", "density", (0, 100), (0, ymax))
    for i, (name, h) in enumerate(hists.items()):
        c = COLOURS[i % len(COLOURS)]
        for j, v in enumerate(h):
            ax.bar(bins[j], bins[j + 1], float(v), c)
        ax.legend(f"{name} (n={len(scores_by_group[name])})", c)
    ax.line([threshold, threshold], [0, ymax], (0, 0, 0), "threshold", 1)
    ax.save(path)


def plot_reliability(
    conf: np.ndarray, acc: np.ndarray, counts: np.ndarray, ece: float, path: Path
) -> None:
    ax = Axes(f"Reliability (ECE {ece:.3f})", "predicted P(abnormal)", "observed frac")
    ax.line([0, 1], [0, 1], (180, 180, 180), thickness=1)
    edges = np.linspace(0, 1, len(counts) + 1)
    for j in range(len(counts)):
        if counts[j]:
            ax.bar(edges[j], edges[j + 1], float(acc[j]), COLOURS[0])
    keep = counts > 0
    ax.line(conf[keep], acc[keep], COLOURS[1], "observed vs predicted")
    ax.save(path)
