"""The radiomics reporting checklists, filled from a finished run.

``reports/<run>/checklist.html`` and ``checklist.csv`` answer, for every item of CLEAR
(58 items, ``params/checklist_clear.yaml``) and for the items of METRICS
(``params/checklist_metrics.yaml``) and the Radiomics Quality Score
(``params/checklist_rqs.yaml``), what the run itself can tell: what it did, with which
parameters, and the table, figure or file that shows it. Everything is derived from the run
folder, read through :class:`dlrc_lib.record.RunRecord`: ``run.json`` (parameters, package versions,
commit, warnings), each notebook's record (``results/*.json``), the
analysed patient table ``study_manifest.csv`` and the artifacts present under ``tables/``,
``figures/`` and ``model/``, plus the PyRadiomics settings file named in the parameters.

Each item gets one status:

* ``yes``: the run did it, and the evidence is linked;
* ``partly``: the run shows part of it; the rest is for the authors (said which);
* ``no``: the run could have done it and did not (e.g. no ICC analysis, no external cohort),
  or its evidence was not produced by this run (a notebook skipped or failed);
* ``authors``: only the study's authors can answer (title, ethics, discussion, ...);
* ``n/a``: does not apply to this pipeline.

Each item the run answers is one row of a table (:data:`CLEAR`, :data:`METRICS`,
:data:`CONDITIONS`, :data:`RQS`): its number, the artifacts that back it and the rule that
answers it, a small function of the run's facts and the evidence present (or a fixed answer).
An item is never marked ``yes`` or ``partly`` without at least one artifact of the run
behind it: when the evidence files are missing, the item becomes ``no`` and names them.
The pages are deterministic (no timestamps): the same run folder gives the same bytes.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
import yaml

from dlrc_lib.core.config import Params, display_path
from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.core.resources import data_root
from dlrc_lib.record import CalibrationRecord, DeepRecord, DlrcRecord, IccRecord, RadiomicsRecord, RunRecord
from dlrc_lib.study.manifest import read_manifest_csv
from dlrc_lib.study.schema import COHORTS

STATUSES = ("yes", "partly", "no", "authors", "n/a")
CHECKLIST_FILES = {
    "CLEAR": "params/checklist_clear.yaml",
    "METRICS": "params/checklist_metrics.yaml",
    "RQS": "params/checklist_rqs.yaml",
}
SCORE_NAMES = ("Rad_score", "DL_score")  # DLRC terms that are image scores, not clinical variables
RAD_RAN = ("tables/radiomics_extraction_summary", "tables/icc_extraction_summary")  # radiomics were extracted


def load_checklist(name: str, root: Path | None = None) -> dict:
    path = (root or data_root()) / CHECKLIST_FILES[name]
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- answers
@dataclass
class Answer:
    status: str
    answer: str
    evidence: list[str] = field(default_factory=list)  # run-relative paths, or text
    points: Optional[int] = None  # RQS only


def _or_nan(value: Any) -> Any:
    return float("nan") if value is None else value


def _join(parts) -> str:
    return "; ".join(p for p in parts if p)


class RunFacts:
    """What a run folder says about the run (read once, queried by the item rules)."""

    def __init__(self, run_dir: Path, params: Params | None = None, root: Path | None = None):
        self.dir = Path(run_dir)
        self.root = root or data_root()
        self.record = RunRecord.load(self.dir) if self.dir.is_dir() else RunRecord(self.dir, None, {})
        self.run: dict = self.record.run.data if self.record.run else {}
        if params is None:
            params = Params.model_validate(self.run.get("params") or {})
        self.params = params
        # each notebook's record; an empty one (every field None) when the notebook recorded none
        self.icc: IccRecord = self.record.icc or IccRecord()
        self.rad: RadiomicsRecord = self.record.radiomics or RadiomicsRecord()
        self.deep: DeepRecord = self.record.deep or DeepRecord()
        self.dlrc: DlrcRecord = self.record.dlrc or DlrcRecord()
        self.cal: CalibrationRecord = self.record.calibration or CalibrationRecord()
        sm = self.dir / "study_manifest.csv"
        self.study: pd.DataFrame | None = read_manifest_csv(sm) if sm.exists() else None
        self.settings: dict | None = self._read_settings()
        self.packages: dict = self.run.get("packages") or {}

    # -- inputs
    def _read_settings(self) -> dict | None:
        name = self.params.radiomics.settings
        for cand in (Path(name), self.root / name):
            if cand.is_file():
                try:
                    return yaml.safe_load(cand.read_text(encoding="utf-8")) or {}
                except yaml.YAMLError:
                    return None
        return None

    def pkg(self, name: str) -> str:
        v = self.packages.get(name)
        return f"{name} {v}" if v else name

    # -- artifacts
    def ev(self, *names: str) -> list[str]:
        """The named artifacts that exist: ``tables/x`` -> its .html (else .csv),
        ``figures/x`` -> its .png, any other name as a path under the run folder."""
        out = []
        for name in names:
            if name.startswith("tables/") and "." not in Path(name).name:
                for ext in ("html", "csv"):
                    if (self.dir / f"{name}.{ext}").exists():
                        out.append(f"{name}.{ext}")
                        break
            elif name.startswith("figures/") and "." not in Path(name).name:
                if (self.dir / f"{name}.png").exists():
                    out.append(f"{name}.png")
            elif (self.dir / name).exists():
                out.append(name)
        return out

    def need(self, required: tuple[str, ...] | str, *extra: str) -> list[str]:
        """:meth:`ev` of ``required`` and ``extra``, or nothing when none of ``required`` exists
        (the claim those files back was not produced by this run)."""
        required = (required,) if isinstance(required, str) else tuple(required)
        return self.ev(*required, *extra) if self.ev(*required) else []

    # -- the study
    def cohort_counts(self) -> dict[str, int]:
        if self.study is None or "cohort" not in self.study:
            return {}
        vc = self.study["cohort"].astype(str).value_counts()
        return {c: int(vc.get(c, 0)) for c in COHORTS}

    def lnm_counts(self, cohort: str) -> tuple[int, int]:
        s = self.study
        if s is None or "lnm" not in s or "cohort" not in s:
            return 0, 0
        sub = s[s["cohort"].astype(str) == cohort]["lnm"].dropna().astype(int)
        return int((sub == 0).sum()), int((sub == 1).sum())

    def centres(self, cohort: str | None = None) -> list[str]:
        s = self.study
        if s is None or "centre" not in s:
            return []
        if cohort is not None and "cohort" in s:
            s = s[s["cohort"].astype(str) == cohort]
        return sorted(map(str, s["centre"].dropna().unique()))

    def manifest_has_cohorts(self) -> bool:
        path = Path(str(self.run.get("study_manifest", "")))
        if not path.is_file():
            return False
        try:
            head = pd.read_csv(path, nrows=100000, usecols=lambda c: c == "cohort")
        except (ValueError, OSError):
            return False
        return "cohort" in head and not head["cohort"].isna().all()

    @property
    def twin(self) -> bool:
        return self.params.study.source == "twin"

    def icc_subset_cohorts(self) -> str:
        s = self.study
        if s is None:
            return ""
        cols = [c for c in s.columns if c.startswith("mask_r2_")]
        if not cols or "cohort" not in s:
            return ""
        sub = s[s[cols].notna().any(axis=1)]
        vc = sub["cohort"].astype(str).value_counts()
        return ", ".join(f"{c} {int(vc[c])}" for c in COHORTS if c in vc)

    def weights_random(self) -> list[str]:
        weights = self.deep.weights or {}
        return sorted(m for m, w in weights.items() if isinstance(w, dict) and w.get("random_fallback"))

    def weights_sources(self) -> str:
        weights = self.deep.weights or {}
        parts = []
        for model, w in sorted(weights.items()):
            if isinstance(w, dict):
                src = w.get("source", "?")
                parts.append(f"{model}: {'random (fallback)' if w.get('random_fallback') else src}")
        return ", ".join(parts)


# ------------------------------------------------------------------------- item rules
Rule = Callable[[RunFacts, list[str]], Answer]  # the run's facts and the item's evidence present -> the answer


@dataclass(frozen=True)
class Item:
    """One item the run answers: its number, the artifacts that back it and the rule that answers it.

    The evidence is :meth:`RunFacts.need` of ``evidence`` and ``also``: the files of both that
    exist, or none when none of ``evidence`` exists (the run did not produce what the item shows).
    """
    number: int
    rule: Rule
    evidence: tuple[str, ...] = ()
    also: tuple[str, ...] = ()

    def answer(self, f: RunFacts) -> Answer:
        return self.rule(f, f.need(self.evidence, *self.also))


@dataclass(frozen=True)
class Fixed:
    """A rule whose answer is the same for every run: only its evidence depends on the run."""
    status: str
    text: str

    def __call__(self, f: RunFacts, ev: list[str]) -> Answer:
        return Answer(self.status, self.text, ev)


@dataclass(frozen=True)
class Both:
    """Two items answered as one: their common status (else ``partly``), both texts, both evidences."""
    first: Item
    second: Item

    def __call__(self, f: RunFacts, ev: list[str]) -> Answer:
        a, b = self.first.answer(f), self.second.answer(f)
        return Answer(a.status if a.status == b.status else "partly", _join([a.answer, b.answer]),
                      list(dict.fromkeys(a.evidence + b.evidence)))


@dataclass(frozen=True)
class Shown:
    """``yes`` (with ``points``, RQS) when the run shows the item's evidence, else ``no`` (no points)."""
    text: str
    missing: str
    points: Optional[int] = None

    def __call__(self, f: RunFacts, ev: list[str]) -> Answer:
        if not ev:
            return Answer("no", self.missing, [], None if self.points is None else 0)
        return Answer("yes", self.text, ev, self.points)


@dataclass(frozen=True)
class TwinOnly:
    """``yes`` on the synthetic twin, whose data the run made (``text``, with ``{seed}``); else the
    authors' to answer."""
    text: str
    authors: str

    def __call__(self, f: RunFacts, ev: list[str]) -> Answer:
        if f.twin:
            return Answer("yes", self.text.format(seed=f.params.seed), ev)
        return Answer("authors", self.authors)


# texts shared by several rules
def _settings_text(f: RunFacts) -> tuple[str, dict, dict, dict]:
    s = f.settings or {}
    return display_path(f.params.radiomics.settings), s.get("setting") or {}, s.get("imageType") or {}, s.get("featureClass") or {}


def _no_settings(name: str) -> Answer:
    return Answer("no", f"PyRadiomics settings file {name} not readable")


def _harmonisation(f: RunFacts) -> str:
    h = f.params.harmonisation
    if h.mode == "none":
        return "no ComBat harmonisation (harmonisation.mode: none)"
    how = {"all": "fitted on all cohorts together (label-free, as the paper)",
           "train_reference": "fitted on the training cohort only; other cohorts' scanners adjusted with "
                              "the training estimates"}[h.mode]
    return (f"ComBat ({'parametric' if h.parametric else 'non-parametric'} empirical Bayes, batch = {h.batch}) "
            f"{how}")


def _cohorts_text(f: RunFacts) -> str:
    cc = f.cohort_counts()
    parts = []
    for c in COHORTS:
        if cc.get(c):
            neg, pos = f.lnm_counts(c)
            centres = f.centres(c)
            parts.append(f"{c} {cc[c]} (LNM+ {pos}, LNM- {neg}; centre{'s' if len(centres) > 1 else ''} "
                         f"{', '.join(centres)})")
    return "; ".join(parts)


def _split_rule(f: RunFacts) -> str:
    if f.manifest_has_cohorts():
        return "cohorts as given in the manifest's cohort column"
    st = f.params.study
    return (f"patients of centre(s) {', '.join(st.internal_centres)} split {st.train_fraction:.0%} training / "
            f"rest internal validation, stratified by LNM, seeded (seed {f.params.seed}); all other centres "
            f"form the external cohort")


def _funnel_text(funnel: list) -> str:
    steps = []
    for row in funnel:
        if isinstance(row, dict):
            rule = row.get("rule")
            steps.append(f"{row.get('step', '?')}{f' ({rule})' if rule else ''}: {row.get('n_features', '?')}")
    return " -> ".join(steps)


def _refits(oc: dict) -> str:
    failed = oc.get("failed") or 0
    return f"{oc['B']} refits" + (f", {failed} of them not converged and left out" if failed else "")


METRIC_TEXT = ("AUC with 95 % CI, accuracy, sensitivity, specificity, PPV and NPV at the cut-off chosen on the "
               "training cohort, per cohort")

# evidence shared by items of several checklists
ICC_EVIDENCE = ("tables/icc_kept_counts", "figures/icc_violin", "figures/icc_histogram", "tables/icc_excluded",
                "tables/dl_icc_summary")
SPLIT_EVIDENCE = ("tables/study_cohorts", "tables/table1_lnm_rate", "study_manifest.csv")
CODE_EVIDENCE = ("run.json", "notebooks")
MODEL_EVIDENCE = ("model/dlrc_model.json",)
VALIDATION_EVIDENCE = ("tables/table2", "tables/table2_performance")


# rules shared by the checklists ------------------------------------------------------
def _icc(f: RunFacts, ev: list[str]) -> Answer:
    """Segmentation reliability (CLEAR 31, METRICS 14, RQS 2)."""
    cases = f.icc.icc_cases
    if not cases:
        return Answer("no", "no inter-/intra-observer reproducibility analysis in this run "
                            "(notebook 02_icc did not run or computed no ICC)")
    form, thr = f.icc.form, f.icc.threshold
    n, kept = f.icc.n_features, f.icc.n_kept
    where = f.icc_subset_cohorts()
    text = (f"{form} inter-observer (reader 1 vs reader 2) and intra-observer (reader 1 repeated) "
            f"on {cases} re-segmented patients{f' ({where})' if where else ''}; features with both ICCs > {thr} "
            f"kept: {kept} of {n}; median ICC inter {_or_nan(f.icc.median_icc_inter):.2f}, "
            f"intra {_or_nan(f.icc.median_icc_intra):.2f}")
    if thr is not None and float(thr) <= 0:
        return Answer("partly", text + "; the ICC threshold is 0, so no feature is removed for poor reproducibility", ev)
    return Answer("yes", text, ev)


def _split(f: RunFacts, ev: list[str]) -> Answer:
    """How the patients were split into cohorts (CLEAR 15, METRICS 18)."""
    if f.study is None:
        return Answer("no", "no analysed patient table in the run folder")
    return Answer("yes", f"patient-level split: {_split_rule(f)}. {_cohorts_text(f)}. Feature selection, "
                         f"standardisation and model fitting use the training cohort only (harmonisation: CLEAR 32)",
                  ev)


def _code(f: RunFacts, ev: list[str]) -> Answer:
    """The code that ran (CLEAR 56, METRICS 29, RQS 16); without a commit, ``run.json`` shows none."""
    commit = f.run.get("git_commit")
    if not commit:
        version = (f.run.get("packages") or {}).get("dlrc")
        where = f"as the installed package dlrc {version}" if f.run.get("dlrc_installed") else "outside a git checkout"
        return Answer("partly", f"the code (dlrc_lib, notebooks) ran {where}: no commit recorded",
                      f.ev("notebooks"))
    dirty = f.run.get("git_dirty")
    return Answer("partly" if dirty else "yes",
                  f"dlrc_lib and the notebooks at commit {commit[:12]}"
                  + (" WITH UNCOMMITTED CHANGES" if dirty else "")
                  + "; the executed notebooks are in the run folder", ev)


MODEL_FILE = Shown("the DLRC model with its preprocessing, ComBat estimates, coefficients and cut-off as one JSON "
                   "file", "no exported model in this run")  # CLEAR 57, METRICS 30


# CLEAR rules -----------------------------------------------------------------------
def _eligibility(f: RunFacts, ev: list[str]) -> Answer:
    ex = f.params.study.exclusions
    text = (f"the patient flow (Fig. 1) shows {sum(ex.values())} exclusions in {len(ex)} group(s) "
            f"(study.exclusions) and the analysed patients" if ex else "the patient flow (Fig. 1)")
    return Answer("partly", text + "; the inclusion/exclusion criteria and the selection process are the authors'", ev)


def _protocol(f: RunFacts, ev: list[str]) -> Answer:
    n_sc = f.study["scanner"].nunique() if f.study is not None and "scanner" in f.study else 0
    text = (f"{n_sc} scanners; per scanner the patients, voxel spacing and grid of each sequence (as read from "
            f"the images)")
    if f.ev("tables/tableS1_scanners"):
        text += "; Table S1: each scanner's acquisition parameters as given with the study"
    return Answer("partly", f"{text}; sequences {', '.join(f.params.radiomics.sequences)}; the rest of the "
                            f"acquisition protocol (contrast timing, patient preparation) is the authors'", ev)


def _non_radiomic(f: RunFacts, ev: list[str]) -> Answer:
    cands = f.dlrc.clinical_candidates
    excl = f.params.dlrc.exclude_clinical
    text = (f"clinical variables of Table 1 screened univariately in the training cohort (p < {f.params.dlrc.clinical_p})"
            + (f"; candidates: {', '.join(map(str, cands))}" if cands else "")
            + (f"; never candidates: {', '.join(excl)}" if excl else "")
            + "; the standardised radiological assessment (SRA) of the largest node is the non-radiomic comparator")
    return Answer("yes", text, ev)


def _operators(f: RunFacts, ev: list[str]) -> Answer:
    sub = f.icc.icc_subset
    text = "every patient's model inputs use reader 1's masks"
    if sub:
        text += f"; reader 2 and reader 1's repeat outlined {sub} patients for the reproducibility analysis"
    return Answer("partly", text + "; the readers' number and experience are the authors'", ev)


def _preprocessing(f: RunFacts, ev: list[str]) -> Answer:
    name, s, _, _ = _settings_text(f)
    if f.settings is None:
        return _no_settings(name)
    keys = ["normalize", "normalizeScale", "removeOutliers", "voxelArrayShift", "resampledPixelSpacing",
            "interpolator", "preCrop", "padDistance"]
    rad = ", ".join(f"{k} {s[k]}" for k in keys if k in s)
    d = f.params.deep
    deep = (f"deep inputs: crop around the tumour (margin {d.margin}), resampled to {d.input_size} px (2D) / "
            f"{' x '.join(map(str, d.shape_3d))} (3D), intensities clipped at percentiles "
            f"{d.clip_percentiles[0]}-{d.clip_percentiles[1]}, ImageNet mean/SD")
    return Answer("yes", f"{f.pkg('pyradiomics')} settings ({name}): {rad}; {deep}; feature harmonisation: "
                         f"{_harmonisation(f)}", ev)


def _resampling(f: RunFacts, ev: list[str]) -> Answer:
    name, s, _, _ = _settings_text(f)
    if f.settings is None:
        return _no_settings(name)
    if "resampledPixelSpacing" in s:
        text = (f"radiomics: resampled to {s['resampledPixelSpacing']} mm (x, y, z) with "
                f"{s.get('interpolator', 'sitkBSpline (PyRadiomics default)')}")
    else:
        text = "radiomics: no resampling (images analysed on their own grids)"
    return Answer("yes", text + "; deep inputs: bilinear (2D) / trilinear (3D) to the network input size", ev)


def _discretisation(f: RunFacts, ev: list[str]) -> Answer:
    name, s, it, _ = _settings_text(f)
    if f.settings is None:
        return _no_settings(name)
    if "binCount" in s:
        text = f"fixed bin count {s['binCount']}"
    else:
        text = f"fixed bin width {s.get('binWidth', 25)}" + ("" if "binWidth" in s else " (PyRadiomics default)")
        if s.get("normalize"):
            text += f" on intensities normalised (z-score x {s.get('normalizeScale', 1)})"
    overrides = [f"{k}: binWidth {v['binWidth']}" for k, v in it.items() if isinstance(v, dict) and "binWidth" in v]
    if overrides:
        text += f"; per image type {', '.join(overrides)}"
    return Answer("yes", text, ev)


def _image_types(f: RunFacts, ev: list[str]) -> Answer:
    name, _, it, _ = _settings_text(f)
    if not it:
        return Answer("no", f"no image types readable from {name}")
    parts = [k + (f" ({', '.join(f'{a} {b}' for a, b in v.items())})" if isinstance(v, dict) and v else "")
             for k, v in it.items()]
    return Answer("yes", "; ".join(parts), ev)


def _extraction(f: RunFacts, ev: list[str]) -> Answer:
    d = f.params.deep
    parts = []
    if f.ev(*RAD_RAN):
        parts.append(f"hand-crafted: {f.pkg('pyradiomics')} (3D, settings {display_path(f.params.radiomics.settings)})")
    if f.deep.weights is not None:
        parts.append(f"deep: frozen torchvision ResNets ({', '.join(d.models)}; {f.pkg('torchvision')}), 2048 "
                     f"global-average-pooling features per sequence; 3D models are the 2D networks inflated (I3D)")
        random = f.weights_random()
        if random:
            parts.append(f"WARNING: {', '.join(random)} used randomly initialised weights (ImageNet weights "
                         f"unavailable), not pre-trained networks")
        elif f.weights_sources():
            parts.append(f"weights: {f.weights_sources()}")
    return Answer("yes" if len(parts) > 1 else "partly", "; ".join(parts), ev)


def _classes(f: RunFacts, ev: list[str]) -> Answer:
    name, _, _, fc = _settings_text(f)
    if not fc:
        return Answer("no", f"no feature classes readable from {name}")
    return Answer("yes", ", ".join(k + (f" ({', '.join(v)})" if v else " (all)") for k, v in fc.items())
                  + "; shape features on the original image only", ev)


def _n_features(f: RunFacts, ev: list[str]) -> Answer:
    n = f.icc.n_features
    seqs = f.params.radiomics.sequences
    text = (f"radiomics: {n} features over {len(seqs)} sequences ({', '.join(seqs)})" if n else "")
    if f.deep.weights is not None:
        text = _join([text, f"deep: 2048 per sequence and model, {2048 * len(seqs)} per model"])
    return Answer("yes", text, ev)


def _defaults(f: RunFacts, ev: list[str]) -> Answer:
    name = display_path(f.params.radiomics.settings)
    if f.settings is None:
        return _no_settings(name)
    return Answer("yes", f"every PyRadiomics setting not written in {name} is {f.pkg('pyradiomics')}'s default; "
                         f"every pipeline parameter is in run.json (params)", ev)


def _missing(f: RunFacts, ev: list[str]) -> Answer:
    lost = f.dlrc.lost_patients or []
    return Answer("yes", f"patients without features are listed with the reason, never dropped silently; "
                         f"{len(lost)} patient(s) without a DLRC prediction; missing clinical values are refused by "
                         f"validation", ev)


def _imbalance(f: RunFacts, ev: list[str]) -> Answer:
    parts = []
    for c in COHORTS:
        neg, pos = f.lnm_counts(c)
        if neg + pos:
            parts.append(f"{c} {pos}/{neg + pos} LNM+ ({100 * pos / (neg + pos):.0f} %)")
    if not parts:
        return Answer("no", "no analysed patient table in the run folder")
    return Answer("yes", "; ".join(parts) + "; no over- or under-sampling: the models are fitted on the "
                         "training cohort as it is", ev)


def _scaling(f: RunFacts, ev: list[str]) -> Answer:
    return Answer("yes", f"{_harmonisation(f)}; then each feature standardised with the training cohort's "
                         f"mean and SD (the same values applied to the validation cohorts)", ev)


def _reduction(f: RunFacts, ev: list[str]) -> Answer:
    funnel = f.rad.funnel
    if not funnel:
        return Answer("no", "no feature selection in this run (notebook 03 did not run)")
    return Answer("yes", f"radiomics, on the training cohort only: {_funnel_text(funnel)}; the deep features of "
                         f"each model go through the same steps", ev)


def _algorithm(f: RunFacts, ev: list[str]) -> Answer:
    terms = f.dlrc.dlrc_terms
    text = (f"logistic regression for every model ({f.pkg('statsmodels')}); LASSO ({f.pkg('scikit-learn')}); "
            f"radiomics score, DL score (best of {len(f.params.deep.models)} ResNet feature models) and "
            f"clinical variables fused by stepwise logistic regression")
    if terms:
        text += f"; DLRC terms: {', '.join(map(str, terms))}"
    return Answer("yes", text, ev)


def _tuning(f: RunFacts, ev: list[str]) -> Answer:
    sel = f.params.selection
    lasso = next((row.get("rule") for row in f.rad.funnel or [] if row.get("step") == "LASSO"), None)
    text = (f"LASSO penalty by stratified cross-validation in the training cohort ("
            f"{lasso or f'{sel.lasso_rule} rule, {sel.lasso_folds}-fold CV'}; seed {f.params.seed}); ResNets not "
            f"trained: frozen, used as feature extractors (no augmentation, no fine-tuning)")
    if f.weights_random():
        text += f"; random initialisation for {', '.join(f.weights_random())} (ImageNet weights unavailable)"
    return Answer("yes", text, ev)


def _confounders(f: RunFacts, ev: list[str]) -> Answer:
    return Answer("partly", f"scanner effects: {_harmonisation(f)}, checked by how well the scanner can be "
                            f"predicted from the features; clinical characteristics per cohort in Table 1; other "
                            f"confounders are the authors'", ev)


def _selection(f: RunFacts, ev: list[str]) -> Answer:
    rule = f.deep.best_model_rule_text or f.params.deep.best_model_rule
    return Answer("yes", f"features: LASSO ({f.params.selection.lasso_rule} rule) then backward stepwise AIC; "
                         f"best DL model: {rule}; DLRC terms: stepwise AIC on the training cohort", ev)


def _testing(f: RunFacts, ev: list[str]) -> Answer:
    cc = f.cohort_counts()
    internal, external = cc.get("internal", 0), cc.get("external", 0)
    if not internal and not external:
        return Answer("no", "no validation cohort: the models are only evaluated on the training cohort", ev)
    parts = []
    if internal:
        parts.append(f"internal validation (held-out patients of centre(s) {', '.join(f.centres('internal'))}, "
                     f"n = {internal})")
    if external:
        parts.append(f"external validation (centre(s) {', '.join(f.centres('external'))}, n = {external})")
    else:
        parts.append("no external cohort: no patient from another institution")
    return Answer("yes" if external else "partly", "; ".join(parts), ev)


def _uncertainty(f: RunFacts, ev: list[str]) -> Answer:
    c, d = f.params.calibration, f.params.decision_curve
    parts = ["95 % CIs of every AUC and proportion"]
    if c.bootstrap:
        parts.append(f"optimism-corrected calibration ({c.bootstrap} bootstrap refits)")
    if d.bootstrap:
        parts.append(f"{d.band_level:.0%} bootstrap bands of the decision curve ({d.bootstrap} resamples)")
    if not f.ev("tables/calibration_optimism_summary"):
        parts = parts[:1] + parts[2:]
    if not f.ev("figures/fig6_decision_curve"):
        parts = [p for p in parts if "decision curve" not in p]
    return Answer("yes", "; ".join(parts), ev)


def _comparison(f: RunFacts, ev: list[str]) -> Answer:
    parts = []
    if f.ev("tables/table4"):
        parts.append("paired DeLong tests between the models' AUCs (Table 4)")
    if f.ev("tables/sra_mcnemar"):
        parts.append(f"McNemar's test of DLRC vs SRA (method {f.params.sra.mcnemar_method})")
    parts.append(f"statistics implemented in dlrc_lib (checked against R), {f.pkg('scipy')}")
    return Answer("yes", "; ".join(parts), ev)


def _settings_shared(f: RunFacts, ev: list[str]) -> Answer:
    return Answer("yes", f"PyRadiomics settings {display_path(f.params.radiomics.settings)} and every parameter of the run "
                         f"(run.json, with the SHA-256 of each input file)", ev)


# METRICS rules ---------------------------------------------------------------------
def _multicentre(f: RunFacts, ev: list[str]) -> Answer:
    centres = f.centres()
    if not centres:
        return Answer("no", "no analysed patient table in the run folder")
    return Answer("yes" if len(centres) > 1 else "no", f"{len(centres)} centre(s): {', '.join(centres)}", ev)


def _software(f: RunFacts, ev: list[str]) -> Answer:
    v = f.packages.get("pyradiomics")
    if not v:
        return Answer("no", "PyRadiomics version not recorded")
    return Answer("yes", f"PyRadiomics {v}, an open-source extractor (its deviations from the IBSI definitions are "
                         f"documented by PyRadiomics); the version is recorded in run.json", ev)


def _dimensionality(f: RunFacts, ev: list[str]) -> Answer:
    neg, pos = f.lnm_counts("train")
    selected = f.rad.selected or []
    terms = f.dlrc.dlrc_terms or []
    if not (neg + pos) or not terms:
        return Answer("no", "no final model in this run")
    events = min(neg, pos)
    return Answer("partly", f"training cohort {neg + pos} patients, {events} in the smaller class; "
                            f"{len(selected)} radiomics features in the radiomics score; {len(terms)} terms in "
                            f"the DLRC model: {events / len(terms):.1f} events per term; whether this is "
                            f"appropriate is the authors' judgement", ev)


def _partitioning(f: RunFacts, ev: list[str]) -> Answer:
    split = _split(f, ev)
    if split.status == "no":
        return split
    if f.params.harmonisation.mode == "all":
        return Answer("partly", split.answer + "; but ComBat is fitted on all cohorts together (label-free), "
                                               "so the validation cohorts' features inform the harmonisation",
                      split.evidence)
    return Answer("yes", split.answer + f"; {_harmonisation(f)}", split.evidence)


def _calibration(f: RunFacts, ev: list[str]) -> Answer:
    if not f.cal.hosmer_lemeshow:
        return Answer("no", "no calibration analysis in this run (notebook 06 did not run)")
    text = f"Hosmer-Lemeshow test ({f.params.calibration.groups} groups) and calibration curves per cohort"
    if f.params.calibration.bootstrap:
        text += f"; optimism-corrected calibration ({f.params.calibration.bootstrap} bootstrap refits)"
    return Answer("yes", text, ev)


def _uniparametric(f: RunFacts, ev: list[str]) -> Answer:
    return Answer("no", f"features of {len(f.params.radiomics.sequences)} sequences are pooled; no "
                        f"single-sequence model is compared")


def _internal(f: RunFacts, ev: list[str]) -> Answer:
    n = f.cohort_counts().get("internal", 0)
    if not n:
        return Answer("no", "no internal validation cohort")
    return Answer("yes", f"internal validation cohort, n = {n}", ev)


def _external(f: RunFacts, ev: list[str]) -> Answer:
    n = f.cohort_counts().get("external", 0)
    if not n:
        return Answer("no", "no external validation cohort")
    return Answer("yes", f"external validation cohort, n = {n}, centre(s) {', '.join(f.centres('external'))}", ev)


# RQS rules -------------------------------------------------------------------------
def _rqs_segmentations(f: RunFacts, ev: list[str]) -> Answer:
    a = _icc(f, ev)
    return Answer(a.status, a.answer, a.evidence, 1 if a.status == "yes" else 0)


def _rqs_reduction(f: RunFacts, ev: list[str]) -> Answer:
    if f.rad.funnel:
        return Answer("yes", "feature reduction on the training cohort: " + _funnel_text(f.rad.funnel),
                      ev, 3)
    return Answer("no", "no feature reduction in this run", [], -3)


def _rqs_non_radiomics(f: RunFacts, ev: list[str]) -> Answer:
    if f.dlrc.dlrc_terms is None:
        return Answer("no", "no DLRC model in this run", [], 0)
    terms = [t for t in f.dlrc.dlrc_terms if t not in SCORE_NAMES]
    if terms:
        return Answer("yes", f"clinical terms in the multivariable DLRC model: {', '.join(terms)}", ev, 1)
    return Answer("no", "the DLRC model kept no non-radiomic term", ev, 0)


def _rqs_cutoff(f: RunFacts, ev: list[str]) -> Answer:
    if not f.dlrc.cutoffs:
        return Answer("no", "no cut-off analysis in this run", [], 0)
    return Answer("yes", "cut-offs fixed on the training cohort (Youden) and applied unchanged to the validation "
                         "cohorts", ev, 1)


def _optimism_point(f: RunFacts, ev: list[str], text: str, what: str, shown_by: str) -> Answer:
    """RQS 9 and 10: one point for the statistic, one more when it is also corrected for optimism by
    bootstrap refits (``shown_by`` then joins the evidence)."""
    pts = 1
    oc = f.cal.optimism_corrected or {}
    if oc.get("B"):
        pts += 1
        text += f"; bootstrap optimism-corrected {what} ({_refits(oc)})"
        ev = ev + f.ev(shown_by)
    return Answer("yes", text, ev, pts)


def _rqs_discrimination(f: RunFacts, ev: list[str]) -> Answer:
    if not ev:
        return Answer("no", "no discrimination statistics in this run", [], 0)
    return _optimism_point(f, ev, "AUC with 95 % CI and DeLong p-values", "AUC", "tables/calibration_optimism_summary")


def _rqs_calibration(f: RunFacts, ev: list[str]) -> Answer:
    if not f.cal.hosmer_lemeshow:
        return Answer("no", "no calibration statistics in this run", [], 0)
    return _optimism_point(f, ev, "Hosmer-Lemeshow test with p-value", "calibration",
                           "figures/fig5s_calibration_optimism")


def _rqs_validation(f: RunFacts, ev: list[str]) -> Answer:
    cc = f.cohort_counts()
    ext = f.centres("external") if cc.get("external") else []
    if len(ext) >= 3:
        return Answer("yes", f"external validation on {len(ext)} other institutes ({', '.join(ext)})", ev, 5)
    if len(ext) == 2:
        return Answer("yes", f"external validation on 2 other institutes ({', '.join(ext)})", ev, 4)
    if len(ext) == 1:
        return Answer("yes", f"external validation on another institute ({ext[0]})", ev, 3)
    if cc.get("internal"):
        return Answer("partly", "validation on held-out patients of the same institute(s) only", ev, 2)
    return Answer("no", "no validation cohort", [], -5)


def _rqs_open_science(f: RunFacts, ev: list[str]) -> Answer:
    code = _code(f, ev)
    pts = 1 if code.status == "yes" else 0
    parts = [code.answer]
    if f.twin:
        pts += 2
        parts.append("synthetic scans and segmentations regenerated from the parameters")
    else:
        parts.append("sharing the scans, segmentations and features is the authors' decision")
    return Answer("partly", "; ".join(parts) + "; publishing is the authors' step", code.evidence, pts)


# --------------------------------------------------------------------------- the tables
CLEAR: tuple[Item, ...] = (
    Item(11, _eligibility, ("figures/fig1_flow",)),
    Item(12, Fixed("no", "the run draws no flowchart of the technical pipeline; its selection funnels show the "
                         "feature-selection steps"), ("figures/radiomics_selection_funnel",)),
    Item(13, TwinOnly("synthetic twin study generated by dlrc synth from the run's parameters (seed {seed}); no "
                      "patient data", "study manifest given by the authors; its source (private/public) is theirs to "
                                      "state"), ("run.json", "tables/study_centres_scanners")),
    Item(15, _split, SPLIT_EVIDENCE),
    Item(16, _protocol, ("tables/study_acquisition", "tables/tableS1_scanners"), ("tables/study_centres_scanners",)),
    Item(17, _non_radiomic, ("tables/dlrc_clinical_screening",), ("tables/table1",)),
    Item(19, Fixed("partly", "tumour outlines come with the study (one mask per sequence and patient); the figure "
                             "shows them; deep 2D inputs use the slice with the largest tumour area, 3D inputs the "
                             "tumour box; the segmentation software and rules are the authors'"),
         ("figures/figS1_segmentations",), ("figures/fig_dl_inputs",)),
    Item(20, _operators, ("tables/icc_kept_counts", "study_manifest.csv")),
    Item(21, _preprocessing, RAD_RAN, ("run.json",)),
    Item(22, _resampling, RAD_RAN, ("run.json",)),
    Item(23, _discretisation, RAD_RAN, ("run.json",)),
    Item(24, _image_types, RAD_RAN, ("run.json",)),
    Item(25, _extraction, RAD_RAN + ("results/04_deep_learning.json",), ("figures/fig_dl_inputs",)),
    Item(26, _classes, RAD_RAN),
    Item(27, _n_features, RAD_RAN + ("results/04_deep_learning.json",), ("tables/icc_kept_counts",)),
    Item(28, _defaults, RAD_RAN, ("run.json",)),
    Item(29, _missing, ("tables/radiomics_lost_patients", "tables/radiomics_excluded_patients"),
         ("tables/radiomics_failures_all",)),
    Item(30, _imbalance, ("tables/table1_lnm_rate", "tables/study_cohorts")),
    Item(31, _icc, ICC_EVIDENCE),
    Item(32, _scaling, ("tables/radiomics_batch_predictability", "figures/figS2_radiomics_pca_combat"),
         ("figures/figS3_dl_pca_combat", "run.json")),
    Item(33, _reduction, ("tables/radiomics_selection_funnel", "figures/radiomics_selection_funnel",
                          "figures/radiomics_lasso_cv", "tables/dl_selection_funnel")),
    Item(34, _algorithm, ("tables/dlrc_coefficients",),
         ("tables/tableS2_radiomics_features", "tables/dl_selected_features", "model/dlrc_model.json")),
    Item(35, _tuning, ("figures/radiomics_lasso_cv", "tables/dl_selection_funnel")),
    Item(36, _confounders, ("tables/radiomics_batch_predictability",),
         ("figures/figS2_radiomics_pca_combat", "figures/figS3_dl_pca_combat", "tables/table1")),
    Item(37, _selection, ("tables/dlrc_stepwise_path",), ("tables/table3", "tables/radiomics_selection_funnel")),
    Item(38, _testing, VALIDATION_EVIDENCE, ("figures/fig4_roc",)),
    Item(39, Fixed("yes", METRIC_TEXT + "; the rationale for the metrics is the authors'"), VALIDATION_EVIDENCE,
         ("tables/table3",)),
    Item(40, _uncertainty, ("tables/table2_performance",),
         ("tables/calibration_optimism_summary", "figures/fig6_decision_curve", "figures/fig5_calibration")),
    Item(41, _comparison, ("tables/table4", "tables/sra_mcnemar"), ("tables/table4_delong_all",)),
    Item(42, Fixed("yes", "SRA (radiological assessment) and the combined deep-learning + radiomics + clinical "
                          "model (DLRC) compared; clinical utility by decision curve analysis"),
         ("tables/table2", "tables/table5_sra_subgroups"), ("figures/fig6_decision_curve",)),
    Item(43, Fixed("partly", "nomogram of the DLRC model, coefficients and the selected features' distributions "
                             "and correlations; no saliency or attribution maps for the deep features"),
         ("figures/fig3_nomogram",),
         ("tables/dlrc_coefficients", "figures/figS4_radiomics_violin", "figures/figS5_radiomics_heatmap")),
    Item(44, Fixed("yes", "clinical characteristics per cohort and LNM status with tests (Table 1)"),
         ("tables/table1",), ("tables/table1_lnm_rate",)),
    Item(45, Fixed("yes", "patient flow with exclusions and cohorts (Fig. 1)"), ("figures/fig1_flow",)),
    Item(46, Fixed("yes", "reproducible features per class and sequence, selected features with coefficients, "
                          "their distributions by LNM and correlations"),
         ("tables/tableS2_radiomics_features",),
         ("tables/icc_kept_counts", "tables/dl_selected_features", "figures/figS4_radiomics_violin",
          "figures/figS5_radiomics_heatmap", "figures/figS6_dl_violin", "figures/figS7_dl_heatmap")),
    Item(47, Fixed("yes", "performance per cohort (training, internal, external), ROC curves, calibration"),
         ("tables/table2",), ("tables/table3", "figures/fig4_roc", "figures/fig5_calibration")),
    Item(48, Fixed("yes", "SRA vs radiomics, DL and DLRC per cohort with CIs, DeLong p-values, confusion counts, "
                          "subgroups by node size, net benefit"),
         ("tables/table2",), ("tables/table4", "tables/table5_counts", "tables/table2_sra",
                              "figures/fig6_decision_curve")),
    Item(53, TwinOnly("the synthetic images and masks are regenerated by dlrc synth with the run's parameters "
                      "(seed {seed})", "whether the images and segmentations are shared is the authors' decision"),
         ("run.json",)),
    Item(54, Fixed("partly", "the run folder holds every patient's scores and predictions; the full feature "
                             "tables stay in the feature cache; publishing them is the authors' decision"),
         ("data/rad_score.parquet", "data/dl_scores.parquet", "data/predictions.parquet")),
    Item(55, _settings_shared, ("run.json",)),
    Item(56, _code, CODE_EVIDENCE),
    Item(57, MODEL_FILE, MODEL_EVIDENCE),
    Item(58, Shown("dlrc predict --model model/dlrc_model.json --manifest NEW.csv scores new patients from their "
                   "images", "no exported model in this run"), MODEL_EVIDENCE),
)
_CLEAR = {item.number: item for item in CLEAR}


def _as_clear(number: int, clear: int) -> Item:
    """A METRICS item answered as CLEAR item ``clear``."""
    return replace(_CLEAR[clear], number=number)


METRICS: tuple[Item, ...] = (
    Item(4, _multicentre, ("tables/study_centres_scanners", "study_manifest.csv")),
    _as_clear(6, 16),
    _as_clear(8, 19),
    Item(10, Fixed("partly", "every patient's model inputs, validation cohorts included, use reader 1's masks; "
                             "who reader 1 is, is the authors' to state"), ("study_manifest.csv",)),
    Item(11, Both(_CLEAR[21], _CLEAR[22])),
    Item(12, _software, ("run.json",)),
    Item(13, Both(_CLEAR[24], _CLEAR[28])),
    Item(14, _icc, ICC_EVIDENCE),
    _as_clear(15, 33),
    Item(16, _dimensionality, ("tables/tableS2_radiomics_features", "tables/dlrc_coefficients")),
    Item(17, Fixed("n/a", "no end-to-end deep learning: frozen networks are feature extractors; their features "
                          "pass the same ICC filter"), ("tables/dl_icc_summary",)),
    Item(18, _partitioning, SPLIT_EVIDENCE),
    _as_clear(19, 36),
    Item(20, Fixed("yes", METRIC_TEXT + "; confusion counts for SRA and DLRC"),
         ("tables/table2_performance", "tables/table2_sra", "tables/table5_counts")),
    _as_clear(21, 40),
    Item(22, _calibration, ("figures/fig5_calibration", "tables/calibration_hosmer_lemeshow",
                            "figures/fig5s_calibration_optimism")),
    Item(23, _uniparametric),
    _as_clear(24, 42),
    Item(25, Fixed("partly", "every model is a logistic regression; decision curves compare with treating all and "
                             "none; no no-information-rate baseline is tested"), ("figures/fig6_decision_curve",)),
    Item(26, _internal, VALIDATION_EVIDENCE),
    Item(27, _external, VALIDATION_EVIDENCE),
    _as_clear(28, 53),
    Item(29, _code, CODE_EVIDENCE),
    Item(30, MODEL_FILE, MODEL_EVIDENCE),
)

# METRICS' conditions: do the items apply to the study at all?
CONDITIONS: tuple[Item, ...] = (
    Item(1, Fixed("yes", "tumour masks for every sequence"), ("study_manifest.csv",), ("figures/figS1_segmentations",)),
    Item(2, Fixed("no", "masks come with the study; the run does no automated segmentation")),
    Item(3, Fixed("yes", "PyRadiomics features"), RAD_RAN),
    Item(4, Fixed("yes", "feature tables and clinical variables"), ("tables/table1",) + RAD_RAN),
    Item(5, Fixed("no", "deep networks are frozen feature extractors, not end-to-end models")),
)

RQS: tuple[Item, ...] = (
    Item(2, _rqs_segmentations, ICC_EVIDENCE),
    Item(5, _rqs_reduction, ("tables/radiomics_selection_funnel",)),
    Item(6, _rqs_non_radiomics, ("tables/dlrc_coefficients",)),
    Item(8, _rqs_cutoff, ("tables/table2_performance",)),
    Item(9, _rqs_discrimination, ("tables/table2_performance", "tables/table4")),
    Item(10, _rqs_calibration, ("tables/calibration_hosmer_lemeshow", "figures/fig5_calibration")),
    Item(12, _rqs_validation, VALIDATION_EVIDENCE),
    Item(13, Shown("compared with the standardised radiological assessment (SRA) of the nodes",
                   "no comparison with the radiological assessment in this run", 2),
         ("tables/table5_sra_subgroups", "tables/table2_sra", "tables/sra_mcnemar")),
    Item(14, Shown("decision curve analysis (net benefit, interventions avoided)",
                   "no decision curve analysis in this run", 2),
         ("figures/fig6_decision_curve", "tables/decision_curve_net_benefit")),
    Item(16, _rqs_open_science, CODE_EVIDENCE),
)

ITEMS: dict[str, tuple[Item, ...]] = {"CLEAR": CLEAR, "METRICS": METRICS, "RQS": RQS}


# ------------------------------------------------------------------------------ fill
def _checked(a: Answer, f: RunFacts) -> Answer:
    if a.status not in STATUSES:
        raise ValueError(f"checklist: unknown status {a.status!r}")
    if a.status in ("yes", "partly") and not a.evidence:
        return Answer("no", f"its evidence was not produced by this run (it would show: {a.answer})", [],
                      0 if a.points is not None else None)
    return a


def fill(run_dir: str | Path, params: Params | None = None, root: Path | None = None) -> pd.DataFrame:
    """One row per checklist item: checklist, number, section, item, status, answer, evidence, points."""
    facts = RunFacts(Path(run_dir), params, root)
    rows = []
    for name in ("CLEAR", "METRICS", "RQS"):
        spec = load_checklist(name, facts.root)
        items = {item.number: item for item in ITEMS[name]}
        if name == "METRICS":
            for cond in CONDITIONS:
                a = _checked(cond.answer(facts), facts)
                c = next(c for c in spec["conditions"] if c["number"] == cond.number)
                rows.append(dict(checklist=name, number=f"C{cond.number}", section=c["category"], item=c["condition"],
                                 who="run", status=a.status, answer=a.answer, evidence="; ".join(a.evidence),
                                 points=None, explanation=""))
        for it in spec["items"]:
            n = it["number"]
            section = " / ".join(x for x in (it.get("section") or it.get("category"), it.get("subsection")) if x)
            if it["who"] == "authors":
                a = Answer("authors", "only the study's authors can answer this item")
            else:
                a = _checked(items[n].answer(facts), facts)
            rows.append(dict(checklist=name, number=str(n), section=section, item=it["item"], who=it["who"],
                             status=a.status, answer=a.answer, evidence="; ".join(a.evidence),
                             points=a.points if name == "RQS" else None,
                             explanation=it.get("explanation", "")))
    df = pd.DataFrame(rows)
    df["points"] = df["points"].astype("Int64")
    return df


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:.85rem;width:100%} td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top} th{background:#f3f3f3} .meta{color:#666}
.st{font-weight:600;white-space:nowrap;border-radius:3px;padding:0 .4rem}
.yes{background:#e3f4e1;color:#1b5e20} .partly{background:#fff4d6;color:#7a5b00} .no{background:#fde2e2;color:#a31515}
.authors{background:#eceff4;color:#555} .na{background:#f5f5f5;color:#888} td.item{width:28%} td.ev{font-size:.8rem}
tr.sec td{background:#fafafa;font-weight:600;color:#444}
"""


def _status_cls(s: str) -> str:
    return "na" if s == "n/a" else s


def render_html(df: pd.DataFrame, run_name: str) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Reporting checklist: {e(run_name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Reporting checklist — {e(run_name)}</h1>",
             "<p class='meta'>Filled from this run's parameters, results and artifacts (<a href='run.json'>run.json</a>, "
             "<a href='checklist.csv'>checklist.csv</a>; <a href='index.html'>report</a>). "
             "<b>yes</b>: the run did it, the evidence is linked; <b>partly</b>: the run shows part, the rest is "
             "the authors'; <b>no</b>: the run did not do it, or did not produce its evidence; <b>authors</b>: "
             "only the study's authors can answer; <b>n/a</b>: does not apply. Hover over an item for its full text."
             "</p>"]
    titles = {
        "CLEAR": "CLEAR — CheckList for EvaluAtion of Radiomics research (Kocak et al., Insights into Imaging 2023)",
        "METRICS": "METRICS — METhodological RadiomICs Score (Kocak et al., Insights into Imaging 2024): "
                   "conditions and items",
        "RQS": "Radiomics Quality Score (Lambin et al., Nat Rev Clin Oncol 2017)",
    }
    for name in ("CLEAR", "METRICS", "RQS"):
        sub = df[df["checklist"] == name]
        counts = sub["status"].value_counts()
        summary = ", ".join(f"{int(counts[s])} {s}" for s in STATUSES if s in counts)
        parts.append(f"<h2>{e(titles[name])}</h2><p class='meta'>{len(sub)} entries: {e(summary)}")
        if name == "RQS":
            pts = int(sub["points"].dropna().sum())
            parts.append(f"; points the run evidences: <b>{pts}</b> of 36 (items only authors can score count 0 here)")
        parts.append("</p><table><tr><th>#</th><th>item</th><th>status</th><th>what the run shows</th>"
                     + ("<th>points</th>" if name == "RQS" else "") + "<th>evidence</th></tr>")
        last = None
        for row in sub.itertuples(index=False):
            if row.section and row.section != last and name != "RQS":
                parts.append(f"<tr class='sec'><td colspan='5'>{e(row.section)}</td></tr>")
                last = row.section
            ev = []
            for item in filter(None, str(row.evidence).split("; ")):
                ev.append(f"<a href='{e(item)}'>{e(item)}</a>")
            tip = e(str(getattr(row, "explanation", "") or ""))
            pts = "" if name != "RQS" else f"<td>{'' if pd.isna(row.points) else int(row.points)}</td>"
            parts.append(f"<tr><td>{e(row.number)}</td><td class='item' title='{tip}'>{e(row.item)}</td>"
                         f"<td><span class='st {_status_cls(row.status)}'>{e(row.status)}</span></td>"
                         f"<td>{e(row.answer)}</td>{pts}<td class='ev'>{'<br>'.join(ev)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_checklist(run_dir: str | Path, params: Params | None = None, root: Path | None = None) -> Path:
    """Write ``checklist.csv`` and ``checklist.html`` into the run folder; return the HTML path."""
    run_dir = Path(run_dir)
    df = fill(run_dir, params, root)
    cols = ["checklist", "number", "section", "item", "who", "status", "answer", "evidence", "points"]
    atomic_write_text(run_dir / "checklist.csv", df[cols].to_csv(index=False, lineterminator="\n"))
    name = params.run_name if params is not None else run_dir.name
    target = run_dir / "checklist.html"
    atomic_write_text(target, render_html(df, name))
    return target
