"""One simulated patient's MRI: pelvis-like volumes, the primary tumour and its masks.

Everything is defined in physical (world, mm) coordinates and then sampled on each
sequence's own voxel grid, so CE-T1WI, DWI and FS-T2WI look co-registered although their
grids differ (the DWI grid is coarser, some scanners store rotated or flipped axes).

Anatomy: an elliptical body with subcutaneous fat, pelvic-wall and gluteal muscle, femoral
heads and sacrum, iliac vessels, bladder, rectum, uterus and cervix, and the largest pelvic
lymph node (its short/long axes and necrosis from the clinical table). Each tissue has a
CE-T1WI signal, an FS-T2WI signal, a DWI b=0 signal and an ADC; the DWI image is
``S0 * exp(-b * ADC)`` with the scanner's b-value.

The tumour is a star-shaped 3D body inside the cervix: an ellipsoid whose radius is
modulated by random cosine lobes; it is scaled so that its greatest diameter equals the
patient's ``tumour_diameter_mm`` (set by the FIGO 2018 substage). LNM status shifts four
latent tumour properties by the effect sizes in ``study.signal`` (SD units): texture
heterogeneity, peripheral enhancement on CE-T1WI, diffusion restriction, boundary
irregularity. Readers' masks are the same body with a small smooth perturbation of the
boundary (larger for reader 2 than for reader 1's repeat).

Scanner effects: a smooth multiplicative bias field, tissue-contrast gamma, Rician noise,
intensity scale and offset; ``scanner_effect`` scales how far a scanner departs from the
average scanner. Images are stored as int16, masks as uint8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import ndimage

from dlrc_lib.study.schema import SEQUENCES
from dlrc_lib.twin.scanners import SCANNERS, Scanner

READERS = ("r1", "r2", "rep")

# tissue: (CE-T1WI, FS-T2WI, DWI S0, ADC in 1e-3 mm^2/s)
TISSUES = {
    "air": (0.0, 0.0, 0.0, 3.0),
    "fat": (0.22, 0.12, 0.08, 0.4),
    "muscle": (0.36, 0.24, 0.32, 1.45),
    "bone": (0.03, 0.03, 0.02, 1.0),
    "marrow": (0.28, 0.14, 0.12, 0.5),
    "vessel": (0.92, 0.06, 0.05, 2.5),
    "urine": (0.07, 1.0, 1.0, 3.0),
    "bladder_wall": (0.55, 0.3, 0.35, 1.5),
    "rectum_wall": (0.58, 0.38, 0.5, 1.3),
    "rectum_content": (0.12, 0.15, 0.1, 1.8),
    "myometrium": (0.78, 0.55, 0.7, 1.8),
    "endometrium": (0.48, 0.85, 0.9, 1.5),
    "stroma": (0.52, 0.17, 0.3, 1.35),
    "vagina": (0.6, 0.35, 0.45, 1.4),
    "node": (0.5, 0.5, 0.75, 0.95),
    "node_necrosis": (0.1, 0.92, 0.8, 2.2),
    "tumour": (0.64, 0.56, 0.72, 0.95),
}
MIN_OUTLINE_VOXELS = 4  # fewest voxels a reader's outline covers on any grid (a 2 x 2 patch)
DWI_GAIN = 2.5  # DWI signal relative to the b=0 tissue values (sets its signal-to-noise ratio)
LABELS = {name: i for i, name in enumerate(TISSUES)}
_PROPS = np.array(list(TISSUES.values()), dtype=np.float32)  # (n_tissues, 4)


@dataclass(frozen=True)
class Grid:
    size: tuple[int, int, int]  # x, y, z voxels
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 3x3 row-major (ITK convention: columns are the axes)

    def world(self, idx: np.ndarray) -> np.ndarray:
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ d.T

    def world_coords(self) -> np.ndarray:
        """World coordinates of every voxel centre, shape (z, y, x, 3) (SimpleITK array order)."""
        nx, ny, nz = self.size
        k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        idx = np.stack([i, j, k], axis=-1).astype(np.float32)
        d = np.asarray(self.direction, dtype=np.float32).reshape(3, 3)
        return (np.asarray(self.origin, dtype=np.float32)
                + (idx * np.asarray(self.spacing, dtype=np.float32)) @ d.T)


def scanner_grid(scanner: Scanner, seq: str, shape: tuple[int, int, int],
                 fov_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Grid:
    """The voxel grid a scanner uses for one sequence (DWI coarser than CE-T1WI/FS-T2WI).

    ``fov_scale`` shrinks the scanner's field of view (a small-FOV acquisition centred on the
    cervix): small volumes then keep the voxel size, and small tumours their voxels.
    """
    nx, ny, nz = shape
    if seq == "DWI":
        fi, fz = scanner.dwi_factor
        size = (max(8, int(round(nx * fi))), max(8, int(round(ny * fi))), max(4, int(round(nz * fz))))
    else:
        size = (nx, ny, nz)
    fov = np.asarray(scanner.fov_mm, dtype=float) * np.asarray(fov_scale, dtype=float)
    spacing = fov / np.asarray(size)
    a = np.deg2rad(scanner.rotation_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    if scanner.flip_xy:
        rot = rot @ np.diag([-1.0, -1.0, 1.0])
    centre = np.asarray(scanner.table_offset_mm, dtype=float)
    origin = centre - rot @ (spacing * (np.asarray(size) - 1) / 2.0)
    return Grid(tuple(int(s) for s in size), tuple(float(round(v, 6)) for v in spacing),
                tuple(float(round(v, 6)) for v in origin), tuple(float(round(v, 12)) for v in rot.ravel()))


# ----------------------------------------------------------------------- tumour shape
@dataclass
class Lobes:
    """A smooth function on the unit sphere: sum_j w_j cos(k_j u.v_j + phi_j)."""

    v: np.ndarray  # (m, 3) unit vectors
    k: np.ndarray  # (m,)
    phi: np.ndarray  # (m,)
    w: np.ndarray  # (m,)

    @classmethod
    def random(cls, rng: np.random.Generator, m: int, amp: float, kmin: float = 1.5, kmax: float = 4.5) -> "Lobes":
        v = rng.normal(size=(m, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return cls(v, rng.uniform(kmin, kmax, m), rng.uniform(0, 2 * np.pi, m),
                   rng.normal(0, 1, m) * amp / np.sqrt(m / 2.0))

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return np.cos(u @ self.v.T * self.k + self.phi) @ self.w


@dataclass
class Tumour:
    centre: np.ndarray  # world mm
    rot: np.ndarray  # 3x3
    axes: np.ndarray  # semi-axes (mm) before lobulation
    lobes: Lobes

    def radial(self, u: np.ndarray) -> np.ndarray:
        return np.clip(1.0 + self.lobes(u), 0.45, None)

    def local(self, pts: np.ndarray):
        q = ((pts - self.centre.astype(pts.dtype)) @ self.rot.astype(pts.dtype)) / self.axes.astype(pts.dtype)
        rho = np.linalg.norm(q, axis=-1)
        u = q / np.maximum(rho, 1e-6)[..., None]
        return rho, u

    def greatest_diameter(self, n: int = 1500, seed: int = 0) -> float:
        rng = np.random.default_rng(seed)
        u = rng.normal(size=(n, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        pts = (u * self.radial(u)[:, None] * self.axes) @ self.rot.T
        from scipy.spatial import ConvexHull
        from scipy.spatial.distance import pdist

        hull = pts[ConvexHull(pts).vertices]
        return float(pdist(hull).max())


def _rotation(rng: np.random.Generator, tilt_deg: float) -> np.ndarray:
    a, b, c = np.deg2rad(rng.uniform(-180, 180)), np.deg2rad(rng.normal(0, tilt_deg)), np.deg2rad(rng.normal(0, tilt_deg))
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    ry = np.array([[np.cos(c), 0, np.sin(c)], [0, 1, 0], [-np.sin(c), 0, np.cos(c)]])
    return rz @ rx @ ry


# ---------------------------------------------------------------------- the patient
@dataclass
class PatientModel:
    """Everything random about one patient, drawn from (seed, patient index) alone."""

    centre: np.ndarray
    body: np.ndarray  # semi-axes (x, y) of the body outline
    fat: float
    bladder: np.ndarray  # centre (3) + semi-axes (3)
    uterus_tilt: float
    node_side: float
    tumour: Tumour
    latent: dict
    readers: dict  # reader -> (Lobes, bias)
    texture: tuple  # (k vectors (m,3), phases (m,), weights (m,))
    tissue_texture: tuple
    bias_coef: np.ndarray
    coarse_texture: tuple  # LNM-independent coarse tumour texture (same layout as ``texture``)
    nuisance: np.ndarray  # 4 standard normals: coarse-texture amplitude, CE-T1/FS-T2 level, ADC


def latent_properties(lnm: int, signal, rng: np.random.Generator) -> dict:
    """Standard-normal latent tumour traits, shifted by the LNM effect sizes (SD units)."""
    names = ("heterogeneity", "enhancement", "diffusion", "irregularity")
    z = rng.normal(size=4)
    return {n: float(z[i] + lnm * getattr(signal, n)) for i, n in enumerate(names)}


def _spectrum(k: np.ndarray, u: np.ndarray, phases: np.ndarray, z: np.ndarray, scale: float,
              octaves: float) -> tuple:
    """A texture's waves (directions ``k``, phases) from its draws: ``u`` ~ U(0.6, 1.6) and ``z``
    ~ N(0, 1) per wave. ``octaves`` 0: wavelengths ``scale / u`` and random amplitudes (a narrow
    spectrum that differs between tumours: generator 1.4); > 0: broadband over that many octaves
    around ``scale`` and the same in every tumour (one wave per stratum of log-frequency,
    jittered by ``u``; equal amplitudes with the signs of ``z``). Nothing extra is drawn."""
    m = len(u)
    if octaves > 0:
        strata = (np.arange(m) + (u - 0.6)) / m
        k = k * (2.0 ** (octaves * (strata - 0.5)) / scale)[:, None]
        weights = np.sign(z) * np.sqrt(2.0 / m)
    else:
        k = k * (u / scale)[:, None]
        weights = z * np.sqrt(2.0 / m)
    return (k, phases, weights)


def patient_model(row: Mapping, signal, seed: int, index: int) -> PatientModel:
    rng = np.random.default_rng([seed, index, 10])
    lat = latent_properties(int(row["lnm"]), signal, rng)
    centre = rng.normal(0.0, [6.0, 5.0, 4.0])
    body = np.array([rng.uniform(138, 165), rng.uniform(98, 120)])
    fat = rng.uniform(12, 32)
    bl_axes = np.array([rng.uniform(32, 55), rng.uniform(20, 35), rng.uniform(22, 35)])
    bladder = np.concatenate([centre + [rng.normal(0, 4), -32 - bl_axes[1], rng.uniform(5, 20)], bl_axes])
    # tumour: centred in the cervix, lower for stage IIA (vaginal extension)
    stage = str(row["figo_stage"])
    t_centre = centre + np.array([rng.normal(0, 2.5), rng.normal(2, 2.5), rng.normal(-8 if stage.startswith("IIA") else 0, 3)])
    vis = float(getattr(signal, "trait_visibility", 1.0))
    irr = 0.07 * np.exp(0.45 * vis * lat["irregularity"])
    lobes = Lobes.random(rng, 10, float(np.clip(irr, 0.02, 0.35)))
    axes = np.array([1.0, rng.uniform(0.72, 0.95), rng.uniform(0.8, 1.15)])
    tum = Tumour(t_centre, _rotation(rng, 15.0), axes, lobes)
    d0 = tum.greatest_diameter(seed=index)
    tum.axes = axes * float(row["tumour_diameter_mm"]) / d0
    dis = float(getattr(signal, "reader_disagreement", 1.0))
    readers = {
        "r1": (Lobes.random(rng, 8, 0.025 * dis, 2.0, 6.0), 0.0),
        "rep": (Lobes.random(rng, 8, 0.045 * dis, 2.0, 6.0), float(rng.normal(0, 0.02 * dis))),
        "r2": (Lobes.random(rng, 8, 0.07 * dis, 2.0, 6.0), float(rng.normal(0.0, 0.05 * dis))),
    }
    m = 32
    ks = rng.normal(size=(m, 3))
    ks /= np.linalg.norm(ks, axis=1, keepdims=True)
    scale = float(getattr(signal, "texture_scale_mm", 3.0))
    u = rng.uniform(0.6, 1.6, m)
    texture = _spectrum(ks, u, rng.uniform(0, 2 * np.pi, m), rng.normal(0, 1, m), scale,
                        float(getattr(signal, "texture_octaves", 0.0)))
    kt = rng.normal(size=(12, 3))
    kt /= np.linalg.norm(kt, axis=1, keepdims=True)
    kt *= (rng.uniform(0.5, 1.5, 12) / 12.0)[:, None]
    tissue_texture = (kt, rng.uniform(0, 2 * np.pi, 12), rng.normal(0, 1, 12) * np.sqrt(2.0 / 12))
    tilt = rng.normal(0, 8)
    side = float(rng.choice([-1.0, 1.0]))
    bias_coef = rng.normal(0, 1, 6)
    # LNM-independent variation between tumours (drawn last, so the draws above are unchanged):
    # a coarse texture (correlation length ``coarse_scale_mm``) and the tumour's own signal level
    mc = 16
    kc = rng.normal(size=(mc, 3))
    kc /= np.linalg.norm(kc, axis=1, keepdims=True)
    uc = rng.uniform(0.6, 1.6, mc)
    coarse = _spectrum(kc, uc, rng.uniform(0, 2 * np.pi, mc), rng.normal(0, 1, mc),
                       float(getattr(signal, "coarse_scale_mm", 10.0)), float(getattr(signal, "coarse_octaves", 0.0)))
    return PatientModel(centre, body, fat, bladder, tilt, side, tum, lat, readers, texture, tissue_texture,
                        bias_coef, coarse, rng.normal(size=4))


def _ell(p: np.ndarray, c, ax) -> np.ndarray:
    return (((p - np.asarray(c, dtype=np.float32)) / np.asarray(ax, dtype=np.float32)) ** 2).sum(-1)


def _ell2(p: np.ndarray, c, ax) -> np.ndarray:
    return ((p[..., 0] - c[0]) / ax[0]) ** 2 + ((p[..., 1] - c[1]) / ax[1]) ** 2


def label_volume(pm: PatientModel, row: Mapping, pts: np.ndarray) -> np.ndarray:
    """Tissue labels (no tumour) at world points ``pts`` (..., 3)."""
    L = LABELS
    c = pm.centre
    lab = np.full(pts.shape[:-1], L["air"], dtype=np.uint8)
    a, b = pm.body
    body = _ell2(pts, (c[0], c[1] + 5), (a, b))
    lab[body < 1] = L["fat"]
    inner = _ell2(pts, (c[0], c[1] + 5), (a - pm.fat, b - pm.fat * 0.8))
    # muscles: gluteal band, pelvic side walls, rectus
    for sx in (-1, 1):
        lab[(inner < 1) & (_ell2(pts, (c[0] + sx * 62, c[1] + 72), (58, 30)) < 1)] = L["muscle"]
        lab[(inner < 1) & (_ell2(pts, (c[0] + sx * 88, c[1] + 8), (26, 48)) < 1)] = L["muscle"]
        lab[(body < 1) & (_ell2(pts, (c[0] + sx * 32, c[1] - b + pm.fat + 4), (26, 8)) < 1)] = L["muscle"]
        fh = _ell(pts, (c[0] + sx * 104, c[1] + 12, c[2] - 14), (25, 25, 25))
        lab[fh < 1] = L["bone"]
        lab[fh < 0.78] = L["marrow"]
        for dy in (0.0, 11.0):
            lab[_ell2(pts, (c[0] + sx * 56, c[1] + 6 + dy), (5.5, 5.5)) < 1] = L["vessel"]
    sac = _ell2(pts, (c[0], c[1] + 92), (36, 15))
    lab[(sac < 1) & (inner < 1.15)] = L["bone"]
    lab[(sac < 0.7) & (inner < 1.15)] = L["marrow"]
    # bladder
    bc, bax = pm.bladder[:3], pm.bladder[3:]
    bl = _ell(pts, bc, bax)
    lab[bl < 1] = L["bladder_wall"]
    lab[_ell(pts, bc, bax - 3) < 1] = L["urine"]
    # rectum
    rec = _ell2(pts, (c[0] + 2, c[1] + 42), (17, 14))
    lab[rec < 1] = L["rectum_wall"]
    lab[rec < 0.4] = L["rectum_content"]
    # uterus (above), cervix and vagina (below)
    tilt = np.deg2rad(pm.uterus_tilt)
    ut_c = c + np.array([0, -8 + 20 * np.sin(tilt), 42])
    lab[_ell(pts, ut_c, (36, 24, 32)) < 1] = L["myometrium"]
    lab[_ell(pts, ut_c, (14, 5, 22)) < 1] = L["endometrium"]
    lab[_ell(pts, c + [0, 3, -38], (14, 9, 22)) < 1] = L["vagina"]
    lab[_ell(pts, c + [0, 3, 0], (26, 21, 30)) < 1] = L["stroma"]
    # largest pelvic node, on the side wall, long axis running cranio-caudally
    s, lg = float(row["lnsd_mm"]), float(row["lnld_mm"])
    nc = c + np.array([pm.node_side * 60, 20, 10])
    nax = (s / 2, s / 2, lg / 2)
    lab[_ell(pts, nc, nax) < 1] = L["node"]
    if int(row["node_necrosis"]) == 1:
        lab[_ell(pts, nc, (s / 5, s / 5, lg / 5)) < 1] = L["node_necrosis"]
    return lab


def _waves(pts: np.ndarray, spec: tuple) -> np.ndarray:
    k, phi, w = spec
    return np.cos(pts @ (2 * np.pi * k.T).astype(np.float32) + phi.astype(np.float32)) @ w.astype(np.float32)


def _bias_field(pts: np.ndarray, coef: np.ndarray, amp: float) -> np.ndarray:
    x, y, z = pts[..., 0] / 150.0, pts[..., 1] / 150.0, pts[..., 2] / 60.0
    f = coef[0] * x + coef[1] * y + coef[2] * z + coef[3] * x * y + coef[4] * x * x + coef[5] * y * y
    return np.exp(amp * f / 2.0)


@dataclass
class _Sampled:
    """One patient's anatomy sampled on one voxel grid (shared by the sequences on that grid)."""

    pts: np.ndarray  # world coordinates (z, y, x, 3)
    lab: np.ndarray  # tissue labels, the tumour included
    rho: np.ndarray  # the tumour's normalised radius at each voxel
    rad_c: np.ndarray  # the tumour's boundary radius at the candidate voxels
    cand: np.ndarray  # voxels within reach of any reader's boundary
    inside: np.ndarray  # voxels inside the tumour
    masks: dict  # reader -> uint8 mask
    base: np.ndarray  # tissue texture (1 outside the body)


def _reader_bound(pm: PatientModel, readers: tuple[str, ...]) -> float:
    """A bound on the normalised radius of any reader's boundary: only voxels inside it matter."""
    return (1.0 + np.abs(pm.tumour.lobes.w).sum()) * max(
        1.0 + abs(pm.readers[r][1]) + np.abs(pm.readers[r][0].w).sum() for r in readers)


def _reader_masks(pm: PatientModel, readers: tuple[str, ...], rho: np.ndarray, cand: np.ndarray,
                  rho_c: np.ndarray, rad_c: np.ndarray, u_c: np.ndarray) -> dict:
    """Each reader's outline: the tumour's boundary (radius ``rad_c`` at the candidate voxels
    ``cand``, directions ``u_c``) with the reader's perturbation."""
    masks = {}
    for reader in readers:
        lobes, bias = pm.readers[reader]
        m = np.zeros(rho.shape, dtype=np.uint8)
        m[cand] = rho_c < rad_c * (1.0 + bias + lobes(u_c))
        if m.sum() < MIN_OUTLINE_VOXELS:
            # a tumour smaller than a few of this grid's voxels (an 8 mm IB1 tumour on a
            # coarse DWI grid): the reader outlines the voxels it partly fills, i.e. the
            # ones nearest its centre (in the tumour's own, anisotropic, coordinates)
            flat = m.reshape(-1)
            flat[np.argpartition(rho.reshape(-1), MIN_OUTLINE_VOXELS)[:MIN_OUTLINE_VOXELS]] = 1
        masks[reader] = m
    return masks


def _sample(pm: PatientModel, row: Mapping, grid: Grid, readers: tuple[str, ...], bound: float) -> _Sampled:
    """Labels, tumour and readers' masks and tissue texture on ``grid``."""
    pts = grid.world_coords()
    lab = label_volume(pm, row, pts)
    rho, u = pm.tumour.local(pts)
    cand = rho < bound
    rho_c, u_c = rho[cand], u[cand]
    rad_c = pm.tumour.radial(u_c)
    inside = np.zeros(rho.shape, dtype=bool)
    inside[cand] = rho_c < rad_c
    lab[inside] = LABELS["tumour"]
    masks = _reader_masks(pm, readers, rho, cand, rho_c, rad_c, u_c)
    base = np.where(lab > 0, 1.0 + 0.05 * _waves(pts, pm.tissue_texture), 1.0).astype(np.float32)
    return _Sampled(pts, lab, rho, rad_c, cand, inside, masks, base)


def _tissue_signal(seq: str, g: _Sampled, scanner: Scanner) -> np.ndarray:
    """Every voxel's signal from its tissue on ``seq`` (DWI at the scanner's b-value)."""
    props = _PROPS[g.lab]  # (..., 4)
    if seq == "CET1":
        return props[..., 0] * g.base
    if seq == "T2FS":
        return props[..., 1] * g.base
    return DWI_GAIN * props[..., 2] * g.base * np.exp(-scanner.b_value * 1e-3 * props[..., 3])


def _tumour_signal(seq: str, g: _Sampled, pm: PatientModel, signal, scanner: Scanner) -> np.ndarray:
    """The tumour's signal on ``seq``: texture heterogeneity, peripheral enhancement, diffusion
    restriction, and the LNM-independent coarse texture and signal level."""
    lat = pm.latent
    vis = float(getattr(signal, "trait_visibility", 1.0))
    tex = _waves(g.pts[g.inside], pm.texture)
    het = float(getattr(signal, "texture_amplitude", 0.09)) * np.exp(0.3 * vis * lat["heterogeneity"])
    # LNM-independent: coarse texture and the tumour's own signal level on each sequence
    cst = float(getattr(signal, "coarse_texture", 0.0)) * np.exp(0.3 * pm.nuisance[0])
    ctex = _waves(g.pts[g.inside], pm.coarse_texture) if cst > 0 else 0.0
    var = float(getattr(signal, "patient_variation", 0.0))
    rad_in = np.zeros(g.rho.shape, dtype=np.float32)
    rad_in[g.cand] = g.rad_c
    rel = np.clip(g.rho[g.inside] / rad_in[g.inside], 0, 1)
    t = TISSUES["tumour"]
    if seq == "CET1":
        enh = 1.0 + 0.06 * vis * lat["enhancement"]
        rim = 0.10 + 0.06 * vis * lat["enhancement"]
        return (t[0] * enh * np.exp(var * pm.nuisance[1]) * (1.0 + rim * (rel - 0.6))
                * (1.0 + het * tex + cst * ctex))
    if seq == "T2FS":
        return t[1] * np.exp(var * pm.nuisance[2]) * (1.0 + 0.8 * (het * tex + cst * ctex))
    adc = (t[3] * np.exp(-0.1 * vis * lat["diffusion"] + var * pm.nuisance[3])
           * (1.0 - 0.5 * (het * tex + cst * ctex)))
    return DWI_GAIN * t[2] * np.exp(-scanner.b_value * 1e-3 * adc)


def _acquire(sig: np.ndarray, si: int, seq: str, pts: np.ndarray, pm: PatientModel, scanner: Scanner,
             scanner_effect: float, rng: np.random.Generator) -> np.ndarray:
    """The scanner's image of ``sig``: blur, contrast gamma, bias field, Rician noise, scale and
    offset, stored as int16."""
    sig = ndimage.gaussian_filter(sig, sigma=(0.35, 0.6, 0.6), mode="nearest")
    gamma = scanner.contrast[si] ** scanner_effect
    sig = np.power(np.clip(sig, 0, None), gamma)
    sig *= _bias_field(pts, pm.bias_coef + _scanner_bias(scanner), scanner.bias * scanner_effect)
    sd = scanner.noise * (1.2 if seq == "DWI" else 1.0)
    n1 = rng.normal(0, sd, sig.shape).astype(np.float32)
    n2 = rng.normal(0, sd, sig.shape).astype(np.float32)
    sig = np.sqrt((sig + n1) ** 2 + n2 ** 2)
    ref = _reference_scanner()
    scale = ref.scale[si] * (scanner.scale[si] / ref.scale[si]) ** scanner_effect
    offset = scanner.offset[si] * scanner_effect
    return np.clip(np.round(sig * scale + offset), 0, 32767).astype(np.int16)


def render_patient(row: Mapping, scanner: Scanner, shape: tuple[int, int, int], signal,
                   scanner_effect: float, seed: int, index: int, with_icc: bool,
                   fov_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict:
    """Images and masks of one patient on one scanner.

    Returns ``{seq: {"grid": Grid, "image": int16 array (z,y,x), "masks": {reader: uint8 array}}}``
    with readers ``r1`` always and ``r2``/``rep`` when ``with_icc``.
    """
    pm = patient_model(row, signal, seed, index)
    rng = np.random.default_rng([seed, index, 11])
    readers = READERS if with_icc else ("r1",)
    bound = _reader_bound(pm, readers)
    out = {}
    sampled: dict[Grid, _Sampled] = {}
    for si, seq in enumerate(SEQUENCES):
        grid = scanner_grid(scanner, seq, shape, fov_scale)
        if grid not in sampled:
            sampled[grid] = _sample(pm, row, grid, readers, bound)
        g = sampled[grid]
        sig = _tissue_signal(seq, g, scanner)
        if g.inside.any():
            sig[g.inside] = _tumour_signal(seq, g, pm, signal, scanner)
        img = _acquire(sig, si, seq, g.pts, pm, scanner, scanner_effect, rng)
        out[seq] = {"grid": grid, "image": img, "masks": g.masks}
    return out


_SCANNER_BIAS: dict[str, np.ndarray] = {}


def _scanner_bias(scanner: Scanner) -> np.ndarray:
    """A bias-field pattern tied to the scanner (coil geometry), the same for its patients."""
    if scanner.name not in _SCANNER_BIAS:
        h = sum(ord(ch) * (i + 1) for i, ch in enumerate(scanner.name))
        _SCANNER_BIAS[scanner.name] = np.random.default_rng(h).normal(0, 1.5, 6)
    return _SCANNER_BIAS[scanner.name]


def _reference_scanner() -> Scanner:
    """The 'average' scanner: geometric-mean intensity scales (``scanner_effect = 0``)."""
    from dataclasses import replace

    sc = tuple(float(np.exp(np.mean([np.log(s.scale[i]) for s in SCANNERS]))) for i in range(3))
    return replace(SCANNERS[0], name="ref", scale=sc)
