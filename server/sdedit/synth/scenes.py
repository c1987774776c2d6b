"""Procedural landscape scenes (numpy, vectorised): the training data of the embedded model.

A scene is sky (gradient, sun glow, fractal clouds) over layered mountain ridges with atmospheric
perspective and snow caps, an optional far tree line, then water (lake or sea, with rippled reflections
and sun glitter) and/or land (meadows, fields, beach) with depth-scaled texture and foreground trees.
Time of day (day, golden hour, sunset, dusk, overcast) sets the palette and lighting.
Everything is derived from one seed, so held-out evaluation scenes use seeds outside the training range.
"""
from __future__ import annotations

import numpy as np

from .noise import fbm_1d, fbm_2d, value_noise_2d

#: Scenes with seeds from here on are held out: evaluation and benchmarks use them, training uses 0 .. < this.
HELD_OUT_SEED_BASE = 1_000_000

TIMES = ("day", "day", "golden", "sunset", "dusk", "overcast")


def _c(*rgb: float) -> np.ndarray:
    return np.array(rgb, np.float32)


def _jitter(rng: np.random.Generator, col: np.ndarray, amount: float = 0.05) -> np.ndarray:
    return np.clip(col + rng.normal(0, amount, 3).astype(np.float32), 0, 1)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    if isinstance(t, np.ndarray) and t.ndim == 2:
        t = t[..., None]
    return a + (b - a) * t


def _palette(rng: np.random.Generator, tod: str) -> dict:
    if tod == "day":
        p = dict(top=_c(0.22, 0.42, 0.78), hor=_c(0.70, 0.82, 0.95), sun=_c(1, 1, 0.95),
                 light=_c(1.0, 0.98, 0.92), cloud=_c(0.97, 0.97, 0.98), cloud_dark=_c(0.62, 0.66, 0.74),
                 water=_c(0.12, 0.30, 0.45), contrast=1.0)
    elif tod == "golden":
        p = dict(top=_c(0.30, 0.45, 0.75), hor=_c(0.95, 0.82, 0.62), sun=_c(1, 0.92, 0.7),
                 light=_c(1.0, 0.85, 0.62), cloud=_c(1.0, 0.88, 0.72), cloud_dark=_c(0.62, 0.55, 0.6),
                 water=_c(0.15, 0.27, 0.38), contrast=1.0)
    elif tod == "sunset":
        p = dict(top=_c(0.18, 0.18, 0.42), hor=_c(1.0, 0.55, 0.25), sun=_c(1, 0.8, 0.45),
                 light=_c(1.0, 0.62, 0.42), cloud=_c(1.0, 0.55, 0.45), cloud_dark=_c(0.38, 0.25, 0.38),
                 water=_c(0.12, 0.12, 0.25), contrast=0.85)
    elif tod == "dusk":
        p = dict(top=_c(0.08, 0.10, 0.28), hor=_c(0.55, 0.45, 0.62), sun=_c(0.9, 0.7, 0.7),
                 light=_c(0.55, 0.52, 0.68), cloud=_c(0.55, 0.45, 0.6), cloud_dark=_c(0.2, 0.18, 0.3),
                 water=_c(0.06, 0.08, 0.18), contrast=0.7)
    else:  # overcast
        g = rng.uniform(0.5, 0.7)
        p = dict(top=_c(g, g + 0.03, g + 0.07), hor=_c(0.80, 0.82, 0.84), sun=_c(0.9, 0.9, 0.9),
                 light=_c(0.82, 0.84, 0.88), cloud=_c(0.85, 0.86, 0.88), cloud_dark=_c(0.45, 0.47, 0.52),
                 water=_c(0.22, 0.28, 0.32), contrast=0.6)
    return {k: (_jitter(rng, v, 0.04) if isinstance(v, np.ndarray) else v) for k, v in p.items()}


def _sky(rng, h, w, horizon, pal, tod):
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    t = np.clip(ys / max(horizon, 1.0), 0, 1) ** rng.uniform(0.6, 1.6)
    sky = _mix(pal["top"], pal["hor"], np.broadcast_to(t, (h, w)))
    sun_x = rng.uniform(0.1, 0.9) * w
    sun_y = horizon * (rng.uniform(0.55, 0.95) if tod in ("sunset", "dusk", "golden") else rng.uniform(0.1, 0.6))
    d2 = ((xs - sun_x) ** 2 + (ys - sun_y) ** 2) / (w * w)
    glow = np.exp(-d2 / rng.uniform(0.01, 0.06)) * (0.25 if tod == "overcast" else 0.6)
    sky = _mix(sky, pal["sun"], glow)
    if tod != "overcast" and rng.random() < 0.6:
        r = rng.uniform(0.012, 0.03) * w
        disc = np.clip((r - np.sqrt(d2) * w) / 1.5, 0, 1)
        sky = _mix(sky, _c(1, 1, 0.96), disc)
    # clouds: horizontally stretched fractal noise, thresholded, lit from above
    cover = {"overcast": rng.uniform(0.45, 0.9)}.get(tod, rng.uniform(0.0, 0.65))
    if cover > 0.05:
        stretch = rng.uniform(1.5, 4.0)
        n = fbm_2d(h, w, rng.uniform(2, 5), rng, octaves=6, aspect=stretch)
        thr = 0.35 - cover * 0.7
        dens = np.clip((n - thr) * rng.uniform(2.5, 6.0), 0, 1)
        dens *= np.clip(1.2 - ys / max(horizon, 1.0) * 0.4, 0, 1)  # thinner near the horizon
        lit = np.clip(0.5 + (n - np.roll(n, 3, axis=0)) * 6.0, 0, 1)
        ccol = _mix(pal["cloud_dark"], pal["cloud"], lit)
        ccol = _mix(ccol, pal["sun"], glow[..., None] * 0.5 if glow.ndim == 2 else glow)
        sky = _mix(sky, ccol, dens * rng.uniform(0.7, 1.0))
    return sky, sun_x, sun_y, glow


def _mountains(rng, img, h, w, horizon, pal, tod):
    n_layers = rng.choice([0, 1, 2, 2, 3, 3, 4])
    ys = np.arange(h, dtype=np.float32)[:, None]
    haze = pal["hor"]
    for i in range(n_layers):
        far = 1.0 - i / max(n_layers, 1)  # 1 = farthest
        amp = rng.uniform(0.08, 0.35) * horizon * (0.6 + 0.6 * far)
        base = horizon - rng.uniform(0.0, 0.15) * horizon * (1 - far)
        ridged = rng.random() < 0.7
        prof = fbm_1d(w, rng.uniform(1.5, 5), rng, ridged=ridged, gain=rng.uniform(0.45, 0.6))
        prof = (prof - prof.min()) / (np.ptp(prof) + 1e-6)
        ridge = base - amp * (0.25 + prof)
        mask = (ys >= ridge[None, :]).astype(np.float32)
        mask = np.clip((ys - ridge[None, :]) + 0.5, 0, 1)
        rocky = rng.random() < 0.75 or far > 0.5
        if rocky:
            rock = _jitter(rng, rng.choice([_c(0.45, 0.42, 0.40), _c(0.38, 0.36, 0.38), _c(0.50, 0.45, 0.38),
                                             _c(0.30, 0.33, 0.30)]), 0.05)
        else:
            rock = _jitter(rng, _c(0.25, 0.40, 0.18), 0.05)
        hf = fbm_2d(h, w, rng.uniform(4, 10), rng, octaves=6, aspect=0.5)
        gully = value_noise_2d(h, w, rng.uniform(10, 30), rng, aspect=0.15)
        light_dir = rng.choice([-1, 1])
        shade = np.clip(0.55 + (hf - np.roll(hf, light_dir * 2, axis=1)) * 12.0 + gully * 0.15, 0.1, 1.3)
        col = rock[None, None, :] * shade[..., None] * (0.7 + 0.3 * hf[..., None])
        depth = np.clip((ys - ridge[None, :]) / (amp * 1.2 + 1), 0, 1)
        if rocky and rng.random() < 0.55 and amp > 0.12 * horizon:
            snow_n = fbm_2d(h, w, rng.uniform(6, 14), rng, octaves=5)
            line = rng.uniform(0.25, 0.6)
            snow = np.clip((line + 0.35 * snow_n - depth) * 8.0, 0, 1) * np.clip(shade * 1.2, 0.3, 1.0)[..., None][..., 0]
            scol = _c(0.95, 0.96, 1.0)[None, None, :] * np.clip(0.6 + 0.6 * shade, 0.4, 1.1)[..., None]
            col = _mix(col, scol, snow)
        col = col * pal["light"] * pal["contrast"] + (1 - pal["contrast"]) * 0.5 * pal["light"]
        # atmospheric perspective: far layers and mountain feet fade into the haze
        hz = 0.15 + 0.6 * far ** 1.3 + 0.25 * depth ** 2
        col = _mix(col, haze, np.clip(hz, 0, 0.92))
        img = _mix(img, col, mask)
    return img


def _tree_profile(rng, w, n, hmin, hmax, conifer_frac, x_range=None):
    """Top outline (heights above base) of a row of trees, and the lit/shaded side per column."""
    xs = np.arange(w, dtype=np.float32)[None, :]
    lo, hi = x_range if x_range is not None else (-10, w + 10)
    cx = rng.uniform(lo, hi, n).astype(np.float32)[:, None]
    ht = rng.uniform(hmin, hmax, n).astype(np.float32)[:, None]
    conifer = (rng.random(n) < conifer_frac)[:, None]
    half = np.where(conifer, ht * rng.uniform(0.2, 0.35), ht * rng.uniform(0.35, 0.6))
    dx = np.abs(xs - cx)
    tri = ht - dx * ht / half
    lumps = 1 + 0.12 * np.sin(dx * rng.uniform(0.5, 1.2) + rng.uniform(0, 6, (n, 1)))
    bump = ht * np.sqrt(np.clip(1 - (dx / half) ** 2, 0, 1)) ** 0.7 * lumps
    bump = np.where(dx < half, bump, -1e3)
    prof = np.where(conifer, tri, bump)
    k = np.argmax(prof, axis=0)
    top = prof[k, np.arange(w)]
    side = np.sign(xs[0] - cx[k, 0])
    return np.maximum(top, 0), side


def _trees(rng, img, h, w, base, pal, scale, haze_amt, x_range=None, n=None):
    """A band of trees standing on the row `base` (array over x) with heights ~ `scale`."""
    if n is None:
        n = int(rng.uniform(0.3, 1.0) * w / max(scale * 0.35, 1.0)) + 3
    top, side = _tree_profile(rng, w, n, scale * 0.5, scale * 1.2, rng.uniform(0, 1), x_range)
    ys = np.arange(h, dtype=np.float32)[:, None]
    if rng.random() < 0.5:
        thick = scale * rng.uniform(0.3, 1.0)
    else:
        thick = 2.0
    mask = np.clip((ys - (base[None, :] - top[None, :])) + 0.5, 0, 1) * (ys <= base[None, :] + thick)
    green = _jitter(rng, rng.choice([_c(0.10, 0.22, 0.10), _c(0.14, 0.28, 0.12), _c(0.08, 0.18, 0.12),
                                      _c(0.22, 0.30, 0.12)]), 0.03)
    tex = value_noise_2d(h, w, w / max(scale * 0.25, 1.0), rng)
    tex2 = fbm_2d(h, w, w / max(scale * 2, 1.0), rng, octaves=3)
    light = np.clip(0.75 + 0.25 * side[None, :] * rng.choice([-1, 1]) + 0.3 * tex + 0.2 * tex2, 0.3, 1.4)
    col = green[None, None, :] * light[..., None] * pal["light"]
    col = _mix(col, pal["hor"], haze_amt)
    return _mix(img, col, mask)


def _land_texture(rng, h, w, y0, pal):
    """Meadow/field colours below row y0 with texture that grows towards the viewer."""
    ys = np.arange(h, dtype=np.float32)[:, None]
    near = np.clip((ys - y0) / max(h - y0, 1.0), 0, 1)  # 0 at horizon, 1 at bottom
    greens = [_c(0.30, 0.48, 0.16), _c(0.42, 0.55, 0.20), _c(0.55, 0.55, 0.25), _c(0.22, 0.40, 0.15),
              _c(0.62, 0.55, 0.30), _c(0.35, 0.45, 0.22)]
    a = _jitter(rng, greens[rng.integers(len(greens))], 0.04)
    b = _jitter(rng, greens[rng.integers(len(greens))], 0.04)
    patches = fbm_2d(h, w, rng.uniform(2, 6), rng, octaves=4, aspect=rng.uniform(2, 6))
    col = _mix(a, b, np.clip(patches * 2 + 0.5, 0, 1))
    fine = value_noise_2d(h, w, rng.uniform(60, 110), rng, aspect=0.3)  # grass blades (vertical streaks)
    mid = fbm_2d(h, w, rng.uniform(8, 16), rng, octaves=4, aspect=2.0)
    tex = 1.0 + mid * 0.18 + fine * (0.04 + 0.14 * near)
    col = col * tex[..., None] * pal["light"] * pal["contrast"] + (1 - pal["contrast"]) * 0.3 * pal["light"]
    if rng.random() < 0.3:  # flowers
        fl = value_noise_2d(h, w, rng.uniform(70, 120), rng)
        fcol = rng.choice([_c(0.95, 0.9, 0.3), _c(0.9, 0.3, 0.3), _c(0.95, 0.95, 0.95), _c(0.7, 0.4, 0.8)])
        col = _mix(col, fcol, np.clip((fl - 0.75) * 6, 0, 1) * near)
    haze = np.clip(0.55 * (1 - near) ** 4, 0, 1)
    return _mix(col, pal["hor"], haze), near


def _water(rng, img, h, w, horizon, y_end, pal, sun_x, tod):
    """Rows horizon..y_end[x] become water reflecting the image above the horizon, with ripples."""
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    dist = np.clip((ys - horizon) / max(h - horizon, 1.0), 0, 1)  # 0 far .. 1 near
    rip = fbm_2d(h, w, rng.uniform(3, 8), rng, octaves=5, aspect=rng.uniform(6, 14))
    calm = rng.uniform(0.5, 6.0)
    src_y = np.clip(2 * horizon - ys - 1 + rip * calm * (0.5 + 3 * dist), 0, h - 1)
    src_x = np.clip(xs + rip * calm * 2 * dist, 0, w - 1)
    refl = img[src_y.astype(np.int64), src_x.astype(np.int64)]
    k = np.broadcast_to(0.25 + 0.45 * dist * rng.uniform(0.3, 1.0), (h, w))
    water = _mix(refl * 0.85, pal["water"] * pal["light"], k)
    streak = value_noise_2d(h, w, rng.uniform(15, 40), rng, aspect=12)
    water = water * (1 + streak[..., None] * (0.04 + 0.1 * dist[..., None]))
    if tod != "overcast":
        gl = np.exp(-((xs - sun_x) / (w * rng.uniform(0.04, 0.12) * (0.4 + dist))) ** 2)
        sparkle = np.clip((streak + rip - 0.6) * 4, 0, 1) * gl * rng.uniform(0.3, 0.9)
        water = _mix(water, pal["sun"], sparkle)
    mask = ((ys >= horizon) & (ys < y_end[None, :])).astype(np.float32)
    return _mix(img, water, mask)


def render_scene(seed: int, size: int = 256) -> np.ndarray:
    """One landscape as uint8 (size, size, 3). Deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    h = w = size
    tod = TIMES[rng.integers(len(TIMES))]
    pal = _palette(rng, tod)
    kind = rng.choice(["lake", "lake", "sea", "meadow", "meadow", "valley"])
    horizon = float(rng.uniform(0.35, 0.62) * h)
    img, sun_x, _, _ = _sky(rng, h, w, horizon, pal, tod)
    img = _mountains(rng, img, h, w, horizon, pal, tod)
    xs_base = np.full(w, horizon, np.float32)
    if kind in ("lake", "meadow", "valley") and rng.random() < 0.7:
        img = _trees(rng, img, h, w, xs_base + 1, pal, rng.uniform(0.015, 0.06) * h, rng.uniform(0.2, 0.5))
    land, near = _land_texture(rng, h, w, horizon, pal)
    ys = np.arange(h, dtype=np.float32)[:, None]
    if kind in ("lake", "sea"):
        shore = horizon + (h - horizon) * (rng.uniform(0.45, 0.85) if kind == "lake" else rng.uniform(0.75, 1.05))
        shore_line = shore + fbm_1d(w, rng.uniform(1, 4), rng) * (h - horizon) * rng.uniform(0.05, 0.25)
        below = (ys >= shore_line[None, :]).astype(np.float32)
        if kind == "sea" or rng.random() < 0.4:  # sandy beach along the shore
            sand = _jitter(rng, _c(0.85, 0.77, 0.58), 0.04) * pal["light"]
            sn = value_noise_2d(h, w, rng.uniform(40, 90), rng) * 0.06 + fbm_2d(h, w, 6, rng, 3) * 0.08
            sand_img = sand[None, None, :] * (1 + sn[..., None])
            width = (h - horizon) * rng.uniform(0.05, 0.3)
            sand_mask = (ys < shore_line[None, :] + width).astype(np.float32)
            land = _mix(land, sand_img, sand_mask)
        img = _mix(img, land, below * (ys >= horizon))
        img = _water(rng, img, h, w, horizon, shore_line, pal, sun_x, tod)
        if kind == "sea":  # surf line
            foam = np.clip(1 - np.abs(ys - shore_line[None, :]) / 2.0, 0, 1) * rng.uniform(0.3, 0.9)
            img = _mix(img, _c(0.95, 0.95, 0.95) * pal["light"], foam)
    else:
        img = _mix(img, land, (ys >= horizon).astype(np.float32))
        if kind == "valley" and rng.random() < 0.6:  # a river winding towards the viewer
            cx = w * rng.uniform(0.3, 0.7) + fbm_1d(h, 2, rng) * w * 0.3
            half = 1 + 25 * near[:, 0] ** 1.5
            river = np.clip(half[:, None] - np.abs(np.arange(w)[None, :] - cx[:, None]), 0, 1) * (ys > horizon + 2)
            img = _mix(img, _mix(pal["water"], pal["hor"], 0.5) * (1 + 0.1 * fbm_2d(h, w, 20, rng, 3))[..., None], river)
    if rng.random() < 0.5:  # mid-ground tree band on the land
        y_b = horizon + (h - horizon) * rng.uniform(0.15, 0.6)
        base = y_b + fbm_1d(w, 2, rng) * (h - horizon) * 0.1
        if kind in ("lake", "sea"):
            base = np.maximum(base, shore_line + 3)
        if np.all(base < h):
            img = _trees(rng, img, h, w, base, pal, rng.uniform(0.05, 0.15) * h, rng.uniform(0.0, 0.2))
    if rng.random() < 0.3:  # big foreground trees at one side
        base = np.full(w, h * rng.uniform(0.95, 1.1), np.float32)
        xr = (-0.1 * w, 0.2 * w) if rng.random() < 0.5 else (0.8 * w, 1.1 * w)
        img = _trees(rng, img, h, w, base, pal, rng.uniform(0.3, 0.6) * h, 0.0, xr, int(rng.integers(1, 4)))
    img = img * rng.uniform(0.9, 1.1) + rng.normal(0, 0.008, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_many(seeds: range | list[int], size: int = 256) -> np.ndarray:
    return np.stack([render_scene(int(s), size) for s in seeds])
