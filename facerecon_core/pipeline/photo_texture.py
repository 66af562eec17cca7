"""Stage 5c: the photo-detail texture — the photo's own pixels, de-lit, wherever it shows the face; the
texture stream's map wherever it does not (numpy only: it runs in the Blender add-on).

Per texel of the UV face region: its point on the posed, expressive mesh is projected into the photo
through the reconstruction's camera and the photo is sampled there at full resolution (from a mip level
chosen by the texel's footprint, so a photo denser than the texture is area-averaged). The sample is
divided by the fitted SH shading at the texel, which makes it albedo in the texture stream's colour space.
Each texel gets a confidence in [0, 1], the product of:

- visibility: a depth test against the face's vertices splatted into a depth buffer in the photo;
- facing: the cosine between the surface and the view direction, faded out toward grazing angles;
- the silhouette: texels near the face's rendered outline fade out (background lies beyond it);
- the mouth: samples inside the photo's mouth opening (the detected inner-lip outline) are refused, so
  teeth and the mouth's inside never land on the lips;
- the skin colour: in the skin region, a de-lit colour far from the face's robust skin colour (hair,
  glasses, a hand, a cast shadow) fades out.

A hidden texel whose mirror texel (the layout is symmetric about u = 0.5) is seen takes the mirror's
colour; a small hole (an occluder) takes the seen photo around it; the texture stream's map, its colour
matched per channel to the photo's de-lit skin, fills the rest. The layers are joined by a confidence-weighted
Laplacian-pyramid blend, so there are no seams. A greyscale photo gives a greyscale texture (the map is
blended as its luminance), never colour blotches. The work runs at the size at which the seen texels are
about as dense as the photo's pixels (from 256² up to the asked size) and is then resampled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facerecon_core import imageops
from facerecon_core.export._common import vertex_normals
from facerecon_core.facemodel import FaceModel
from facerecon_core.facemodel.uvmap import fill_polygon, rasterize_uv, uv_to_pixel
from facerecon_core.lighting import sh_basis

TEXTURE_MODES = ("photo", "network")
"""``photo``: the photo's detail blended with the texture stream's map (default); ``network``: the map alone."""

GEOMETRY_SIZE = 512  # UV resolution of the per-texel geometry (positions, depth, confidence)
MIN_WORK_SIZE = 256  # the smallest side the texture is worked at before it is resampled to the asked size


@dataclass(frozen=True)
class PhotoTextureConfig:
    depth_tolerance: float = 8.0  # mm behind the front-most surface (grown by a cell) that still counts as seen
    depth_cells: int = 160  # the depth buffer's cells across the face's width
    occluder_growth: int = 2  # depth-buffer cells by which every surface grows over what lies behind it
    facing_zero: float = 0.2  # cosine (surface normal, view) at and below which a texel is not trusted
    facing_full: float = 0.55  # cosine at and above which it is fully trusted
    silhouette_cells: int = 3  # depth-buffer cells inside the outline over which confidence fades in
    occlusion_texels: int = 4  # texels (of the 512² geometry) over which confidence fades in from a hidden area
    skin_sigmas: float = 3.0  # robust deviations from the skin colour at which confidence has halved
    skin_spread: float = 0.04  # added to the skin's robust deviation: freckles, pores and stubble stay photo
    mirror_trust: float = 0.8  # a hidden texel's trust in its mirror texel's photo colour, relative to the mirror's
    fill_texels: int = 16  # neighbourhood (texels of the 512² geometry) whose seen photo fills a small hole
    fill_trust: float = 0.9  # the most a filled texel trusts that fill
    min_shading: float = 0.08  # irradiance floor when de-lighting
    grey_chroma: float = 3.0 / 255  # mean channel spread below which a photo counts as greyscale
    pyramid_min: int = 8  # the blend pyramid's coarsest side


@dataclass
class PhotoTexture:
    albedo: np.ndarray  # (T, T, 3) uint8, the blended texture
    confidence: np.ndarray  # (T, T) float32 in [0, 1]: the photo's share at each texel (its own pixel or, where
    # it is hidden, its mirror texel's)
    photo_albedo: np.ndarray  # (S, S, 3) float32 in [0, 1]: the de-lit photo, 0 where unseen, at the working size
    # S ≤ T (where the texels are as dense as the photo's pixels)
    greyscale: bool


# --------------------------------------------------------------------------------- UV geometry
@dataclass(frozen=True)
class UVLayout:
    """What the texture needs of the face model's UV layout at one size (cached per model and size)."""

    inside: np.ndarray  # (N,) flat indices of the texels the mesh covers
    corners: np.ndarray  # (N, 3) vertex ids of the triangle covering each of them
    weights: np.ndarray  # (N, 3) float32 barycentric weights
    face: np.ndarray  # (R, R) bool: the texels the mesh covers
    skin: np.ndarray  # (R, R) bool: those less eyes, brows, nostrils and lips
    cheeks: np.ndarray  # (R, R) bool: the skin between the eyes' and the mouth's height, where hair seldom falls

    def interpolate(self, per_vertex: np.ndarray, outside: np.ndarray | float = 0.0) -> np.ndarray:
        """Per-vertex values (V, C) → (R, R, C) float32, linear inside each UV triangle, ``outside`` (a value per
        channel, or one for all) outside the mesh."""
        values = np.asarray(per_vertex, np.float32)
        size = self.face.shape[0]
        inside = values.take(self.corners[:, 0], axis=0)
        inside *= self.weights[:, :1]
        for k in (1, 2):
            inside += self.weights[:, k:k + 1] * values.take(self.corners[:, k], axis=0)
        out = np.empty((size * size, values.shape[1]), np.float32)
        out[...] = outside
        out[self.inside] = inside
        return out.reshape(size, size, -1)


@functools.lru_cache(maxsize=4)
def uv_layout(model: FaceModel, size: int) -> UVLayout:
    tri = np.asarray(model.triangles)
    corner = model.mean_shape[tri]
    facing = np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0])
    facing = facing[:, 2] / np.maximum(np.linalg.norm(facing, axis=1), 1e-12)
    # should the layout overlap itself anywhere, the surface facing forward takes the texel
    triangle, weights = rasterize_uv(model.uv, tri, (size, size), priority=facing)
    face = triangle >= 0
    inside = np.flatnonzero(face)
    corners = tri[triangle.reshape(-1)[inside]]
    weights = np.ascontiguousarray(weights.reshape(-1, 3)[inside], np.float32)
    lm = uv_to_pixel(model.uv[model.landmark_indices], (size, size))
    margin = 0.02 * size
    features = np.zeros((size, size), bool)
    for ids in (range(36, 42), range(42, 48), range(48, 60), [27, 31, 32, 33, 34, 35]):
        features |= fill_polygon(_grown(lm[list(ids)], margin), (size, size))
    for brow in (range(17, 22), range(22, 27)):  # a band around the brow, reaching up a brow's height
        points = lm[list(brow)]
        band = np.concatenate([points + (0, margin), (points - (0, 2.5 * margin))[::-1]])
        features |= fill_polygon(band, (size, size))
    skin = face & ~features
    rows = np.arange(size)[:, None]
    cheeks = skin & (rows > lm[36:48, 1].max() + margin) & (rows < lm[48:55, 1].min())
    return UVLayout(inside, corners, weights, face, skin, cheeks)


@functools.lru_cache(maxsize=8)
def texture_masks(model: FaceModel, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layout's face, skin and cheek regions (bool) at the texture's size."""
    layout = uv_layout(model, min(size, GEOMETRY_SIZE))
    masks = (layout.face, layout.skin, layout.cheeks)
    if layout.face.shape[0] == size:
        return masks
    return tuple(_upsample(m.astype(np.float32)[..., None], size)[..., 0] > 0.5 for m in masks)


def _upsample(image: np.ndarray, size: int) -> np.ndarray:
    """(R, R, C) float32 → (size, size, C), linear: exact doublings while they fit, then a general resize."""
    while 2 * image.shape[0] <= size:
        image = imageops.double(image, (2 * image.shape[0], 2 * image.shape[1]))
    if image.shape[0] != size:
        image = imageops.resize(image, size, size, "linear")
    return image


def _grown(points: np.ndarray, margin: float) -> np.ndarray:
    """A polygon moved outward from its centre by ``margin`` (texels) at every corner."""
    centre = points.mean(0)
    radius = np.maximum(np.linalg.norm(points - centre, axis=1, keepdims=True), 1e-6)
    return centre + (points - centre) * (1.0 + margin / radius)


# ------------------------------------------------------------------------------------ texture
def photo_texture(photo: np.ndarray, verts_cam: np.ndarray, to_photo, sh: np.ndarray, albedo_map: np.ndarray,
                  model: FaceModel, texture_size: int, mouth: np.ndarray | None = None,
                  config: PhotoTextureConfig = PhotoTextureConfig()) -> PhotoTexture:
    """The photo-detail texture, ``texture_size`` square.

    ``photo``: (H, W, 3) uint8, the whole photo; ``verts_cam``: (V, 3) the posed, expressive face in camera
    space (mm, OpenGL axes, camera at the origin); ``to_photo``: camera-space points (V, 3) → photo pixels
    (V, 2); ``sh``: (3, 9) the light fitted to the photo; ``albedo_map``: the texture stream's map (A, A, 3)
    in [0, 1] (made into a texture by :func:`facerecon_core.pipeline.texture.albedo_texture`); ``mouth``: (8, 2)
    photo pixels of the detected inner-lip outline (landmarks 60–67), or None. The work is done at the size at
    which the texels are as dense as the photo's pixels (at most ``texture_size``), then resampled.
    """
    from facerecon_core.pipeline.texture import albedo_texture_float

    target = int(texture_size)
    layout = uv_layout(model, min(target, GEOMETRY_SIZE))
    verts = np.asarray(verts_cam, np.float64)
    normals = vertex_normals(verts, model.triangles).astype(np.float64)
    pixels = np.asarray(to_photo(verts), np.float64)
    view = -verts / np.maximum(np.linalg.norm(verts, axis=1, keepdims=True), 1e-9)
    shading = np.maximum(sh_basis(normals) @ np.asarray(sh, np.float64).T, config.min_shading)
    per_vertex = np.concatenate([pixels, -verts[:, 2:], (normals * view).sum(1, keepdims=True), shading], axis=1)
    outside = np.zeros(per_vertex.shape[1], np.float32)
    outside[4:7] = config.min_shading  # no division by zero outside the mesh either
    texel = layout.interpolate(per_vertex, outside)  # photo x, y, depth, facing, shading RGB
    confidence = _confidence(texel, pixels, -verts[:, 2], layout, photo.shape[:2], mouth, config)
    size = _detail_size(texel[..., :2], confidence, target)
    face, skin, cheeks = texture_masks(model, size)
    # the network's layer is smooth (the map is 128²): it is made at 256² at most and resampled when finished
    network = albedo_texture_float(albedo_map, model, min(size, MIN_WORK_SIZE))
    if texel.shape[0] != size:  # resampled to the work size (the texels' values vary linearly within triangles)
        texel = np.concatenate([texel, confidence[..., None]], axis=-1)
        while texel.shape[0] >= 2 * size:
            texel = imageops.halve(texel)
        texel = _upsample(texel, size)
        texel, confidence = texel[..., :7], texel[..., 7]
    confidence = confidence * face
    sampled = np.flatnonzero((confidence > 0) | (confidence[:, ::-1] > 0))  # the seen texels and their mirrors
    flat = texel.reshape(-1, 7)[sampled]
    colour = _sample_photo(photo, texel[..., :2], sampled, flat[:, :2])
    albedo = np.zeros((size * size, 3), np.float32)
    albedo[sampled] = np.clip(colour / flat[:, 4:7], 0.0, 1.0)
    albedo = albedo.reshape(size, size, 3)

    seen = confidence.reshape(-1)[sampled] > 0.5
    greyscale = bool(seen.any()) and float(np.ptp(colour[seen][::16], axis=1).mean()) < config.grey_chroma
    if greyscale:
        albedo = np.repeat(albedo.mean(-1, keepdims=True), 3, axis=-1)
        network = np.repeat(network.mean(-1, keepdims=True), 3, axis=-1)
    confidence *= _skin_agreement(albedo, confidence, skin, cheeks, config)
    network *= colour_gain(network, albedo, confidence, skin)
    # over all bands: this texel's own photo, else its mirror's, else the photo's surroundings (a small occluder
    # such as a microphone), else the network's map
    mirror = confidence[:, ::-1] * config.mirror_trust * (1.0 - confidence)
    around, nearby = _surroundings(albedo, confidence, config, network.shape[0])
    nearby *= _shrink((1.0 - confidence) * (1.0 - mirror) * face, network.shape[0])
    network += nearby[..., None] * (around - network)  # both smooth: a plain blend, no bands to join
    np.clip(network, 0.0, 1.0, out=network)
    network = _upsample(network, size)
    blended = compose_layers(albedo, network, confidence, mirror, config)
    total = confidence + mirror
    albedo = np.where(confidence[..., None] > 0, albedo, 0.0)
    blended *= 255.0
    blended += 0.5  # rounded when cast to uint8, after the resampling (whose weights are convex: no clip after it)
    np.clip(blended, 0, 255, out=blended)
    if size != target:  # the photo holds no finer detail: the rest is resampling
        blended = _upsample(blended, target)
        if target % size == 0:  # the confidence guides painting: nearest is enough
            total = np.repeat(np.repeat(total, target // size, 0), target // size, 1)
        else:
            total = _upsample(total[..., None], target)[..., 0]
    return PhotoTexture(blended.astype(np.uint8), total.astype(np.float32, copy=False),
                        albedo.astype(np.float32, copy=False), greyscale)


def _detail_size(xy: np.ndarray, confidence: np.ndarray, target: int) -> int:
    """The texture side at which the seen texels are about as dense as the photo's pixels: the geometry's side
    halved (not below :data:`MIN_WORK_SIZE`) or doubled (not above ``target``) until about one photo pixel falls on
    a texel. Finer, the texture would only resample the photo."""
    seen = confidence[::4, ::4] > 0.5
    size = xy.shape[0]
    if not seen.any():
        return target
    pixels_per_texel = float(np.median(_footprint(xy[::4, ::4])[seen])) / 4  # from every fourth texel
    while size > MIN_WORK_SIZE and size // 2 >= MIN_WORK_SIZE and pixels_per_texel < 0.5:
        size, pixels_per_texel = size // 2, pixels_per_texel * 2
    while size < target and pixels_per_texel > 1.0:
        size, pixels_per_texel = 2 * size, pixels_per_texel / 2
    return min(size, target)


def _confidence(texel: np.ndarray, pixels: np.ndarray, depth: np.ndarray, layout: UVLayout,
                photo_shape: tuple[int, int], mouth: np.ndarray | None, config: PhotoTextureConfig) -> np.ndarray:
    """(R, R) float32: visibility × facing × inside the photo × away from the outline × outside the mouth."""
    cell = max(float(np.ptp(pixels[:, 0])) / config.depth_cells, 1e-3)  # photo pixels per depth-buffer cell
    origin = pixels.min(0) - 2 * cell
    shape = (np.ceil(np.ptp(pixels, axis=0) / cell).astype(int) + 5)[::-1]  # rows, columns
    zbuf = np.full(shape, np.inf)
    index = np.floor((pixels - origin) / cell).astype(np.int64)
    np.minimum.at(zbuf, (index[:, 1], index[:, 0]), depth)
    covered = np.isfinite(_grown_min(zbuf, 1))  # the face's outline, pin-holes between the splats closed
    zbuf = _grown_min(zbuf, config.occluder_growth)  # every surface grown over what lies behind it, so no sample
    # near an occluding edge (the nose's) leaks past it
    inner = _soft(covered, config.silhouette_cells)  # a fade toward the outline
    xy, z = texel[..., :2], texel[..., 2]
    at = np.floor((xy - origin.astype(np.float32)) / np.float32(cell)).astype(np.int32)
    row, col = np.clip(at[..., 1], 0, shape[0] - 1), np.clip(at[..., 0], 0, shape[1] - 1)
    visible = _soft(layout.face & (z <= zbuf[row, col] + config.depth_tolerance), config.occlusion_texels)
    facing = np.clip((texel[..., 3] - config.facing_zero) / (config.facing_full - config.facing_zero), 0.0, 1.0)
    height, width = photo_shape
    in_photo = (xy[..., 0] >= 0) & (xy[..., 0] <= width - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= height - 1)
    confidence = visible * facing * in_photo * inner[row, col] * layout.face
    if mouth is not None:  # the opening drawn into the depth buffer's cells, looked up like the depth
        opening = fill_polygon((np.asarray(mouth, np.float64) - origin) / cell - 0.5, tuple(shape))
        confidence *= ~opening[row, col]
    return confidence.astype(np.float32)


def _surroundings(albedo: np.ndarray, confidence: np.ndarray, config: PhotoTextureConfig, size: int):
    """The seen photo albedo spread smoothly into the unseen texels (push-pull, from a quarter of the working
    size), and how much of each texel's neighbourhood (``fill_texels`` across at the 512² geometry's scale) is
    seen: (size, size, 3), (size, size), ``size`` at most the working size."""
    from facerecon_core.pipeline.texture import push_pull_fill

    known = confidence > 0.7
    quarter_albedo = imageops.halve(imageops.halve(albedo))
    quarter_known = imageops.halve(imageops.halve(known.astype(np.float32)[..., None]))[..., 0] > 0.5
    around = push_pull_fill(quarter_albedo, quarter_known)
    around = _upsample(around, size) if around.shape[0] < size else _shrink(around, size)
    levels = max(1, int(round(np.log2(config.fill_texels * albedo.shape[0] / GEOMETRY_SIZE))))
    share = known.astype(np.float32)[..., None]
    shapes = []
    for _ in range(levels):
        shapes.append(share.shape)
        share = imageops.halve(share)
    for shape in reversed(shapes):
        if share.shape[0] >= size:
            break
        share = imageops.double(share, shape)
    share = _shrink(share, size)
    return around, np.clip(share[..., 0] / 0.35, 0.0, 1.0) * config.fill_trust  # full trust from a third seen


def _shrink(image: np.ndarray, size: int) -> np.ndarray:
    """(R, R[, C]) float32 halved until ``size`` square (R a power-of-two multiple of ``size``)."""
    image = np.asarray(image, np.float32)
    flat = image.ndim == 2
    image = image[..., None] if flat else image
    while image.shape[0] > size:
        image = imageops.halve(image)
    return image[..., 0] if flat else image


def compose_layers(albedo: np.ndarray, network: np.ndarray, confidence: np.ndarray, mirror: np.ndarray,
                   config: PhotoTextureConfig = PhotoTextureConfig()) -> np.ndarray:
    """The photo albedo (T, T, 3) over its mirror image over the map (T, T, 3), by their weights ``confidence`` and
    ``mirror`` (T, T), in a multi-band blend. Each layer shows its own content only where it is trusted (else the
    layer below), so a half-trusted edge (an occluder's, a grazing angle's) brings no sharp contrast into the fine
    bands; it passes to the layer below through a ramp of its weight, since a switch at one threshold would itself
    be a step that the fine bands keep (a thin line along every outline)."""
    over_network = albedo[:, ::-1] - network  # the mirror layer minus the map
    over_network *= _ramp(mirror, 0.1, 0.4)[..., None]
    over_mirror = albedo - network  # the photo layer minus the mirror layer (the map plus the line above)
    over_mirror -= over_network
    over_mirror *= _ramp(confidence, 0.3, 0.7)[..., None]
    return network + pyramid_blend([over_mirror, over_network], over_weights([confidence, mirror]), config)


def _ramp(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 at and below ``low``, 1 at and above ``high``, linear between (float32)."""
    return np.clip((values - np.float32(low)) / np.float32(high - low), 0.0, 1.0).astype(np.float32, copy=False)


def _grown_min(values: np.ndarray, cells: int) -> np.ndarray:
    """The minimum over each (2·cells + 1)² neighbourhood (outside the array: +inf)."""
    padded = np.pad(values, cells, constant_values=np.inf)
    h, w = values.shape
    span = range(2 * cells + 1)  # separably: along the rows, then along the columns
    rows = np.min([padded[:, dx:dx + w] for dx in span], axis=0)
    return np.min([rows[dy:dy + h] for dy in span], axis=0)


def _soft(mask: np.ndarray, steps: int) -> np.ndarray:
    """(R, R) float32 in [0, 1]: how many of ``steps`` erosions each texel of ``mask`` survives, over ``steps``."""
    out = np.zeros(mask.shape, np.float32)
    for _ in range(steps):
        mask = imageops.erode(mask)
        out += mask
    return out / steps


def _sample_photo(photo: np.ndarray, xy: np.ndarray, where: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) float32 in [0, 1]: the photo at the texels ``where`` (flat indices; ``points`` their photo pixels, of
    the positions ``xy`` (T, T, 2)), bilinear from the mip level of each texel's footprint (trilinear between
    levels)."""
    points = np.asarray(points, np.float32)  # exact to 1/4000 of a pixel in a 4,000-pixel photo
    low, high = np.array([points[:, 0].min(), points[:, 1].min()]), np.array([points[:, 0].max(), points[:, 1].max()])
    coarse = _footprint(xy[::4, ::4]) / 4  # the footprint varies slowly: every fourth texel, repeated
    footprint = np.repeat(np.repeat(coarse, 4, 0), 4, 1)[:xy.shape[0], :xy.shape[1]].reshape(-1)[where]
    height, width = photo.shape[:2]
    lo = np.clip(np.floor(low) - 4, 0, [width - 1, height - 1]).astype(int)
    hi = np.clip(np.ceil(high) + 5, 1, [width, height]).astype(int)
    level = np.log2(np.clip(footprint, 1.0, 64.0))
    top = int(np.ceil(level.max())) if len(level) else 0
    region = photo[lo[1]:hi[1], lo[0]:hi[0]].astype(np.float32) / 255.0
    step = 2**top  # pad to a multiple of it (edges repeated), so each level halves exactly
    region = np.pad(region, ((0, -region.shape[0] % step), (0, -region.shape[1] % step), (0, 0)), mode="edge")
    points = points - lo.astype(np.float32)
    pyramid = [region]
    for _ in range(top):
        pyramid.append(imageops.halve(pyramid[-1]))
    out = np.zeros((len(points), 3), np.float32)
    base = np.floor(level).astype(int)
    for k in np.unique(base):
        pick = np.flatnonzero(base == k)
        out[pick] = _bilinear(pyramid[k], points[pick], k)
        t = (level[pick] - k).astype(np.float32)
        finer = t > 1e-3  # between two levels: blend in the coarser one
        if k + 1 < len(pyramid) and finer.any():
            between = pick[finer]
            out[between] += t[finer, None] * (_bilinear(pyramid[k + 1], points[between], k + 1) - out[between])
    return out


def _bilinear(image: np.ndarray, points: np.ndarray, level: int) -> np.ndarray:
    """Bilinear samples of a mip level at level-0 pixel positions (edges clamped)."""
    scale = np.float32(0.5**level)
    h, w = image.shape[:2]
    x = np.clip((points[:, 0] + np.float32(0.5)) * scale - np.float32(0.5), 0, w - 1)
    y = np.clip((points[:, 1] + np.float32(0.5)) * scale - np.float32(0.5), 0, h - 1)
    x0, y0 = np.minimum(np.floor(x), max(w - 2, 0)), np.minimum(np.floor(y), max(h - 2, 0))
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    dx, dy = int(w > 1), w * int(h > 1)
    flat, at = image.reshape(-1, image.shape[2]), y0 * w + x0
    top = flat.take(at, axis=0)
    top += fx * (flat.take(at + dx, axis=0) - top)
    bottom = flat.take(at + dy, axis=0)
    bottom += fx * (flat.take(at + dy + dx, axis=0) - bottom)
    return top + fy * (bottom - top)


def _footprint(xy: np.ndarray) -> np.ndarray:
    """(T, T): photo pixels per texel, the larger of the two texel directions (one-sided differences, so the
    jump at the mesh's border does not count)."""
    def step(axis: int) -> np.ndarray:
        diff = np.linalg.norm(np.diff(xy, axis=axis), axis=-1)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        forward, backward = np.pad(diff, pad, mode="edge"), np.pad(diff, [p[::-1] for p in pad], mode="edge")
        return np.minimum(forward, backward)

    return np.maximum(step(0), step(1))


def _skin_agreement(albedo: np.ndarray, confidence: np.ndarray, skin: np.ndarray, cheeks: np.ndarray,
                    config: PhotoTextureConfig) -> np.ndarray:
    """(T, T) in (0, 1]: in the seen skin, how close each de-lit colour is to the face's robust skin colour
    (median and MAD of the seen cheeks, where hair seldom falls; of all seen skin when the cheeks are hidden);
    1 elsewhere, and everywhere when too little skin is seen."""
    reference = albedo[cheeks & (confidence > 0.6)]
    if len(reference) < 200:
        reference = albedo[skin & (confidence > 0.6)]
    if len(reference) < 200:
        return np.ones(confidence.shape, np.float32)
    reference = reference[:: max(1, len(reference) // 20_000)]
    median = np.median(reference, axis=0)
    spread = 1.4826 * np.median(np.abs(reference - median), axis=0) + config.skin_spread
    agreement = np.ones(confidence.size, np.float32)
    where = np.flatnonzero(skin & (confidence > 0))  # elsewhere the agreement multiplies nothing
    distance = albedo.reshape(-1, 3)[where]
    distance -= median
    np.abs(distance, out=distance)
    distance /= spread * config.skin_sigmas
    distance = distance.max(-1)
    distance *= distance
    distance *= distance
    distance += 1.0
    agreement[where] = 1.0 / distance  # 1 / (1 + d⁴)
    return agreement.reshape(confidence.shape)


def colour_gain(network: np.ndarray, albedo: np.ndarray, confidence: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(3,) per-channel gains, within [0.5, 2], that make ``network``'s skin match ``albedo``'s (the photo's de-lit
    skin, or another photo's texture) over the skin texels of ``confidence`` > 0.6 (medians; 1 where fewer than 200
    are). ``network`` may be smaller than ``albedo`` by a power of two; it is read at the same texels."""
    sel = np.flatnonzero(skin & (confidence > 0.6))
    if len(sel) < 200:
        return np.ones(3, np.float32)
    sel = sel[:: max(1, len(sel) // 20_000)]
    size, factor = albedo.shape[0], albedo.shape[0] // network.shape[0]
    rows, cols = np.divmod(sel, size)
    at = (rows // factor) * network.shape[1] + cols // factor
    gain = (np.median(albedo.reshape(-1, 3)[sel], axis=0)
            / np.maximum(np.median(network.reshape(-1, 3)[at], axis=0), 1e-3))
    return np.clip(gain, 0.5, 2.0).astype(np.float32)


def over_weights(weights: list[np.ndarray]) -> list[np.ndarray]:
    """Weights of layers a over (b over (… z)) as weights of the differences a − b, b − c, …:
    1 − Π (1 − w)."""
    out, rest = [], np.ones_like(weights[0])
    for weight in weights:
        rest = rest * (1.0 - weight)
        out.append(1.0 - rest)
    return out


def pyramid_blend(differences: list[np.ndarray], weights: list[np.ndarray], config: PhotoTextureConfig) -> np.ndarray:
    """Multi-band blend: Σ over Laplacian levels of each difference image times its weight blurred to that level
    (with :func:`over_weights` weights, the layers a over (b over (… z)) minus z)."""
    images = [np.asarray(d, np.float32) for d in differences]
    weights = [np.asarray(w, np.float32)[..., None] for w in weights]
    bands = []
    while min(images[0].shape[:2]) > config.pyramid_min:
        smaller = [imageops.halve(i) for i in images]
        band = np.zeros(images[0].shape, np.float32)
        for image, small, weight in zip(images, smaller, weights):
            laplacian = imageops.double(small, image.shape)
            np.subtract(image, laplacian, out=laplacian)
            laplacian *= weight
            band += laplacian
        bands.append(band)
        images, weights = smaller, [imageops.halve(w) for w in weights]
    out = sum(weight * image for image, weight in zip(images, weights))
    for band in reversed(bands):
        out = imageops.double(out, band.shape)
        out += band
    return out
