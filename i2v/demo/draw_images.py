"""Draw the demo's input images (run once; the PNGs are committed next to this file).

uv run python i2v/demo/draw_images.py   (the script stays in the repository: it is not in the wheel)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).parent / "images"
Painter = Callable[[ImageDraw.ImageDraw, int, int, random.Random], None]


def gradient(
    draw: ImageDraw.ImageDraw, w: int, h: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> None:
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))


def sunset(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (255, 120, 60), (70, 30, 110))
    d.ellipse([w * 0.38, h * 0.38, w * 0.62, h * 0.62 + h * 0.1], fill=(255, 210, 90))
    d.rectangle([0, h * 0.62, w, h], fill=(20, 40, 90))
    for _ in range(60):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.64, h)
        d.line([(x, y), (x + rng.uniform(10, 40), y)], fill=(255, 190, 110), width=2)


def mountains(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (130, 190, 250), (230, 240, 255))
    for i, shade in enumerate(((90, 100, 130), (60, 75, 100), (40, 55, 70))):
        base = h * (0.55 + 0.15 * i)
        points: list[tuple[float, float]] = [(0, h)]
        for x in range(0, w + 80, 80):
            points.append((x, base - rng.uniform(40, 180)))
        points.append((w, h))
        d.polygon(points, fill=shade)


def city(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (10, 10, 40), (40, 20, 70))
    x = 0
    while x < w:
        bw, bh = rng.randint(40, 90), rng.randint(int(h * 0.2), int(h * 0.7))
        d.rectangle([x, h - bh, x + bw, h], fill=(25, 25, 35))
        for wy in range(h - bh + 8, h - 8, 16):
            for wx in range(x + 6, x + bw - 6, 12):
                if rng.random() < 0.45:
                    d.rectangle([wx, wy, wx + 5, wy + 8], fill=(255, 220, 120))
        x += bw + rng.randint(2, 10)


def forest(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (180, 220, 190), (40, 90, 50))
    for _ in range(40):
        x, size = rng.uniform(0, w), rng.uniform(40, 110)
        y = rng.uniform(h * 0.3, h)
        d.rectangle([x - 4, y, x + 4, y + size * 0.6], fill=(80, 50, 30))
        d.polygon([(x, y - size), (x - size / 2.5, y), (x + size / 2.5, y)], fill=(20, rng.randint(80, 130), 40))


def lighthouse(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (40, 60, 110), (120, 150, 200))
    d.rectangle([0, h * 0.75, w, h], fill=(30, 70, 120))
    d.polygon(
        [(w * 0.45, h * 0.75), (w * 0.55, h * 0.75), (w * 0.53, h * 0.3), (w * 0.47, h * 0.3)], fill=(240, 240, 240)
    )
    for y in (0.4, 0.55, 0.7):
        d.rectangle([w * 0.455, h * y, w * 0.545, h * y + h * 0.05], fill=(200, 40, 40))
    d.polygon([(w * 0.5, h * 0.27), (w, h * 0.15), (w, h * 0.35)], fill=(255, 240, 160))


def balloons(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (120, 200, 255), (250, 250, 255))
    for _ in range(7):
        x, y, r = rng.uniform(60, w - 60), rng.uniform(60, h * 0.7), rng.uniform(25, 60)
        color = (rng.randint(150, 255), rng.randint(40, 200), rng.randint(40, 200))
        d.ellipse([x - r, y - r * 1.2, x + r, y + r], fill=color)
        d.line([(x, y + r), (x, y + r * 1.6)], fill=(80, 60, 40), width=2)
        d.rectangle([x - r * 0.2, y + r * 1.6, x + r * 0.2, y + r * 1.9], fill=(120, 80, 40))


def flower(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (250, 230, 240), (200, 230, 200))
    cx, cy = w / 2, h * 0.4
    d.line([(cx, cy), (cx, h)], fill=(40, 120, 40), width=8)
    for k in range(12):
        a = 2 * math.pi * k / 12
        px, py = cx + 70 * math.cos(a), cy + 70 * math.sin(a)
        d.ellipse([px - 40, py - 40, px + 40, py + 40], fill=(230, 90, 140))
    d.ellipse([cx - 40, cy - 40, cx + 40, cy + 40], fill=(250, 200, 50))


def library(d: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random) -> None:
    gradient(d, w, h, (60, 40, 30), (30, 20, 15))
    for shelf in range(5):
        y = h * (0.1 + shelf * 0.18)
        d.rectangle([0, y + h * 0.14, w, y + h * 0.16], fill=(100, 70, 40))
        x = 10
        while x < w - 10:
            bw = rng.randint(8, 20)
            d.rectangle(
                [x, y + rng.uniform(0, h * 0.04), x + bw, y + h * 0.14],
                fill=(rng.randint(80, 200), rng.randint(30, 90), rng.randint(30, 90)),
            )
            x += bw + 2


SCENES: dict[str, tuple[Painter, tuple[int, int]]] = {
    "sunset": (sunset, (640, 360)),
    "mountains": (mountains, (640, 360)),
    "city": (city, (640, 360)),
    "forest": (forest, (360, 640)),
    "lighthouse": (lighthouse, (480, 480)),
    "balloons": (balloons, (640, 400)),
    "flower": (flower, (400, 600)),
    "library": (library, (640, 360)),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for index, (name, (paint, size)) in enumerate(SCENES.items()):
        image = Image.new("RGB", size)
        paint(ImageDraw.Draw(image), *size, random.Random(index))
        image.save(OUT / f"{name}.png", optimize=True)


if __name__ == "__main__":
    main()
