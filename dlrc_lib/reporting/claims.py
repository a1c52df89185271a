"""The reproduction verdict: the paper's findings checked one by one on a finished run.

The claims are data (``params/claims.yaml``, next to ``published_values.yaml``): each has the
paper's statement, where the paper makes it, a rule and the keys of its published and
reproduced values. :func:`evaluate_claims` reads only the run folder (its record,
:mod:`dlrc_lib.record`, and ``data/decision_curves.parquet``) and returns one row per claim with
a verdict:

``holds`` / ``fails``
    the rule decided on this run's numbers, judged by what a cohort of this size can show: an AUC
    or a difference inside / outside the 95 % prediction interval of the paper's estimate (Patil,
    Peng & Leek 2016), a significance on the same / the other side (a non-significant result
    fails only where it had power ≥ 0.8 to find the paper's effect);
``too small to tell``
    the cohort cannot decide it: the prediction interval includes chance (AUC 0.5, no
    difference), the power to find the paper's effect is below 0.8, a Hosmer–Lemeshow risk group
    expects fewer than 5 events, or the bootstrap interval of a net-benefit difference spans zero
    at every threshold; the reason says roughly how many patients would make it testable;
``not testable here``
    the run cannot decide it, with the reason: the networks carry random weights (every
    deep-learning claim), or the run produced no value (a cohort with one class, a notebook
    that did not run);
``input``
    a number the synthetic twin was generated from (Table 1 counts, SRA confusion counts,
    Fig. 1 exclusions): its agreement with the paper is by construction;
``calibrated``
    a number the twin's generator was tuned towards.

Only ``holds`` and ``fails`` are counted as tested (column ``counted``). The statistics behind
the outcomes are in :mod:`dlrc_lib.reporting.evidence` and :mod:`dlrc_lib.stats.replication`.
"""
from __future__ import annotations

import fnmatch
import itertools
import json
import math
import string
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from dlrc_lib.core.config import PAPER_BEST_DL
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.core.resources import data_root, packaged
from dlrc_lib.evaluation.decision_curve import true_runs
from dlrc_lib.record import NotRecorded, RunInfo, RunRecord
from dlrc_lib.reporting import evidence as E
from dlrc_lib.reporting.report import Missing, as_number, flatten_published
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS, PROB_COLUMNS, split_feature_name

HOLDS, FAILS, NOT_TESTABLE, INPUT, CALIBRATED = "holds", "fails", "not testable here", "input", "calibrated"
TOO_SMALL = "too small to tell"
# a number that describes the study's own cohort (Table 1, cohort sizes), on a new cohort: shown, not graded
COHORT = "own cohort"
VERDICTS = (HOLDS, FAILS, TOO_SMALL, NOT_TESTABLE, INPUT, CALIBRATED, COHORT)
#: the three outcomes of a testable claim, one line each (the page shows them above the claims)
OUTCOMES = {
    HOLDS: "this run agrees with the paper within what a cohort of its size can vary (the 95 % prediction "
           "interval of the paper's estimate, the same side of p = 0.05)",
    FAILS: "this run disagrees with the paper by more than its size explains (outside the prediction interval, "
           "or not significant although it had 80 % power to find the paper's effect)",
    TOO_SMALL: "this cohort cannot tell either way (a chance-level result would have agreed, the power is below "
               "80 %, or too few events per risk group); the reason says about how many patients would do",
}
#: study.role of a manifest study when the parameters do not say (see dlrc_lib.core.config)
DEFAULT_MANIFEST_ROLE = "new_cohort"
COHORT_REASON = ("describes this study's own cohort (study.role: new_cohort): shown beside the paper's, "
                 "never graded or counted")
COLUMNS = ["id", "group", "claim", "source", "rule", "published", "reproduced", "verdict", "reason", "counted"]


# ----------------------------------------------------------------------------- files
def _existing(path: str | Path, run_dir: Path | None = None) -> Path | None:
    p = Path(path)
    cands = [p] if p.is_absolute() else [Path.cwd() / p, data_root() / p] + ([run_dir / p] if run_dir else [])
    return next((c for c in cands if c.is_file()), None)


def default_claims_file(published_file: str | Path | None = None) -> Path:
    """``claims.yaml`` beside the published values, else the package's ``params/claims.yaml``."""
    if published_file is not None:
        sibling = Path(published_file).with_name("claims.yaml")
        if sibling.is_file():
            return sibling
    return packaged("params", "claims.yaml")


def load_claims(path: str | Path) -> tuple[dict, list[dict]]:
    """The claims file's settings and its claims, each ``each`` entry expanded."""
    path = Path(path)
    if not path.is_file():
        raise DlrcError(f"{path}: claims file not found")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc.get("claims"), list):
        raise DlrcError(f"{path}: no list `claims`")
    labels = doc.get("labels", {})
    claims, seen = [], set()
    for i, entry in enumerate(doc["claims"]):
        missing = [k for k in ("id", "claim", "rule") if k not in entry]
        if missing:
            raise DlrcError(f"{path}: claim {entry.get('id', f'#{i + 1}')}: missing {', '.join(missing)}")
        if entry["rule"] not in RULES:
            raise DlrcError(f"{path}: claim {entry['id']}: unknown rule {entry['rule']!r} "
                            f"(one of {', '.join(sorted(RULES))})")
        each = entry.get("each") or {}
        names = list(each)
        for combo in itertools.product(*(each[n] for n in names)):
            subst = {}
            for n, v in zip(names, combo):
                subst[n] = str(v)
                subst[f"{n}_label"] = str(labels.get(n, {}).get(v, v))
            claim = {k: _fill(v, subst) for k, v in entry.items() if k != "each"}
            claim["vars"] = subst
            if claim["id"] in seen:
                raise DlrcError(f"{path}: claim id {claim['id']} appears twice")
            seen.add(claim["id"])
            claims.append(claim)
    return doc, claims


class _Keep(dict):
    def __missing__(self, key: str) -> str:  # leave run-level placeholders ({best_dl}) for later
        return "{" + key + "}"


def _fill(value: Any, subst: dict[str, str]) -> Any:
    if isinstance(value, str):
        return string.Formatter().vformat(value, (), _Keep(subst))
    if isinstance(value, list):
        return [_fill(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, subst) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- the run
@dataclass
class RunView:
    """What a finished run folder says, as the rules need it."""

    run_dir: Path
    run: dict
    published: dict[str, Any]
    reproduced: dict[str, Any]
    settings: dict
    study_source: str
    best_dl: str | None
    weights_problem: str | None
    calibrated_towards: list[str] = field(default_factory=list)
    record: RunRecord | None = None  # the run's record (None: a view built from values alone)

    def result(self, notebook: str, dotted: str) -> Any:
        """A value a notebook recorded (``{result: NOTEBOOK, path: a.b}`` in claims.yaml)."""
        if self.record is None:
            raise Missing(f"notebook {notebook} has no results in this run")
        try:
            return self.record.get(notebook, dotted)
        except NotRecorded as exc:
            raise Missing(str(exc)) from None

    @property
    def twin(self) -> bool:
        return self.study_source == "twin"

    @property
    def role(self) -> str:
        """``twin``, or the manifest study's ``study.role`` (``new_cohort`` or ``same_patients``)."""
        if self.twin:
            return "twin"
        study = (self.run.get("params") or {}).get("study") or {}
        return str(study.get("role") or DEFAULT_MANIFEST_ROLE)

    @property
    def own_cohort(self) -> bool:
        """A new cohort: numbers describing the paper's cohort are not graded on it."""
        return self.role == "new_cohort"

    @cached_property
    def absent_cohorts(self) -> list[str]:
        """Cohorts with no patient in the run's analysed study (e.g. a study without an external centre)."""
        path = self.run_dir / "study_manifest.csv"
        if not path.is_file():
            return []
        try:
            present = set(pd.read_csv(path, usecols=["cohort"], dtype=str)["cohort"].dropna())
        except (ValueError, OSError, pd.errors.ParserError):
            return []
        return [c for c in COHORTS if c not in present]

    def frame(self, name: str) -> pd.DataFrame | None:
        path = self.run_dir / "data" / f"{name}.parquet"
        return pd.read_parquet(path) if path.is_file() else None

    @cached_property
    def predictions(self) -> pd.DataFrame | None:
        """Notebook 05's per-patient predictions (cohort, lnm, prob_*), if the run kept them."""
        return self.frame("predictions")

    @cached_property
    def sra_calls(self) -> pd.DataFrame | None:
        """Notebook 08's per-patient SRA and DLRC calls, if the run kept them."""
        return self.frame("sra_calls")

    def param(self, dotted: str, default: Any = None) -> Any:
        """A parameter of the run (``run.json``'s params), e.g. ``calibration.groups``."""
        return RunInfo(self.run).param(dotted, default)

    @property
    def deep_off(self) -> bool:
        """Deep learning switched off (``deep.models: []``): radiomics + clinical only."""
        models = self.param("deep.models")
        return isinstance(models, list) and not models

    def cohort(self, cohort: str | None) -> E.Cohort | None:
        """Patients and events of a cohort of this run (predictions, else Table 1 counts)."""
        if not cohort:
            return None
        return E.cohort_of(self.predictions, cohort, self.reproduced.get(K.key("table1", cohort=cohort)))


def _weights_problem(record: RunRecord, run: dict) -> str | None:
    """Why the deep features are not the paper's (pre-trained networks), or None."""
    deep = record.deep
    if deep is None:
        return "the deep-learning notebook (04) has no results in this run"
    weights = deep.weights or {}
    random_models = [m for m, w in weights.items() if (w or {}).get("source") == "random"]
    if random_models:
        fallback = any((weights[m] or {}).get("random_fallback") for m in random_models)
        archs = sorted({m.partition("_")[0] for m in random_models}, key=lambda a: int(a[6:]) if a[6:].isdigit() else 0)
        why = "ImageNet weights not available" if fallback else "deep.weights asked for them"
        return (f"random network weights ({'/'.join(archs)}: {why}); the paper's deep-learning "
                f"findings are about pre-trained networks")
    for msgs in (run.get("warnings") or {}).values():
        for msg in msgs:
            if "RANDOM WEIGHTS" in str(msg):
                return f"random network weights ({msg})"
    return None


def _published_file(run: dict, run_dir: Path, published_file: str | Path | None) -> Path:
    if published_file is not None:
        p = Path(published_file)
        if not p.is_file():
            raise DlrcError(f"{p}: published values file not found")
        return p
    name = (run.get("params") or {}).get("published_values") or "params/published_values.yaml"
    found = _existing(name, run_dir) or _existing("params/published_values.yaml")
    if found is None:
        raise DlrcError(f"{run_dir / 'run.json'}: published values file {name} not found")
    return found


def _calibrated_towards(run: dict, run_dir: Path) -> list[str]:
    """Claim ids / published keys the twin says it was tuned towards (``study.json``)."""
    cands = [run_dir / "study.json"]
    manifest = run.get("study_manifest")
    if manifest:
        cands.append(Path(manifest).parent / "study.json")
    for c in cands:
        if c.is_file():
            try:
                doc = json.loads(c.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DlrcError(f"{c}: not valid JSON ({exc})") from None
            targets = doc.get("calibrated_towards") or []
            if isinstance(targets, dict):
                targets = list(targets)
            return [str(t) for t in targets]
    return []


def load_run(run_dir: str | Path, published_file: str | Path | None = None, settings: dict | None = None) -> RunView:
    run_dir = Path(run_dir)
    record = RunRecord.load(run_dir) if run_dir.is_dir() else None
    if record is None or record.run is None:
        raise DlrcError(f"{run_dir / 'run.json'}: not found; is {run_dir} a finished run folder (dlrc run)?")
    run = record.run.data
    pub_path = _published_file(run, run_dir, published_file)
    published = flatten_published(yaml.safe_load(pub_path.read_text(encoding="utf-8")) or {})
    source = str(((run.get("params") or {}).get("study") or {}).get("source", "manifest"))
    return RunView(run_dir=run_dir, run=run, published=published, reproduced=record.reproduced,
                   settings=settings or {}, study_source=source, best_dl=record.best_dl,
                   weights_problem=_weights_problem(record, run),
                   calibrated_towards=_calibrated_towards(run, run_dir) if source == "twin" else [],
                   record=record)


# ----------------------------------------------------------------------------- values
def _run_vars(view: RunView) -> dict[str, str]:
    out = {"paper_best_dl": str(view.settings.get("paper_best_dl", PAPER_BEST_DL))}
    if view.best_dl:
        out["best_dl"] = view.best_dl
    return out


def _key(template: str, view: RunView) -> str:
    key = string.Formatter().vformat(template, (), _Keep(_run_vars(view)))
    if "{best_dl}" in key:
        raise Missing("the run chose no best deep-learning model (notebook 04 has no results)")
    return key


def resolve(ref: Any, view: RunView, side: str, claim_id: str = "") -> Any:
    """A claim argument's value on the ``published`` or ``reproduced`` side."""
    if isinstance(ref, list):
        return [resolve(r, view, side, claim_id) for r in ref]
    if isinstance(ref, dict):
        if "value" in ref:
            return ref["value"]
        if "result" in ref:
            return view.result(str(ref["result"]), str(ref.get("path", "")))
        raise DlrcError(f"claims: claim {claim_id}: argument {ref!r} is neither a key, {{value: ..}} nor {{result: ..}}")
    key = _key(str(ref), view)
    if side == "published":
        if key not in view.published:
            raise DlrcError(f"claims: claim {claim_id}: {key} is not a key of the published values")
        return view.published[key]
    if key not in view.reproduced:
        raise Missing(f"the run produced no value for {key}")
    value = view.reproduced[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise Missing(f"{key} is undefined in this run (e.g. a cohort with one LNM class or 0/0)")
    return value


def fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:.0f}"
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def fmt_auc(v: Any) -> str:
    if isinstance(v, list) and len(v) == 3:
        return f"{as_number(v[0]):.3f} ({as_number(v[1]):.3f}–{as_number(v[2]):.3f})"
    return fmt(v)


def fmt_p(v: Any) -> str:
    return v if isinstance(v, str) else f"{as_number(v):.3f}"


# ----------------------------------------------------------------------------- rules
@dataclass
class Outcome:
    published: str
    reproduced: str
    holds: bool
    reason: str
    too_small: bool = False  # the cohort cannot tell (see OUTCOMES)


def _transform(value: Any, how: str | None) -> Any:
    if how is None:
        return value
    if isinstance(value, list):
        return [_transform(v, how) for v in value]
    s = str(value)
    if how == "dimension":  # ResNet152_2D -> 2D
        return s.rpartition("_")[2]
    if how == "sequence":  # CET1_wavelet.HLH_... -> CET1
        return split_feature_name(s)[0]
    raise DlrcError(f"claims: unknown transform {how!r} (dimension | sequence)")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return abs(as_number(a) - as_number(b)) < 1e-9
    except Missing:
        return str(a) == str(b)


def rule_equals(c: dict, view: RunView) -> Outcome:
    pub = _transform(resolve(c["published"], view, "published", c["id"]), c.get("transform"))
    rep = _transform(resolve(c["reproduced"], view, "reproduced", c["id"]), c.get("transform"))
    ok = _equal(pub, rep)
    return Outcome(fmt(pub), fmt(rep), ok, "same value as the paper" if ok else "differs from the paper")


def rule_auc_agreement(c: dict, view: RunView) -> Outcome:
    """Holds inside the 95 % prediction interval of the paper's AUC for this cohort's size, fails
    outside; too small to tell where that interval includes 0.5."""
    pub = [as_number(x) for x in resolve(c["published"], view, "published", c["id"])]
    rep_raw = resolve(c["reproduced"], view, "reproduced", c["id"])
    if not isinstance(rep_raw, list) or len(rep_raw) != 3:
        raise Missing(f"no AUC with a confidence interval for {c['reproduced']}")
    rep = [as_number(x) for x in rep_raw]
    j = E.judge_auc(pub, rep, view.cohort(c["vars"].get("cohort")))
    return Outcome(fmt_auc(pub), fmt_auc(rep), j.holds, j.reason, j.too_small)


def _significant(p: Any, alpha: float) -> bool:
    return as_number(p) < alpha


def _prob_column(key: str, view: RunView) -> str | None:
    """The predictions column of the model in a ``table2.<cohort>.<model>.auc`` key."""
    model = (K.parse(key).model or "") if K.is_key(key) else ""
    if model.lower() in ("radiomics", "dlrc"):
        return PROB_COLUMNS[model.lower()]
    return PROB_COLUMNS["dl"] if model and model == view.best_dl else None


def _effect(c: dict, view: RunView) -> tuple[float | None, float, float | None]:
    """The paper's AUC difference of the ``better`` pair, this run's DeLong SE of it, this run's difference."""
    if not c.get("better"):
        return None, float("nan"), None
    pub = [as_number(resolve(k.replace("{best_dl}", "{paper_best_dl}"), view, "published", c["id"])[0])
           for k in c["better"]]
    keys = [_key(k, view) for k in c["better"]]
    rep = [as_number(resolve(k, view, "reproduced", c["id"])[0]) for k in keys]
    se = E.difference_se(view.predictions, c["vars"].get("cohort", ""), *(_prob_column(k, view) for k in keys))
    return pub[0] - pub[1], se, rep[0] - rep[1]


def _fallback_se(diff: float | None, p: float) -> float:
    """The SE a two-sided z test's p-value implies for ``diff`` (when the predictions are not kept)."""
    z = float(E.z_for_p(p)) if p < 1 else 0.0
    return abs(diff) / z if diff is not None and z > 0 else float("nan")


def rule_p_side(c: dict, view: RunView) -> Outcome:
    """Same side of alpha (and, where the paper's is significant, the same direction) holds; a
    non-significant result against a significant one fails only with power ≥ 0.8 to find the
    paper's effect, else too small to tell."""
    alpha = float(view.settings.get("alpha", 0.05))
    pub = resolve(c["published"], view, "published", c["id"])
    rep = resolve(c["reproduced"], view, "reproduced", c["id"])
    pubs, reps = (pub, rep) if isinstance(pub, list) else ([pub], [rep])
    ok, small, notes = True, False, []
    for p, r in zip(pubs, reps):
        same = _significant(p, alpha) == _significant(r, alpha)
        notes.append(f"p = {fmt_p(r)} {'<' if _significant(r, alpha) else '≥'} {alpha:g} "
                     f"({'as' if same else 'unlike'} the paper's {fmt_p(p)})")
        if same or _significant(r, alpha):
            ok &= same
            continue
        effect, se, here = _effect(c, view)
        se = se if np.isfinite(se) else _fallback_se(here, as_number(r))
        j = E.judge_nonsignificant(effect, se, view.cohort(c["vars"].get("cohort")), alpha)
        ok &= j.holds
        small |= j.too_small
        notes.append(j.reason)
    if c.get("better") and all(_significant(p, alpha) for p in pubs):
        a, b = (as_number(resolve(k, view, "reproduced", c["id"])[0]) for k in c["better"])
        if a <= b and all(_significant(r, alpha) for r in reps):
            ok, small = False, False
        notes.append(f"AUC {a:.3f} vs {b:.3f}: DLRC {'higher' if a > b else 'not higher'}")
    return Outcome(", ".join(fmt_p(p) for p in pubs), ", ".join(fmt_p(r) for r in reps), ok, "; ".join(notes),
                   small and not ok)


def rule_p_above(c: dict, view: RunView) -> Outcome:
    """p above alpha holds (Hosmer–Lemeshow); too small to tell where a risk group expects fewer than
    5 events or non-events. The calibration intercept and slope with their CIs are shown beside."""
    alpha = float(view.settings.get("alpha", 0.05))
    pub = resolve(c["published"], view, "published", c["id"])
    rep = resolve(c["reproduced"], view, "reproduced", c["id"])
    ok = as_number(rep) > alpha
    reason = f"p = {fmt_p(rep)} {'>' if ok else '≤'} {alpha:g}"
    cohort = c["vars"].get("cohort", "")
    column = PROB_COLUMNS.get(str(c.get("model", "DLRC")).lower())
    small = None
    if c.get("expected_counts") and column:
        groups = int(view.param("calibration.groups", 10))
        minimum = E.hl_expected_minimum(view.predictions, cohort, column, groups)
        small = E.judge_hosmer_lemeshow(minimum, view.cohort(cohort), groups)
        calib = E.calibration_text(view.predictions, cohort, column)
        reason = "; ".join(x for x in (small.reason if small else reason, calib) if x)
    return Outcome(fmt_p(pub), fmt_p(rep), ok, reason, small is not None)


def rule_highest(c: dict, view: RunView) -> Outcome:
    names = list(c["names"])

    def side(s: str) -> tuple[str, list[float]]:
        vals = [as_number(v[0] if isinstance(v, list) else v) for v in resolve(c[s], view, s, c["id"])]
        return names[max(range(len(vals)), key=vals.__getitem__)], vals

    pw, pv = side("published")
    rw, rv = side("reproduced")
    show = lambda vals: ", ".join(f"{n} {v:.3f}" for n, v in zip(names, vals))  # noqa: E731
    ok = rw == c["expect"] and sum(v == max(rv) for v in rv) == 1
    return Outcome(show(pv), show(rv), ok, f"highest here: {rw}" + ("" if ok else f" (the paper: {pw})"))


def rule_auc_order(c: dict, view: RunView) -> Outcome:
    pubs, reps, notes, ok = [], [], [], True
    for coh in COHORTS:
        aucs = {m: K.key("table3", cohort=coh, model=m, metric="auc") for m in (c["first"], c["second"])}
        pa, pb = (as_number(resolve(k, view, "published", c["id"])[0]) for k in aucs.values())
        ra, rb = (as_number(resolve(k, view, "reproduced", c["id"])[0]) for k in aucs.values())
        same = (pa > pb) == (ra > rb)
        ok &= same
        pubs.append(f"{coh} {pa:.3f} {'>' if pa > pb else '<'} {pb:.3f}")
        reps.append(f"{coh} {ra:.3f} {'>' if ra > rb else '≤'} {rb:.3f}")
        if not same:
            notes.append(f"{coh}: order reversed")
    reason = (f"{c['first']} vs {c['second']}: " + ("same order in every cohort" if ok else "; ".join(notes)))
    return Outcome("; ".join(pubs), "; ".join(reps), ok, reason)


def rule_count_near(c: dict, view: RunView) -> Outcome:
    pub = as_number(resolve(c["published"], view, "published", c["id"]))
    rep = as_number(resolve(c["reproduced"], view, "reproduced", c["id"]))
    tol = float(c.get("tolerance", 0))
    ok = abs(rep - pub) <= tol
    return Outcome(fmt(int(pub)), fmt(int(rep)), ok, f"{int(rep)} is {'within' if ok else 'more than'} "
                   f"{tol:g} of {int(pub)}")


def feature_family(name: str) -> str:
    """Image-type family of a radiomics feature name (``CET1_wavelet-HLH_glcm_X`` -> wavelet)."""
    _, rest = split_feature_name(str(name).replace(".", "-"))
    return rest.split("_")[0].split("-")[0].lower()


def rule_feature_mix(c: dict, view: RunView) -> Outcome:
    pub = dict(resolve(c["published"], view, "published", c["id"]))
    rep = resolve(c["reproduced"], view, "reproduced", c["id"])
    names = [r["feature"] if isinstance(r, dict) else r for r in rep]
    counts: dict[str, int] = {}
    for n in names:
        counts[feature_family(n)] = counts.get(feature_family(n), 0) + 1
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    dom = c.get("dominant")
    top = order[0][1] if order else 0
    ok = bool(order) and counts.get(dom, 0) == top and sum(v == top for v in counts.values()) == 1
    show = lambda d: ", ".join(f"{k} {v}" for k, v in d) or "none"  # noqa: E731
    return Outcome(show(pub.items()), show(order), ok,
                   f"{len(names)} features selected; {dom} {'is' if ok else 'is not'} the largest group")


def rule_contains(c: dict, view: RunView) -> Outcome:
    pub = [str(x) for x in resolve(c["published"], view, "published", c["id"])]
    rep = [str(x) for x in resolve(c["reproduced"], view, "reproduced", c["id"])]
    have = {x.lower() for x in rep}
    lacking = [x for x in pub if x.lower() not in have]
    return Outcome(", ".join(pub), ", ".join(rep) or "none", not lacking,
                   "all kept" if not lacking else f"not kept: {', '.join(lacking)}")


def _diff(c: dict, view: RunView, side: str) -> tuple[float, float, float]:
    a, b = (as_number(v) for v in resolve(c[side], view, side, c["id"]))
    return a, b, a - b


def _denominator(c: dict, view: RunView) -> int:
    """The paper's patients behind the claim's percentages: LNM-positive (sen) or -negative (spe)
    patients of its confusion counts ``[TP, FN, TN, FP]``."""
    counts = [int(as_number(x)) for x in resolve(c["counts"], view, "published", c["id"])]
    return counts[0] + counts[1] if c.get("measure", "sen") == "sen" else counts[2] + counts[3]


def _call_column(key: str) -> str:
    """``table2.train.DLRC.sen`` / ``table5.lnsd_below_10mm.train.SRA.sen`` -> ``DLRC`` / ``SRA``."""
    return str(K.parse(key).model)


def _judged_difference(c: dict, view: RunView, pub: tuple[float, float, float],
                       rep: tuple[float, float, float]) -> E.Judgement:
    """The reproduced difference ``rep`` (a, b, a - b) against the paper's ``pub``'s prediction
    interval (points)."""
    measure = c.get("measure", "sen")
    cohort = c["vars"].get("cohort", "")
    se_pub = E.unpaired_points_se(pub[0], pub[1], _denominator(c, view))
    below = float(view.param("sra.subgroup_mm", 10.0)) if c.get("subgroup") == "lnsd_below" else None
    first, second = (_call_column(_key(k, view)) for k in c["reproduced"])
    se_rep, n_rep = E.calls_difference_se(view.sra_calls, cohort, first, second, measure, below)
    size = view.cohort(cohort)
    if not n_rep:  # the run kept no calls: the percentages as independent, on the cohort's patients
        n_rep = size and (size.events if measure == "sen" else size.patients - size.events)
        se_rep = E.unpaired_points_se(rep[0], rep[1], n_rep or 0)
    return E.judge_difference(pub[2], se_pub, rep[2], se_rep, n_rep, size)


def _difference_outcome(c: dict, view: RunView, rule_text: str) -> Outcome:
    pa, pb, pd_ = pub = _diff(c, view, "published")
    ra, rb, rd = rep = _diff(c, view, "reproduced")
    shown = (f"{pa:.1f} vs {pb:.1f} ({pd_:+.1f})", f"{ra:.1f} vs {rb:.1f} ({rd:+.1f})")
    if c.get("counts") is None:
        raise DlrcError(f"claims: claim {c['id']}: a difference claim needs `counts` (the paper's confusion counts)")
    j = _judged_difference(c, view, pub, rep)
    return Outcome(*shown, j.holds, f"{j.reason}; {rule_text.format(rd=rd)}", j.too_small)


def rule_difference_above(c: dict, view: RunView) -> Outcome:
    """The difference judged by the paper's prediction interval (too small where it includes 0);
    the paper's wording (``minimum``) is shown beside."""
    m = float(c.get("minimum", 0))
    return _difference_outcome(c, view, "the paper's wording: over " + f"{m:g} points" + " ({rd:+.1f} here)")


def rule_difference_near(c: dict, view: RunView) -> Outcome:
    """As :func:`rule_difference_above`, for a margin the paper gives as a size."""
    return _difference_outcome(c, view, "margin {rd:+.1f} points")


def _runs(mask: pd.Series) -> str:
    """Threshold intervals where ``mask`` (indexed by threshold) is true: ``0.05–0.40; 0.52``."""
    out = true_runs(mask)
    return "; ".join(f"{a:.2f}" if a == b else f"{a:.2f}–{b:.2f}" for a, b in out) or "nowhere"


def rule_net_benefit(c: dict, view: RunView) -> Outcome:
    curves = view.frame("decision_curves")
    if curves is None:
        raise Missing("the run has no decision curves (data/decision_curves.parquet)")
    lo, hi = (float(x) for x in view.settings.get("decision_curve_range", (0.1, 0.6)))
    cohort = c["vars"].get("cohort")
    model = c["model"]
    over = [_key(o, view) for o in c["over"]]
    part = curves[curves["cohort"].astype(str) == cohort]
    if part.empty:
        raise Missing(f"no decision curve for the {cohort} cohort")
    wide = part.pivot_table(index="threshold", columns="model", values="net_benefit", sort=True)
    absent = [m for m in [model, *over] if m not in wide.columns]
    if absent:
        raise Missing(f"no decision curve of {', '.join(absent)}")
    above = pd.concat([wide[model] > wide[o] + 1e-12 for o in over], axis=1).all(axis=1)
    inside = (wide.index >= lo - 1e-9) & (wide.index <= hi + 1e-9)
    ok = bool(above[inside].all())
    crossings = "; ".join(f"above {o} at {_runs(wide[model] > wide[o] + 1e-12)}" for o in over)
    below = _runs(~above[inside])
    rep = f"above over {lo:.2f}–{hi:.2f}" if ok else f"not above at {below}"
    reason = f"{model} over 0–{wide.index.max():.2f}: {crossings}"
    judged = _net_benefit_evidence(c, view, model, over, wide.index[inside].to_numpy(float))
    if judged is not None:
        small, note = judged
        reason = "; ".join(x for x in (small.reason if small else "", reason, note) if x)
        return Outcome(f"highest 'over a wide range of risk thresholds' (tested: {lo:.2f}–{hi:.2f})", rep, ok,
                       reason, small is not None)
    return Outcome(f"highest 'over a wide range of risk thresholds' (tested: {lo:.2f}–{hi:.2f})", rep, ok, reason)


_STRATEGIES = {"Treat all": "all", "Treat none": "none", "Radiomics": PROB_COLUMNS["radiomics"],
               "DLRC": PROB_COLUMNS["dlrc"]}


def _net_benefit_evidence(c: dict, view: RunView, model: str, over: list[str],
                          thresholds: np.ndarray) -> tuple[E.Judgement | None, str] | None:
    """The bootstrap intervals of the net-benefit differences over the tested thresholds (from the
    run's predictions); ``None`` where the run kept no predictions."""
    pred = view.predictions
    cols = {**_STRATEGIES, **({view.best_dl: PROB_COLUMNS["dl"]} if view.best_dl else {})}
    column = cols.get(model)
    others = {o: cols.get(o) for o in over}
    if pred is None or column not in pred or any(v is None or (v not in ("all", "none") and v not in pred)
                                                 for v in others.values()) or not thresholds.size:
        return None
    B = int(view.settings.get("decision_curve_bootstrap", 500))
    cohort = c["vars"].get("cohort", "")
    intervals = E.net_benefit_intervals(pred, cohort, column, others, thresholds, B=B,
                                        seed=int(view.param("seed", 0)))
    return E.judge_net_benefit(intervals, view.cohort(cohort), B), E.interval_note(intervals)


RULES: dict[str, Callable[[dict, RunView], Outcome]] = {
    "equals": rule_equals, "auc_agreement": rule_auc_agreement, "p_side": rule_p_side,
    "p_above": rule_p_above, "highest": rule_highest, "auc_order": rule_auc_order,
    "count_near": rule_count_near, "feature_mix": rule_feature_mix, "contains": rule_contains,
    "difference_above": rule_difference_above, "difference_near": rule_difference_near,
    "net_benefit": rule_net_benefit,
}


# ----------------------------------------------------------------------------- verdicts
def _keys_of(c: dict) -> list[str]:
    out = []
    for side in ("published", "reproduced"):
        refs = c.get(side)
        for r in refs if isinstance(refs, list) else [refs]:
            if isinstance(r, str):
                out.append(r)
    return out


def _is_calibrated(c: dict, view: RunView) -> bool:
    if not view.twin:
        return False
    if c.get("twin") == "calibrated":
        return True
    for target in view.calibrated_towards:
        if fnmatch.fnmatchcase(c["id"], target) or any(fnmatch.fnmatchcase(k, target) for k in _keys_of(c)):
            return True
    return False


def _twin_how(settings: dict, c: dict) -> str:
    keys = [k.replace("{paper_best_dl}", "x") for k in _keys_of(c)]
    for group in settings.get("twin_inputs", []):
        if any(fnmatch.fnmatchcase(k, pat) for k in keys for pat in group.get("keys", [])):
            return group.get("how", "")
    return ""


_COHORT_WORDS = {c: ("training" if c == COHORTS[0] else label.lower()) for c, label in COHORT_LABELS.items()}


def _fixed_verdict(c: dict, view: RunView) -> tuple[str, str] | None:
    """A verdict the claim gets whatever the run's numbers: a number of the study's own cohort, an
    input of the twin, a deep-learning claim without pre-trained networks, a claim over three cohorts
    on a study with fewer; ``None`` where the numbers decide."""
    if view.own_cohort and c.get("twin") == "input":
        return COHORT, COHORT_REASON
    if view.twin and c.get("twin") == "input":
        how = _twin_how(view.settings, c)
        scale = view.param("study.scale")
        return INPUT, ("the twin is built from this number" + (f": {how}" if how else "")
                       + (f"; this twin is at scale {scale:g}" if isinstance(scale, (int, float)) and scale != 1 else ""))
    if c.get("deep") and view.deep_off:
        return NOT_TESTABLE, "deep learning switched off (deep.models: []): DLRC here is radiomics + clinical"
    if c.get("deep") and view.weights_problem:
        return NOT_TESTABLE, view.weights_problem
    if c.get("cohorts") == "all" and view.absent_cohorts:
        words = " or ".join(_COHORT_WORDS.get(x, x) for x in view.absent_cohorts)
        return NOT_TESTABLE, f"the claim compares all three cohorts; this study has no {words} cohort"
    return None


def _not_produced(c: dict, view: RunView, missing: str | None) -> str:
    """Why a claim's value is missing: an absent cohort, a notebook that stopped, or the rule's words."""
    parts = str(c["id"]).replace("_", ".").split(".")
    absent = [cohort for cohort in view.absent_cohorts if cohort in parts]
    stopped = [f"{ln.split()[1].removesuffix('.ipynb')} {'skipped' if ' skipped: ' in ln else 'stopped'}"
               for ln in str(view.run.get("failure") or "").splitlines()
               if ln.startswith("notebook ") and (" stopped in " in ln or " skipped: " in ln)]
    if absent:
        return f"the study has no {_COHORT_WORDS.get(absent[0], absent[0])} cohort"
    if stopped:
        return f"not produced: the run is incomplete ({', '.join(stopped)}; why: at the top of the page and in run.json)"
    return missing or "not produced"


_WOULD = {HOLDS: "would hold", FAILS: "would fail", TOO_SMALL: "would be too small to tell"}


def _decided(outcome: Outcome) -> str:
    return TOO_SMALL if outcome.too_small else HOLDS if outcome.holds else FAILS


def evaluate_claim(c: dict, view: RunView) -> dict:
    row = {"id": c["id"], "group": c.get("group", ""), "claim": c["claim"], "source": c.get("source", ""),
           "rule": c["rule"], "published": "", "reproduced": "", "verdict": "", "reason": ""}
    outcome: Outcome | None = None
    missing: str | None = None
    try:
        outcome = RULES[c["rule"]](c, view)
    except Missing as exc:
        missing = str(exc)
    if outcome is not None:
        row.update(published=outcome.published, reproduced=outcome.reproduced)
    else:
        try:  # show at least the paper's side
            pub = resolve(c.get("published"), view, "published", c["id"]) if c.get("published") is not None else ""
            row["published"] = fmt_auc(pub) if c["rule"] == "auc_agreement" else fmt(pub)
        except Missing:
            pass
        row["reproduced"] = "not produced"
    fixed = _fixed_verdict(c, view)
    if fixed is not None:
        row["verdict"], row["reason"] = fixed
    elif _is_calibrated(c, view):
        row["verdict"] = CALIBRATED
        row["reason"] = "the synthetic twin's generator was tuned towards this result (study.json calibrated_towards)"
        if outcome is not None:
            row["reason"] += f"; by the rule alone it {_WOULD[_decided(outcome)]}: {outcome.reason}"
    elif outcome is None:
        row["verdict"] = NOT_TESTABLE
        row["reason"] = _not_produced(c, view, missing)
    else:
        row["verdict"] = _decided(outcome)
        row["reason"] = outcome.reason
        if c.get("uses_dl_score") and view.weights_problem and view.weights_problem.startswith("random"):
            row["reason"] += "; note: DLRC's DL_score comes from random-weight networks here"
    row["counted"] = row["verdict"] in (HOLDS, FAILS)
    return row


def evaluate_claims(run_dir: str | Path, claims_file: str | Path | None = None,
                    published_file: str | Path | None = None) -> pd.DataFrame:
    """One row per claim of ``claims.yaml`` on the finished run in ``run_dir``:
    id, group, claim, source, rule, published, reproduced, verdict, reason, counted."""
    run_dir = Path(run_dir)
    pre = load_run(run_dir, published_file)
    pub_path = _published_file(pre.run, run_dir, published_file)
    settings, claims = load_claims(claims_file or default_claims_file(pub_path))
    pre.settings = settings
    rows = [evaluate_claim(c, pre) for c in claims]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_claims(run_dir: str | Path, claims: pd.DataFrame | None = None, **kw: Any) -> Path:
    """``reports/<run>/claims.csv`` (evaluated here unless ``claims`` is given)."""
    run_dir = Path(run_dir)
    claims = evaluate_claims(run_dir, **kw) if claims is None else claims
    target = run_dir / "claims.csv"
    atomic_write_text(target, claims.to_csv(index=False, lineterminator="\n"))
    return target


def summary(claims: pd.DataFrame) -> dict[str, int]:
    counts = claims["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


# ----------------------------------------------------------------------------- published numbers
def published_roles(view: RunView, keys) -> dict[str, str]:
    """For each published key: ``input`` / ``calibrated`` on a twin run (never counted as
    reproduced), else ""."""
    out = {}
    for k in keys:
        role = ""
        if view.own_cohort:
            if any(fnmatch.fnmatchcase(k, pat) for g in view.settings.get("twin_inputs", []) for pat in g.get("keys", [])):
                role = COHORT
        elif view.twin:
            if any(fnmatch.fnmatchcase(k, pat) for g in view.settings.get("twin_inputs", []) for pat in g.get("keys", [])):
                role = INPUT
            elif any(fnmatch.fnmatchcase(k, t) for t in view.calibrated_towards):
                role = CALIBRATED
        out[k] = role
    return out


def run_view(run_dir: str | Path, claims_file: str | Path | None = None,
             published_file: str | Path | None = None) -> RunView:
    """The run as the claims see it, with the claims file's settings."""
    view = load_run(run_dir, published_file)
    pub_path = _published_file(view.run, Path(run_dir), published_file)
    view.settings, _ = load_claims(claims_file or default_claims_file(pub_path))
    return view
