"""3-D landscapes rendered from random cameras (numpy): more photographic training scenes than scenes.py.

Why: scenes.py paints a landscape in screen space (layered ridges, textures stretched along one axis), so
its textures carry the directional statistics a painter chose, and at 512 px its high-pass energy runs
vertical (benchmarks/streaks.py). Here a heightfield is lit and seen through a pinhole camera, so texture
comes from geometry, light and distance the way a photograph's does.

- terrain: a periodic heightfield (spectral fractal noise) of ridged mountains whose finer octaves are damped
  where the coarser slope is steep (smooth, erosion-like valley floors and sharp crests), over rolling plains;
- lighting: a sun (direction and colour by time of day) with Lambert shading, soft cast shadows (marched
  over the heightfield toward the sun) and sky ambient;
- aerial perspective: colour fades exponentially with distance into a haze lit by the sun;
- sky: zenith-horizon gradient, sun disc and glow, clouds on a plane above the land, lit from the sun's side;
- water: a level plane; reflections from a mirrored camera, displaced by ripples that shrink with distance,
  Fresnel mix with the water's own colour, sun glitter;
- materials by slope and altitude: sand at the shore, grass and forest on gentle slopes, rock with strata on
  steep ones, snow above a noisy snow line on gentle slopes.

The renderer marches each screen column front to back over geometrically spaced depths ("voxel space"
rendering, vectorised), so a 256² scene takes a fraction of a second on one CPU core.
"""
from __future__ import annotations

import math

import numpy as np

GRID = 512  # heightfield cells per side (the world tiles with this period)
TIMES = ("day", "day", "day", "golden", "golden", "sunset", "overcast")


# ---------------------------------------------------------------- noise and terrain

def _spectrum(n: int, rng: np.random.Generator, beta: float) -> np.ndarray:
    """Complex spectrum of a periodic fractal field with power ~ 1/k^beta."""
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2.0)
    amp[0, 0] = 0.0
    return amp * (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))


def _field(spec: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """The part of a spectrum with frequencies in [lo, hi) cycles per cell, as a real field of std ~1."""
    n = spec.shape[0]
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    band = spec * ((k >= lo) & (k < hi))
    f = np.fft.ifft2(band).real
    return (f / (f.std() + 1e-9)).astype(np.float32)


def fractal(n: int, rng: np.random.Generator, beta: float = 2.0) -> np.ndarray:
    """A periodic fractal field (n, n) of std 1."""
    return _field(_spectrum(n, rng, beta))


def _grad(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Periodic central differences (d/dx along columns, d/dz along rows)."""
    gx = (np.roll(h, -1, 1) - np.roll(h, 1, 1)) * 0.5
    gz = (np.roll(h, -1, 0) - np.roll(h, 1, 0)) * 0.5
    return gx, gz


def heightfield(rng: np.random.Generator, n: int = GRID) -> np.ndarray:
    """Ridged mountains with eroded-looking valleys over rolling plains, in cells (periodic, (n, n))."""
    spec = _spectrum(n, rng, 2.0)
    octaves = [(2 ** i / n, 2 ** (i + 1) / n) for i in range(1, 8)]  # 2..256 cycles per tile
    h = np.zeros((n, n), np.float32)
    gsum_x = np.zeros_like(h)
    gsum_z = np.zeros_like(h)
    amp = 1.0
    for i, (lo, hi) in enumerate(octaves):
        o = _field(spec, lo * n / n, hi)
        ridged = 1.0 - np.abs(o)  # sharp crests where the band crosses zero
        ridged = ridged * ridged
        layer = ridged if i >= 1 else o * 0.5 + 0.5
        if i >= 2:
            # finer octaves fade where the terrain built so far is steep: slopes stay clean, crests and
            # valley floors keep detail, and gullies read as if cut by water (derivative-damped fBm)
            layer = layer / (1.0 + 6.0 * (gsum_x ** 2 + gsum_z ** 2))
        h += amp * layer
        gx, gz = _grad(amp * layer)
        gsum_x += gx
        gsum_z += gz
        amp *= 0.47
    mask = _field(_spectrum(n, rng, 3.0), 0, 4 / n)  # where the mountains rise
    mask = np.clip(mask * rng.uniform(0.5, 0.9) + rng.uniform(0.0, 0.6), 0, 1)
    mask = mask * mask * (3 - 2 * mask)
    plains = _field(_spectrum(n, rng, 2.6), 0, 64 / n)
    h = (h - h.min()) / (np.ptp(h) + 1e-9)
    h = h ** rng.uniform(1.3, 2.0)  # flat valley floors, steep peaks
    height = rng.uniform(45, 110)
    return (mask * h * height + plains * rng.uniform(1.5, 5.0)).astype(np.float32)


def sample(grid: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Bilinear lookup in a periodic (n, n) grid at world positions (in cells)."""
    n = grid.shape[0]
    x0 = np.floor(x)
    z0 = np.floor(z)
    fx = (x - x0).astype(np.float32)
    fz = (z - z0).astype(np.float32)
    xi = x0.astype(np.int64) % n
    zi = z0.astype(np.int64) % n
    xj = (xi + 1) % n
    zj = (zi + 1) % n
    top = grid[zi, xi] * (1 - fx) + grid[zi, xj] * fx
    bot = grid[zj, xi] * (1 - fx) + grid[zj, xj] * fx
    return top * (1 - fz) + bot * fz


def shadow_map(h: np.ndarray, sun_az: float, sun_el: float, steps: int = 40) -> np.ndarray:
    """1 where a cell sees the sun, 0 in cast shadow, soft in between (marched over the grid)."""
    lit = np.ones_like(h)
    dx, dz = math.sin(sun_az), math.cos(sun_az)
    rise = math.tan(sun_el)
    dist = 1.0
    for _ in range(steps):
        ox, oz = int(round(dx * dist)), int(round(dz * dist))
        ahead = np.roll(h, (-oz, -ox), axis=(0, 1))
        above = ahead - (h + rise * dist)  # > 0: the terrain ahead is above the ray to the sun
        lit = np.minimum(lit, np.clip(1.0 - above / (0.05 * dist + 0.5), 0.0, 1.0))
        dist = dist * 1.12 + 0.5
    return lit


# ---------------------------------------------------------------- camera and marching

class Camera:
    def __init__(self, x: float, z: float, y: float, yaw: float, focal: float, horizon: float,
                 width: int, height: int) -> None:
        self.x, self.z, self.y, self.yaw = x, z, y, yaw
        self.focal, self.horizon, self.width, self.height = focal, horizon, width, height
        self.fwd = np.array([math.sin(yaw), math.cos(yaw)], np.float32)
        self.right = np.array([math.cos(yaw), -math.sin(yaw)], np.float32)
        self.xc = ((np.arange(width) + 0.5 - width / 2) / focal).astype(np.float32)  # column slopes
        self.slope = ((horizon - (np.arange(height) + 0.5)) / focal).astype(np.float32)  # row slopes (up > 0)

    def ground(self, depth: np.ndarray, cols: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """World (x, z) of perpendicular depth `depth` along columns `cols`."""
        xc = self.xc[cols]
        wx = self.x + depth * (self.fwd[0] + xc * self.right[0])
        wz = self.z + depth * (self.fwd[1] + xc * self.right[1])
        return wx, wz


def depths(near: float, far: float, ratio: float) -> np.ndarray:
    k = int(math.ceil(math.log(far / near) / math.log(1 + ratio)))
    return (near * (1 + ratio) ** np.arange(k + 1)).astype(np.float32)


def march(cam: Camera, height_of, zs: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: perpendicular depth of the first surface hit (inf: sky) and the hit's depth index.

    height_of(wx, wz) -> surface height; start (per column): depths before it are ignored."""
    h, w = cam.height, cam.width
    wx, wz = cam.ground(zs[:, None], np.arange(w)[None, :])  # (K, W)
    surf = height_of(wx, wz)
    if start is not None:
        surf = np.where(zs[:, None] < start[None, :], -1e9, surf)
    ys = cam.horizon - cam.focal * (surf - cam.y) / zs[:, None]  # screen row of each sample (K, W)
    cm = np.minimum.accumulate(ys, axis=0)
    rows = np.arange(h, dtype=np.float32) + 0.5
    idx = np.empty((h, w), np.int64)
    for c in range(w):
        idx[:, c] = np.searchsorted(-cm[:, c], -rows, side="left")
    k = len(zs)
    hit = idx < k
    i1 = np.clip(idx, 1, k - 1)
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
    y_prev, y_this = ys[i1 - 1, cols], ys[i1, cols]
    t = np.clip((y_prev - rows[:, None]) / np.maximum(y_prev - y_this, 1e-6), 0, 1)
    depth = zs[i1 - 1] + t * (zs[i1] - zs[i1 - 1])
    # rows below the nearest sample: intersect the ray with that sample's height
    slope = cam.slope[:, None]
    first = (cam.y - surf[0][None, :]) / np.maximum(-slope, 1e-4)
    depth = np.where(idx == 0, np.maximum(first, 0.05), depth)
    depth = np.where(hit, depth, np.inf).astype(np.float32)
    return depth, idx


# ---------------------------------------------------------------- sky

def _palette(rng: np.random.Generator, tod: str) -> dict:
    if tod == "day":
        el = rng.uniform(0.35, 1.0)
        p = dict(sun=(1.0, 0.97, 0.9), zenith=(0.12, 0.3, 0.68), horizon=(0.62, 0.74, 0.88), clouds=rng.uniform(0, 0.6))
    elif tod == "golden":
        el = rng.uniform(0.12, 0.3)
        p = dict(sun=(1.0, 0.8, 0.55), zenith=(0.22, 0.36, 0.66), horizon=(0.92, 0.8, 0.66), clouds=rng.uniform(0, 0.6))
    elif tod == "sunset":
        el = rng.uniform(0.03, 0.1)
        p = dict(sun=(1.0, 0.55, 0.3), zenith=(0.2, 0.25, 0.5), horizon=(1.0, 0.62, 0.38), clouds=rng.uniform(0.1, 0.7))
    else:
        el = rng.uniform(0.4, 1.0)
        g = rng.uniform(0.62, 0.78)
        p = dict(sun=(0.55, 0.56, 0.58), zenith=(g - 0.06, g - 0.03, g + 0.01), horizon=(g + 0.1, g + 0.1, g + 0.12),
                 clouds=rng.uniform(0.75, 1.0))
    p = {k: (np.clip(np.array(v, np.float32) + rng.normal(0, 0.03, 3).astype(np.float32), 0, 1)
             if isinstance(v, tuple) else v) for k, v in p.items()}
    p["elevation"], p["tod"] = el, tod
    return p


def sky_colour(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, pal: dict, sun: np.ndarray, clouds: np.ndarray,
               cam: Camera, cloud_height: float) -> np.ndarray:
    """Sky radiance along directions (any shape; normalised here: rippled reflections are not), linear RGB."""
    norm = np.maximum(np.sqrt(dx * dx + dy * dy + dz * dz), 1e-6)
    dx, dy, dz = dx / norm, dy / norm, dz / norm
    up = np.clip(dy, 0.0, 1.0)
    t = up ** 0.45
    col = pal["horizon"] * (1 - t[..., None]) + pal["zenith"] * t[..., None]
    cos_sun = dx * sun[0] + dy * sun[1] + dz * sun[2]
    glow = np.exp((cos_sun - 1.0) * 9.0) * (0.35 if pal["tod"] != "overcast" else 0.1)
    halo = np.exp((cos_sun - 1.0) * 1500.0) * (0.8 if pal["tod"] != "overcast" else 0.2)
    disc = np.clip((cos_sun - 0.99993) * 2.5e4, 0, 1) * (6.0 if pal["tod"] != "overcast" else 0.0)
    col = col + pal["sun"] * (glow + halo + disc)[..., None]
    if pal["clouds"] > 0.02:
        dist = cloud_height / np.maximum(dy, 0.015)
        cx = cam.x * 0.1 + dx * dist * 0.015
        cz = cam.z * 0.1 + dz * dist * 0.015
        n = sample(clouds, cx, cz)
        thr = 1.1 - 2.2 * pal["clouds"]
        dens = np.clip((n - thr) * 0.9, 0, 1)
        toward = sample(clouds, cx + sun[0] * 3.0, cz + sun[2] * 3.0)
        lit = np.clip(0.75 - (toward - n) * 0.8, 0.25, 1.2)
        fade = np.clip(dy * 12.0, 0, 1)  # far clouds melt into the horizon haze
        cloud = (pal["sun"] * lit[..., None] * 0.95 + pal["zenith"] * 0.25 + pal["horizon"] * 0.15)
        if pal["tod"] == "overcast":
            cloud = pal["horizon"] * (0.75 + 0.35 * lit[..., None])
        a = (dens * fade)[..., None]
        col = col * (1 - a) + cloud * a
    return col


# ---------------------------------------------------------------- materials

def _albedo(rng: np.random.Generator) -> dict:
    j = lambda c, s=0.04: np.clip(np.array(c, np.float32) + rng.normal(0, s, 3).astype(np.float32), 0, 1)  # noqa: E731
    return dict(rock=j((0.2, 0.18, 0.16), 0.03), rock2=j((0.27, 0.24, 0.21), 0.03), grass=j((0.09, 0.15, 0.035), 0.02),
                dry=j((0.25, 0.22, 0.1), 0.03), forest=j((0.03, 0.065, 0.025), 0.01), snow=j((0.8, 0.82, 0.86), 0.02),
                sand=j((0.42, 0.37, 0.27), 0.03), water=j((0.02, 0.06, 0.07), 0.01))


def render_terrain(seed: int, size: int = 256, width: int | None = None, height: int | None = None,
                   supersample: int = 1) -> np.ndarray:
    """One landscape photograph-like render (H, W, 3) uint8 from `seed`; width/height default to size."""
    rng = np.random.default_rng(seed)
    width, height = width or size, height or size
    ss = max(1, int(supersample))
    W, H = width * ss, height * ss
    hf = heightfield(rng)
    n = hf.shape[0]
    tod = TIMES[rng.integers(len(TIMES))]
    pal = _palette(rng, tod)
    albedo = _albedo(rng)
    water_on = rng.random() < 0.65
    water = float(np.quantile(hf, rng.uniform(0.1, 0.45))) if water_on else -1e6

    # camera: random place and heading, a few to tens of cells above the ground (or water)
    cx, cz = rng.uniform(0, n, 2)
    ground = max(float(sample(hf, np.array(cx), np.array(cz))), water)
    cy = ground + rng.uniform(2.0, 30.0) * (1 + rng.random())
    yaw = rng.uniform(0, 2 * math.pi)
    fov = math.radians(rng.uniform(45, 75))
    focal = (W / 2) / math.tan(fov / 2)
    horizon = H * rng.uniform(0.3, 0.6)
    cam = Camera(cx, cz, cy, yaw, focal, horizon, W, H)

    sun_az = yaw + rng.uniform(-1.0, 1.0) * (math.pi if tod in ("day", "overcast") else 0.9)
    el = pal["elevation"]
    sun = np.array([math.sin(sun_az) * math.cos(el), math.sin(el), math.cos(sun_az) * math.cos(el)], np.float32)
    shadows = shadow_map(hf, sun_az, el) if tod != "overcast" else np.ones_like(hf)
    gx, gz = _grad(hf)
    clouds = fractal(256, rng, 2.9)
    cloud_h = rng.uniform(150, 400)

    far = n * 1.4
    zs = depths(0.3, far, 1.2 / max(W, H) * 2)
    surf = lambda x, z: np.maximum(sample(hf, x, z), water)  # noqa: E731
    depth, _ = march(cam, surf, zs)

    # per-pixel view rays
    xc = cam.xc[None, :]
    sl = cam.slope[:, None]
    norm = np.sqrt(1 + xc * xc + sl * sl)
    dwx = (cam.fwd[0] + xc * cam.right[0]) / norm
    dwz = (cam.fwd[1] + xc * cam.right[1]) / norm
    dwy = np.broadcast_to(sl / norm, (H, W))
    dwx, dwz = np.broadcast_to(dwx, (H, W)), np.broadcast_to(dwz, (H, W))

    sky = sky_colour(dwx, dwy, dwz, pal, sun, clouds, cam, cloud_h)
    haze_density = rng.uniform(0.5, 2.0) / far
    haze = _haze(pal, sun, dwx, dwy, dwz)

    hit = np.isfinite(depth)
    d = np.where(hit, depth, 0.0)
    wx, wz = cam.ground(d, slice(None))
    h_at = sample(hf, wx, wz)
    is_water = hit & (h_at < water)
    pixel_size = d / focal  # world size of a pixel at that depth (fades sub-pixel texture)
    col = _shade_land(rng, hf, gx, gz, shadows, wx, wz, h_at, pixel_size, pal, sun, albedo, water, hf.max())

    if is_water.any():
        col = _water(rng, col, is_water, cam, hf, gx, gz, shadows, d, wx, wz, dwx, dwy, dwz, zs, surf, water, pal,
                     sun, albedo, clouds, cloud_h, far, haze_density, focal)
    fog = 1.0 - np.exp(-d * haze_density)
    col = col * (1 - fog[..., None]) + haze * fog[..., None]
    col = np.where(hit[..., None], col, sky)
    img = _tonemap(col, rng)
    if ss > 1:
        img = img.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _haze(pal: dict, sun: np.ndarray, dx, dy, dz) -> np.ndarray:
    cos_sun = dx * sun[0] + dy * sun[1] + dz * sun[2]
    scatter = np.exp((cos_sun - 1.0) * 4.0)[..., None] * (0.35 if pal["tod"] != "overcast" else 0.05)
    return pal["horizon"] * 0.85 + pal["sun"] * scatter


def _shade_land(rng, hf, gx, gz, shadows, wx, wz, h_at, pixel_size, pal, sun, albedo, water, top) -> np.ndarray:
    """Lit colour of the terrain at world points: material by slope and altitude, sun, shadow, sky light."""
    sx = sample(gx, wx, wz)
    sz = sample(gz, wx, wz)
    # bump: the fine texture tilts the normal too (rock facets, grass tufts), faded with distance like it
    bx = _detail_noise(rng, wx + 31.0, wz, pixel_size, scales=(0.4, 1.5))
    bz = _detail_noise(rng, wx, wz + 57.0, pixel_size, scales=(0.4, 1.5))
    nrm = np.stack([-sx + bx * 0.6, np.ones_like(sx), -sz + bz * 0.6], -1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    slope = np.sqrt(sx * sx + sz * sz)
    # texture noise sampled in world space, faded where a pixel covers more than its cells
    fine = _detail_noise(rng, wx, wz, pixel_size, scales=(0.6, 2.0, 7.0))
    patches = sample(_patch_field(rng, hf.shape[0]), wx, wz)
    rel = (h_at - water) / max(top - water, 1e-3) if water > -1e5 else h_at / max(top, 1e-3)
    # rock with strata: bands of lightness along the altitude, wavy
    strata = np.sin(h_at * rng.uniform(2.0, 5.0) + patches * 4.0) * 0.5 + 0.5
    strata = strata * 0.5 + np.clip(fine, 0, 1) * 0.5  # broken up: strata show in places, not as stripes
    rock = albedo["rock"] * (1 - strata[..., None]) + albedo["rock2"] * strata[..., None]
    rock = rock * (0.8 + 0.35 * fine[..., None])
    green = albedo["grass"] * (1 - np.clip(patches, 0, 1)[..., None] * 0.6) + albedo["dry"] * (
        np.clip(patches, 0, 1)[..., None] * 0.6)
    green = green * (0.85 + 0.3 * fine[..., None])
    forest_amt = np.clip((patches - 0.1) * 3.0 - rel * 2.5, 0, 1) * np.clip(1.4 - slope * 1.2, 0, 1)
    trees = albedo["forest"] * (0.6 + 0.9 * np.clip(fine, 0, 1.5)[..., None])  # canopy: bright crowns, dark gaps
    veg = green * (1 - forest_amt[..., None]) + trees * forest_amt[..., None]
    veg_amt = np.clip((0.9 - slope) * 2.5, 0, 1) * np.clip((0.75 - rel) * 4.0, 0, 1)
    col = rock * (1 - veg_amt[..., None]) + veg * veg_amt[..., None]
    snowline = rng.uniform(0.6, 1.05) + patches * 0.1
    snow_amt = np.clip((rel - snowline) * 8.0, 0, 1) * np.clip((1.3 - slope) * 2.0, 0, 1)
    col = col * (1 - snow_amt[..., None]) + albedo["snow"] * (0.95 + 0.05 * fine[..., None]) * snow_amt[..., None]
    if water > -1e5:
        sand_amt = np.clip((water + 1.2 - h_at) * 1.0, 0, 1) * np.clip(1.0 - slope * 2.0, 0, 1)
        col = col * (1 - sand_amt[..., None]) + albedo["sand"] * sand_amt[..., None]
    lam = np.clip(nrm @ sun, 0, 1) * sample(shadows, wx, wz)
    sky_light = (0.55 + 0.45 * nrm[..., 1])[..., None] * (pal["zenith"] * 0.45 + pal["horizon"] * 0.25)
    sun_strength = 2.6 if pal["tod"] != "overcast" else 0.5
    return col * (pal["sun"] * (lam * sun_strength)[..., None] + sky_light * (1.3 if pal["tod"] == "overcast" else 1.0))


_NOISE_CACHE: dict = {}


def _tile(n: int, beta: float, key: int) -> np.ndarray:
    if (n, beta, key) not in _NOISE_CACHE:
        _NOISE_CACHE[(n, beta, key)] = fractal(n, np.random.default_rng(12345 + key), beta)
    return _NOISE_CACHE[(n, beta, key)]


def _detail_noise(rng, wx, wz, pixel_size, scales=(1.0,)) -> np.ndarray:
    """Isotropic texture at several world scales (cells per noise cell), each faded out when a pixel covers
    more than half a noise cell (no aliasing sparkle in the distance)."""
    out = np.zeros_like(wx, dtype=np.float32)
    off = rng.uniform(0, 256, 2)
    for i, s in enumerate(scales):
        tile = _tile(256, 1.2, i)
        amp = np.clip(1.5 - pixel_size / s * 2.0, 0, 1)
        out += sample(tile, wx / s + off[0], wz / s + off[1]) * amp * 0.5
    return out


def _patch_field(rng, n: int) -> np.ndarray:
    return np.clip(fractal(n // 2, rng, 2.2) * 0.4 + 0.2, -1, 1.5).repeat(2, 0).repeat(2, 1)


def _water(rng, col, is_water, cam, hf, gx, gz, shadows, d, wx, wz, dwx, dwy, dwz, zs, surf, water, pal, sun,
           albedo, clouds, cloud_h, far, haze_density, focal) -> np.ndarray:
    """Water pixels: the reflected ray marched over the terrain from the water (tilted by ripples that
    shrink with distance), Fresnel mix with the water's own colour, sun glitter."""
    wind = rng.uniform(0.2, 1.0)
    px = d / focal
    rip_x = _detail_noise(rng, wx * 1.0, wz * 3.0, px, scales=(0.3, 1.0)) * wind
    rip_z = _detail_noise(rng, wx * 3.0 + 17, wz * 1.0 + 5, px, scales=(0.3, 1.0)) * wind
    m = is_water
    z0, ox, oz = d[m], wx[m], wz[m]
    # reflected direction: the view ray with its vertical component flipped, tilted by the ripple normal
    rx, rz = dwx[m] + rip_x[m] * 0.03, dwz[m] + rip_z[m] * 0.03
    ry = np.maximum(-dwy[m] + rip_z[m] * 0.01, 1e-4)
    hor = np.sqrt(rx * rx + rz * rz)
    rise = ry / hor  # height gained per unit of horizontal distance
    ux, uz = rx / hor, rz / hor
    dist = np.full_like(z0, 0.5)
    hit_t = np.full_like(z0, np.inf)
    prev_gap = np.zeros_like(z0)
    prev_t = np.zeros_like(z0)
    while True:
        live = ~np.isfinite(hit_t) & (dist < far)
        if not live.any():
            break
        t = np.where(live, dist, 0.0)
        gap = sample(hf, ox + ux * t, oz + uz * t) - (water + rise * t)  # > 0: the ray is inside the terrain
        new = live & (gap > 0)
        frac = np.clip(-prev_gap / np.maximum(gap - prev_gap, 1e-6), 0, 1)
        hit_t = np.where(new, prev_t + frac * (t - prev_t), hit_t)
        prev_gap, prev_t = np.where(live, gap, prev_gap), np.where(live, t, prev_t)
        dist = dist * 1.08 + 0.4
    rhit = np.isfinite(hit_t)
    tt = np.where(rhit, hit_t, 0.0)
    hx_, hz_ = ox + ux * tt, oz + uz * tt
    rh = sample(hf, hx_, hz_)
    refl_land = _shade_land(rng, hf, gx, gz, shadows, hx_, hz_, rh, (z0 + tt) / focal * 2, pal, sun, albedo, water,
                            hf.max())
    refl_sky = sky_colour(rx, ry, rz, pal, sun, clouds, cam, cloud_h)
    fog = 1.0 - np.exp(-(tt + z0) * haze_density)
    haze = _haze(pal, sun, rx, ry, rz)
    refl = np.where(rhit[:, None], refl_land * (1 - fog[:, None]) + haze * fog[:, None], refl_sky)
    cos_i = np.clip(-dwy[m] + 0.04 * np.abs(rip_z[m]), 0.0, 1.0)
    fresnel = 0.02 + 0.98 * (1 - cos_i) ** 5
    body = albedo["water"] * (pal["zenith"] + pal["horizon"]) * 0.8
    out = body * (1 - fresnel[:, None]) + refl * fresnel[:, None]
    hx, hy, hz = rx - sun[0], ry - sun[1], rz - sun[2]
    spec = np.exp(-(hx * hx + hz * hz + hy * hy) * 80.0 / (0.3 + wind)) * (pal["tod"] != "overcast")
    out = out + pal["sun"] * (spec * 3.0 * np.clip(rip_x[m] + 0.5, 0, 1))[:, None]
    col = col.copy()
    col[m] = out
    return col


def _tonemap(col: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, a filmic shoulder and the sRGB-like gamma; a photograph's slight colour grade."""
    exposure = rng.uniform(0.75, 1.1)
    x = np.clip(np.nan_to_num(col * exposure, nan=0.0, posinf=1e3), 0, 1e3)
    x = x / (1 + x * 0.25)  # soft shoulder for the sun and snow
    x = np.clip(x * 1.2, 0, 1)
    return x ** (1 / 2.2)


def main(argv: list[str] | None = None) -> None:
    """`python -m sdedit.synth.terrain --grid out.png` (a grid of scenes and the render speed) or
    `--out runs/x/data/scenes_terrain.npy --start 20000 --count 3000` (a training shard, uint8 (N, S, S, 3),
    which sdedit.train's load_scenes mixes with the other scenes_*.npy shards of the folder)."""
    import argparse
    import time
    from pathlib import Path

    from PIL import Image

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--grid", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write a training shard (.npy) here")
    ap.add_argument("--start", type=int, default=None, help="first seed (grid: held-out 1,600,000 by default)")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=3)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args(argv)
    if (a.grid is None) == (a.out is None):
        ap.error("give one of --grid PNG or --out NPY")
    if a.out is not None:
        start = 20_000 if a.start is None else a.start
        if start + a.count > 1_000_000:
            ap.error("training seeds must stay below 1,000,000 (held-out scenes use the seeds above)")
        a.out.parent.mkdir(parents=True, exist_ok=True)
        arr = np.lib.format.open_memmap(str(a.out) + ".part", mode="w+", dtype=np.uint8,
                                        shape=(a.count, a.size, a.size, 3))
        t = time.perf_counter()
        for i in range(a.count):
            arr[i] = render_terrain(start + i, a.size)
            if (i + 1) % 100 == 0:
                print(f"{i + 1}/{a.count} scenes, {time.perf_counter() - t:.0f} s", flush=True)
        arr.flush()
        del arr
        Path(str(a.out) + ".part").rename(a.out)
        print(f"wrote {a.out}")
        return
    ims, t = [], time.perf_counter()
    first = 1_600_000 if a.start is None else a.start
    for i in range(a.rows * a.cols):
        ims.append(render_terrain(first + i, a.size))
    secs = (time.perf_counter() - t) / len(ims)
    rows = [np.concatenate(ims[r * a.cols:(r + 1) * a.cols], 1) for r in range(a.rows)]
    Image.fromarray(np.concatenate(rows, 0)).save(a.grid, optimize=True)
    print(f"{len(ims)} scenes of {a.size}², {secs:.2f} s per scene ({1 / secs:.1f} scenes/s) on one thread; wrote {a.grid}")


if __name__ == "__main__":
    main()
