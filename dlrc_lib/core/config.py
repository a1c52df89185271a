"""Parameter sets: one pydantic schema for every ``params/*.yaml``.

A parameter file is validated completely before anything runs. Unknown keys, wrong types
and missing files are refused with a one-line message that names the key and the file
(:class:`ParamsError`). Each section below belongs to one part of the pipeline; the
notebooks receive the values flattened as ``<section>_<key>`` (see :func:`flatten`), so
``selection: {mw_p: 0.01}`` arrives in a notebook's ``parameters`` cell as
``selection_mw_p = 0.01``.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    model_validator,
)

from dlrc_lib.core.io import read_yaml_mapping
from dlrc_lib.core.resources import RUN_PARAMS, data_root, packaged, params_file, work_root


class ParamsError(ValueError):
    """A parameter file that cannot be used; the message is meant to be shown as is."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- study
class SignalParams(Section):
    """How LNM status shows in the twin's tumours (effect sizes in SD units of a latent trait).

    The defaults (generator 1.5) are the setting ``broad_amp`` of benchmarks/calibrate_twin.py,
    chosen as described in docs/twin_calibration.md.

    Each LNM-positive tumour's latent property is shifted by the given number of standard
    deviations relative to LNM-negative ones; 0 switches an effect off.
    """

    heterogeneity: float = 0.9  # texture amplitude inside the tumour (all sequences)
    enhancement: float = 0.4  # CE-T1WI enhancement, peripheral more than central
    diffusion: float = 0.3  # diffusion restriction (lower ADC -> brighter DWI)
    irregularity: float = 0.2  # lobulated, irregular 3D boundary
    texture_scale_mm: float = 4.0  # correlation length of the tumour texture (mm)
    # 0: that texture's spectrum is narrow (wavelengths 0.6-1.7 x texture_scale_mm) and random in
    # each tumour (random wave amplitudes: every filter band holds a different share of it);
    # > 0: a broadband spectrum spanning this many octaves around texture_scale_mm, the same in
    # every tumour (stratified wavelengths, equal amplitudes), so that fine filters (LBP, small
    # LoG sigmas, high wavelet bands) and coarse ones measure the same trait
    texture_octaves: float = Field(3.0, ge=0, le=6)
    # amplitude of that (LNM-linked) texture relative to the tumour's signal; the scanners' noise
    # is 0.012-0.04 of the signal range, so a small amplitude is masked on the noisier scanners
    texture_amplitude: float = Field(0.2, gt=0)
    # how far one SD of a latent trait moves the image (texture amplitude, enhancement, ADC,
    # lobulation): at 1 a trait shows faintly beside the LNM-independent variation, so every
    # feature that measures it is a noisy measure; larger values make the features measure it well
    trait_visibility: float = Field(2.0, gt=0)
    reader_disagreement: float = 1.0  # multiplies reader-2 / repeat boundary perturbations
    # LNM-independent differences between tumours, which every real cohort has: they dilute the
    # LNM signal in features that mix them with it (0 switches them off)
    coarse_texture: float = Field(0.18, ge=0)  # amplitude of a coarse tumour texture (as texture_amplitude)
    coarse_scale_mm: float = Field(10.0, gt=0)  # its correlation length (mm)
    coarse_octaves: float = Field(0.0, ge=0, le=6)  # its spectrum, as texture_octaves
    patient_variation: float = Field(0.18, ge=0)  # SD of the log signal level (CE-T1WI, FS-T2WI) and log ADC
    # how much larger LNM(+) tumours are within their FIGO substage's size range (0: size follows
    # the substage alone, which Table 1 ties to LNM; 1: generator 1.3's Beta(2.6, 1.8) vs Beta(2.0, 2.2))
    size_within_stage: float = Field(0.0, ge=0, le=2.5)


class StudyParams(Section):
    """Which study the run analyses: the synthetic twin or a user's manifest."""

    source: Literal["twin", "manifest"] = "twin"
    manifest: Optional[str] = None  # CSV manifest (source: manifest); paths relative to it
    # What a manifest study is, for the report: new_cohort (the default: another cohort, whose
    # Table 1 and cohort sizes are shown beside the paper's but never graded; the verdict covers
    # the paper's findings) or same_patients (the paper's own patients re-analysed: cohort sizes
    # and Table 1 counts are graded too). Not a key of the twin, which is always itself.
    role: Optional[Literal["new_cohort", "same_patients"]] = None
    # Fig. 1's flow table of a manifest study (step,n: enrolled, then one row per exclusion reason;
    # dlrc_lib.study.flow); unset: flow.csv beside the manifest when there is one
    flow: Optional[str] = None
    twin_dir: str = "data/twin/{run_name}"  # where the twin study is generated
    scale: float = Field(1.0, gt=0, le=1)  # fraction of the paper's 1,095 patients
    volume_shape: tuple[int, int, int] = (128, 128, 20)  # x, y, z voxels of the CE-T1WI grid
    # multiplies every scanner's field of view (x, y, z): below 1 a small-FOV acquisition around
    # the cervix, so that small volumes keep a realistic voxel size and small tumours their voxels
    fov_scale: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = (1.0, 1.0, 1.0)
    n_jobs: int = 0  # processes for generation/validation (0: all cores)
    signal: SignalParams = Field(default_factory=SignalParams)  # LNM effect sizes
    scanner_effect: float = Field(0.6, ge=0)  # multiplies the per-scanner intensity effects
    icc_cases: int = Field(30, ge=0)  # patients with reader-2 and repeat masks
    internal_centres: list[str] = Field(default_factory=lambda: ["A"])  # split train/internal
    train_fraction: float = Field(0.7, gt=0, lt=1)  # used when the manifest has no cohort
    exclusions: dict[str, int] = Field(default_factory=dict)  # Fig. 1 flow: reason -> count
    min_batch_size: int = Field(2, ge=1)  # smallest scanner/centre that can be harmonised
    mask_label: int = Field(1, ge=1)  # voxel value of the tumour in mask files
    compression_level: int = Field(1, ge=0, le=9)  # gzip level of the twin's NIfTI files


# ------------------------------------------------------------------------ radiomics
class RadiomicsParams(Section):
    """PyRadiomics extraction (settings in a separate pyradiomics YAML file)."""

    settings: str = "params/radiomics.yaml"  # PyRadiomics parameter file (image types, classes, preprocessing)
    sequences: list[str] = Field(default_factory=lambda: ["CET1", "DWI", "T2FS"])  # sequences extracted
    n_jobs: int = Field(0, ge=0)  # local worker processes (0: all cores)
    dask_scheduler: Optional[str] = None  # e.g. "tcp://10.0.0.5:8786": run the cases on that Dask cluster
    progress: bool = True  # progress bar (patients/s, time left)


class IccParams(Section):
    """Feature reproducibility from the re-segmented cases."""

    form: Literal["ICC(2,1)", "ICC(3,1)"] = "ICC(2,1)"  # psych::ICC form (two-way random/mixed, single rater)
    threshold: float = Field(0.75, ge=0, le=1)  # keep features with ICC > threshold (inter and intra)
    min_cases: int = Field(5, ge=2)  # fewest re-segmented cases an ICC is computed from


class HarmonisationParams(Section):
    """ComBat harmonisation of features across scanners."""

    # all cohorts fitted together | fitted on the training cohort, applied to the others | off.
    # The paper does not say what ComBat was fitted on; the default keeps validation patients
    # out of the fit (scanners absent from training are brought to the training reference from
    # their own unlabelled images).
    mode: Literal["all", "train_reference", "none"] = "train_reference"
    batch: Literal["scanner", "centre"] = "scanner"  # the batch ComBat removes (never the outcome)
    parametric: bool = True  # parametric empirical Bayes priors (neuroCombat default)
    # A batch with a single patient has no estimable scale: refuse it (error) or leave
    # that patient's features unharmonised (skip, recorded as a warning).
    small_batch: Literal["error", "skip"] = "error"


class SelectionParams(Section):
    """Training-cohort feature selection -> score (shared by radiomics and deep features: notebooks
    03 and 04 apply every key the same way)."""

    mw_p: float = Field(0.01, gt=0, le=1)  # Mann-Whitney U p-value threshold
    spearman_r: float = Field(0.8, gt=0, le=1)  # prune pairs with |rho| above this
    lasso_folds: int = Field(10, ge=2)  # stratified CV folds for LASSO
    lasso_rule: Literal["1se", "min"] = "1se"
    # cap on LASSO survivors before stepwise AIC (None: no cap, the paper's), applied wherever LASSO
    # selects: the radiomics features (notebook 03) and every DL model's features (notebook 04).
    # A small cohort needs it: with a few dozen training patients more survivors separate LNM perfectly
    max_features_lasso: Optional[int] = Field(None, ge=1)
    # stepAIC direction: backward (the paper's) | both (dropped terms may re-enter)
    stepwise_direction: Literal["backward", "both"] = "backward"


# ----------------------------------------------------------------------------- deep
#: The ResNet depths of the deep-learning models.
DL_ARCHS = ("ResNet50", "ResNet101", "ResNet152")
#: The paper's six deep-learning models (2a-2f), named ``<arch>_<2D|3D>``, in its order.
DL_MODELS = tuple(f"{a}_{d}" for d in ("3D", "2D") for a in DL_ARCHS)
#: The paper's best deep-learning model (the one its Tables 2 and 4 report).
PAPER_BEST_DL = "ResNet152_2D"


class DeepParams(Section):
    """Frozen ResNet feature extractors (see dlrc_lib.features.deep) and the choice of the best DL model."""

    models: list[str] = Field(default_factory=lambda: list(DL_MODELS))  # <arch>_<2D|3D>, arch in ResNet50/101/152
    weights: str = "auto"  # auto | imagenet | random | <state_dict file or folder>
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda
    input_size: int = Field(224, ge=32)  # 2D network input (pixels)
    margin: float = Field(0.1, ge=0)  # crop margin around the tumour box (fraction of its size, each side)
    # 3D crop (depth, height, width): depth ~ the 5-10 slices a tumour spans at 4-5 mm (no
    # invented slices), in-plane half the 2D input; with depth stride 1 a volume costs ~4x a
    # 224-px 2D image, the 3D models are ~80 % of a ~70 min CPU extraction at paper scale.
    shape_3d: tuple[int, int, int] = (8, 112, 112)
    batch_size: int = Field(16, ge=1)  # images (or volumes) per forward pass
    workers: int = Field(1, ge=0)  # preprocessing threads overlapping inference (0: inline)
    # a Dask scheduler ("tcp://host:8786"): one task per batch of cases on its workers; unset,
    # that of radiomics.dask_scheduler; "local": this machine even when radiomics uses a cluster
    dask_scheduler: Optional[str] = None
    clip_percentiles: tuple[float, float] = (0.5, 99.5)  # intensity clipping within the crop
    # train_and_external_auc: the paper's (it uses the external cohort to choose, so that cohort
    # no longer validates the choice); train_auc and internal_auc leave the external cohort alone
    best_model_rule: Literal["train_auc", "internal_auc", "train_and_external_auc"] = "train_and_external_auc"

    @model_validator(mode="after")
    def _check(self) -> "DeepParams":
        for name in self.models:
            arch, _, dim = name.partition("_")
            if arch not in DL_ARCHS or dim not in ("2D", "3D"):
                raise ValueError(f"unknown model {name!r} (ResNet50|ResNet101|ResNet152 _ 2D|3D)")
        lo, hi = self.clip_percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError("clip_percentiles must satisfy 0 <= low < high <= 100")
        if min(self.shape_3d) < 1 or min(self.shape_3d[1:]) < 32:
            raise ValueError("shape_3d needs depth >= 1 and height, width >= 32")
        return self


# ---------------------------------------------------------------------------- model
class DlrcParams(Section):
    """The fused deep-learning + radiomics + clinical model."""

    clinical_p: float = Field(0.05, gt=0, le=1)  # univariate screening threshold (Table 1 tests, training)
    # The paper excluded clinical FIGO stage although significant: clinical staging is less
    # accurate than the pathological staging it stands for.
    exclude_clinical: list[str] = Field(default_factory=lambda: ["figo_stage"])  # never candidates
    # `dlrc predict` with a scanner the model never saw: refuse (with the scanner and patients
    # named) or harmonise (ComBat estimates from the new patients' own images, >= 2 per scanner).
    scanner_policy: Literal["refuse", "harmonise"] = "refuse"  # default of --scanner-policy


class CalibrationParams(Section):
    """Hosmer-Lemeshow test, calibration plots and the bootstrap optimism correction."""

    groups: int = Field(10, ge=3)  # Hosmer-Lemeshow / calibration-plot risk groups (deciles)
    bootstrap: int = Field(200, ge=0)  # optimism-corrected calibration (rms calibrate B)


class DecisionCurveParams(Section):
    """Decision curve analysis (net benefit over threshold probabilities, as R dcurves)."""

    threshold_max: float = Field(0.99, gt=0, lt=1)  # last threshold probability
    threshold_step: float = Field(0.01, gt=0, lt=1)  # grid step from 0
    bootstrap: int = Field(200, ge=0)  # bands for the DLRC curve
    band_level: float = Field(0.95, gt=0, lt=1)  # coverage of the bootstrap band
    per_patients: int = Field(100, ge=1)  # net interventions avoided per this many patients


class SraParams(Section):
    """Standardised radiological assessment of the largest pelvic node, and Table 5."""

    short_axis_mm: float = Field(10.0, gt=0)  # positive when the short axis reaches this
    borderline_mm: float = Field(8.0, gt=0)  # ... or reaches this with a round node
    ratio: float = Field(0.8, gt=0, le=1)  # short/long ratio above which a node counts as round
    subgroup_mm: float = Field(10.0, gt=0)  # Table 5 splits patients at this short axis
    mcnemar_method: Literal["auto", "exact", "chisq"] = "auto"  # DLRC vs SRA paired test
    mcnemar_exact_below: int = Field(25, ge=1)  # auto: exact binomial when discordant pairs < this


class SweepParams(Section):
    """Exploratory re-analysis: ``dlrc sweep`` / notebook 09 (see dlrc_lib.run.sweep)."""

    grid: Optional[str] = None  # sweep grid YAML; when set, `dlrc run` runs the sweep and notebook 09
    jobs: int = Field(0, ge=0)  # variants run at once (0: all cores)
    out: Optional[str] = None  # sweep folder (default <run dir>/sweep)


# ---------------------------------------------------------------------------- whole
class Params(Section):
    """A complete parameter set (``params/<name>.yaml``)."""

    run_name: str = "paper"  # reports/<run_name>/
    seed: int = 20240601  # every random step derives from it
    cache_dir: str = ".dlrc_cache"  # feature store and other caches
    published_values: str = "params/published_values.yaml"
    study: StudyParams = Field(default_factory=StudyParams)
    radiomics: RadiomicsParams = Field(default_factory=RadiomicsParams)
    icc: IccParams = Field(default_factory=IccParams)
    harmonisation: HarmonisationParams = Field(default_factory=HarmonisationParams)
    selection: SelectionParams = Field(default_factory=SelectionParams)
    deep: DeepParams = Field(default_factory=DeepParams)
    dlrc: DlrcParams = Field(default_factory=DlrcParams)
    calibration: CalibrationParams = Field(default_factory=CalibrationParams)
    decision_curve: DecisionCurveParams = Field(default_factory=DecisionCurveParams)
    sra: SraParams = Field(default_factory=SraParams)
    sweep: SweepParams = Field(default_factory=SweepParams)

    # Set by load_params: the file the values came from and its mapping as read, overrides
    # applied (not YAML keys; :meth:`with_overrides` validates that mapping again).
    _source: Optional[Path] = None
    _raw: Optional[dict] = None

    def with_overrides(self, overrides: dict[str, Any]) -> "Params":
        """These parameters with ``overrides`` (dotted keys) applied to the file's mapping and
        validated as :func:`load_params` does (paths resolved against the file's folder), without
        reading the file again. Only for parameters that came from :func:`load_params`."""
        if self._source is None or self._raw is None:
            raise ParamsError("with_overrides: these parameters were not read from a file (use load_params)")
        return _validated(self._source, self._raw, overrides)

    @model_validator(mode="after")
    def _manifest_needed(self) -> "Params":
        if self.study.source == "manifest" and not self.study.manifest:
            raise ValueError("study.manifest is required when study.source is 'manifest'")
        if self.study.source == "twin" and self.study.role is not None:
            raise ValueError("study.role describes a manifest study; the twin is always itself (remove it)")
        if self.deep.dask_scheduler is None and self.radiomics.dask_scheduler:
            self.deep.dask_scheduler = self.radiomics.dask_scheduler  # one line puts both on the cluster
        return self

    @property
    def twin_dir(self) -> Path:
        return Path(self.study.twin_dir.format(run_name=self.run_name))

    @property
    def study_role(self) -> str:
        """``twin``, or a manifest study's role: ``new_cohort`` (default) or ``same_patients``."""
        if self.study.source == "twin":
            return "twin"
        return self.study.role or "new_cohort"


# A manifest study's flow table (Fig. 1), looked for beside the manifest when study.flow is unset
# (format: dlrc_lib.study.flow).
FLOW_FILE = "flow.csv"
# Keys whose values are paths that must exist.
_FILE_KEYS = ("published_values", "radiomics.settings", "study.manifest", "study.flow", "sweep.grid")
# Path keys that name something a run creates (need not exist yet).
_OUTPUT_KEYS = ("cache_dir", "study.twin_dir", "sweep.out")
# Keys whose written relative value may also be found in the working directory or the package
# (files that come with dlrc); the study's own data (study.manifest) only beside the parameter file.
_SHARED_FILE_KEYS = ("published_values", "radiomics.settings", "sweep.grid")
# study.* keys that only describe how the synthetic twin is generated: in a manifest study they
# would silently invent numbers (Fig. 1's exclusions, the scale of the cohort), so they are refused.
TWIN_ONLY_KEYS = ("scale", "volume_shape", "fov_scale", "signal", "scanner_effect", "icc_cases",
                  "exclusions", "twin_dir", "compression_level")
# The folder holding params/ and notebooks/ (:func:`dlrc_lib.core.resources.data_root`: the
# checkout, or the installed package's copy).
PACKAGE_ROOT = data_root()


def display_path(path: str | os.PathLike) -> str:
    """A path as reports show it: relative to the folder holding the package's ``params/`` when
    inside it (the same text on every machine, e.g. ``params/radiomics.yaml``), else as given."""
    try:
        return Path(path).resolve().relative_to(data_root()).as_posix()
    except (ValueError, OSError):
        return str(path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _written(raw: dict, key: str) -> bool:
    obj: Any = raw
    for part in key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return False
        obj = obj[part]
    return True


def resolve_param_path(value: str, *, params_dir: Path, written: bool, must_exist: bool,
                       shared: bool = True) -> str:
    """An absolute path for a path-valued parameter.

    A value the file does not write (the schema's default, e.g. the published values or the
    PyRadiomics settings) names a file of the package itself, wherever the parameter file lives.
    A relative value written in a parameter file resolves against that file's folder; the
    parameter files kept in the package's own ``params/`` folder are written relative to the
    folder holding it (``params/radiomics.yaml``, :func:`~dlrc_lib.core.resources.data_root`),
    and what they make (caches, the twin) goes to the checkout, or to the working directory when
    dlrc is installed (:func:`~dlrc_lib.core.resources.work_root`). For a file that must exist,
    the working directory and the package's files are tried after that folder (``shared``: files
    that come with dlrc, never the study's own data). A path written with Windows backslashes is
    read with ``/``.
    """
    if os.sep == "/" and "\\" in value:
        value = value.replace("\\", "/")
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return str(path)
    own = _inside(params_dir, packaged("params"))
    package_base = data_root() if must_exist else work_root()
    if not written:
        first = package_base if (own or must_exist) else params_dir
        return str(first / path)
    if own:
        candidates = [package_base, params_dir]
    else:
        candidates = [params_dir] + ([Path.cwd(), data_root()] if shared else [])
    if must_exist:
        for base in candidates:
            if (base / path).exists():
                return str((base / path).resolve())
    return str(candidates[0] / path)


def _loc(err: dict) -> str:
    return ".".join(str(p) for p in err["loc"]) or "(top level)"


def load_params(path: str | Path, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate a parameter file; raise :class:`ParamsError` with one clear line.

    Every path-valued key comes back absolute (:func:`resolve_param_path`), so the run, its
    notebooks and every command read the same files whatever the working directory. ``path``
    may also name one of the package's parameter files (``quick``, ``teach``, ``paper``:
    :func:`~dlrc_lib.core.resources.params_file`).
    """
    path = params_file(path)
    if not path.is_file():
        names = ", ".join(n for n in RUN_PARAMS if packaged("params", f"{n}.yaml").is_file())
        raise ParamsError(f"{path}: parameter file not found (name a YAML file, or one of the package's: {names})")
    return _validated(path, read_yaml_mapping(path, "parameter", ParamsError), overrides)


def _validated(path: Path, mapping: dict, overrides: dict[str, Any] | None) -> Params:
    raw = copy.deepcopy(mapping)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    study_raw = raw.get("study") if isinstance(raw.get("study"), dict) else {}
    if study_raw.get("source", "twin") == "twin" and study_raw.get("flow") is not None:
        raise ParamsError(f"{path}: study.flow is a manifest study's flow table; the twin's exclusions are "
                          "study.exclusions (remove study.flow)")
    if study_raw.get("source") == "manifest":
        twin_keys = [f"study.{k}" for k in TWIN_ONLY_KEYS if k in study_raw]
        if twin_keys:
            raise ParamsError(
                f"{path}: {', '.join(twin_keys)}: only the synthetic twin has "
                f"{'these keys' if len(twin_keys) > 1 else 'this key'}; a manifest study takes its patients, "
                "centres and re-segmented cases from the manifest: remove "
                f"{'them' if len(twin_keys) > 1 else 'it'} (`dlrc init DIR` writes a parameter file without twin keys)")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            if err["type"] == "extra_forbidden":
                msgs.append(f"unknown key '{_loc(err)}'")
            else:
                msgs.append(f"key '{_loc(err)}': {err['msg']}")
        raise ParamsError(f"{path}: " + "; ".join(msgs)) from None
    params_dir = path.resolve().parent
    for key in _FILE_KEYS + _OUTPUT_KEYS:
        value = get_dotted(params, key)
        if not value:
            continue
        resolved = resolve_param_path(str(value), params_dir=params_dir, written=_written(raw, key),
                                      must_exist=key in _FILE_KEYS, shared=key in _SHARED_FILE_KEYS)
        written_value = str(value).replace("\\", "/")
        if key == "study.twin_dir" and resolved != written_value and resolved.endswith(written_value):
            # formatted with the run name later: braces in the folder it was resolved against are text
            head = resolved[: -len(written_value)]
            resolved = head.replace("{", "{{").replace("}", "}}") + written_value
        if key in _FILE_KEYS and not Path(resolved).exists():
            where = "" if str(value) == resolved else f" (looked for {resolved})"
            raise ParamsError(f"{path}: key '{key}': file not found: {value}{where}")
        _assign_dotted(params, key, resolved)
    if params.study.source == "manifest" and not params.study.flow and params.study.manifest:
        beside = Path(params.study.manifest).parent / FLOW_FILE  # Fig. 1's flow table beside the manifest
        params.study.flow = str(beside) if beside.is_file() else None
    weights = params.deep.weights
    if weights not in ("auto", "imagenet", "random"):  # a state_dict file or folder
        params.deep.weights = resolve_param_path(weights, params_dir=params_dir, written=True, must_exist=True,
                                                 shared=False)
    params._source = path
    params._raw = raw
    return params


def _assign_dotted(params: BaseModel, key: str, value: Any) -> None:
    parent, _, last = key.rpartition(".")
    setattr(get_dotted(params, parent) if parent else params, last, value)


def get_dotted(params: BaseModel, key: str) -> Any:
    obj: Any = params
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        raw = raw.setdefault(part, {})
    raw[parts[-1]] = value


def flatten(params: Params) -> dict[str, Any]:
    """``{section}_{key}`` -> value, plus the top-level scalars, JSON-friendly."""
    flat: dict[str, Any] = {}
    for name, value in params.model_dump(mode="json").items():
        if isinstance(value, dict) and name in Params.model_fields and issubclass(
            Params.model_fields[name].annotation, Section  # type: ignore[arg-type]
        ):
            for key, sub in value.items():
                flat[f"{name}_{key}"] = sub
        else:
            flat[name] = value
    flat["study_twin_dir"] = str(params.twin_dir)
    return flat


def section_from_flat(section: str, namespace: dict[str, Any]) -> Section:
    """Rebuild a section model from the flat ``<section>_<key>`` names in ``namespace``.

    A notebook calls ``section_from_flat("selection", globals())`` after its parameters
    cell; keys it did not declare take the schema defaults.
    """
    cls = Params.model_fields[section].annotation
    prefix = section + "_"
    values = {k[len(prefix):]: v for k, v in namespace.items() if k.startswith(prefix)}
    values = {k: v for k, v in values.items() if k in cls.model_fields}  # type: ignore[union-attr]
    return cls.model_validate(values)  # type: ignore[union-attr]


def params_from_flat(namespace: dict[str, Any]) -> Params:
    """The typed parameter set of a notebook: every section rebuilt from the flat
    ``<section>_<key>`` names of its parameters cell (:func:`section_from_flat`) and the
    top-level scalars it declares; what it does not declare takes the schema defaults."""
    values: dict[str, Any] = {}
    for name, field in Params.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
            values[name] = section_from_flat(name, namespace)
        elif name in namespace:
            values[name] = namespace[name]
    return Params.model_validate(values)
