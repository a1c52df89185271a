"""A sweep's grid: the grid file (YAML) read and checked against the base parameters
(:func:`parse_grid`), its variants, each variant's parameters (:func:`variant_params`) and the
fingerprint that says whether a finished variant is still valid.

Grid file::

    factors:                  # full factorial
      harmonisation.mode: [train_reference, all, none]
      selection.lasso_rule: [1se, min]
    vary_alone:               # each value alone, every other choice at the base parameters
      selection.mw_p: [0.05]
    variants:                 # named variants: overrides of the base parameters
      paper_combat: {harmonisation.mode: all}
    last_notebook: "08"       # optional: stop each variant after this notebook

Keys are dotted parameter keys of ``params/*.yaml``; every value is validated with the
parameter schema before anything runs (a bad key or value is refused with one line naming
it). Study keys (``study.*``) and bookkeeping keys cannot be swept: a sweep analyses one study.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional


from dlrc_lib.core.config import Params, ParamsError, Section, load_params
from dlrc_lib.core.io import read_yaml_mapping

GRID_KEYS = ("factors", "vary_alone", "variants", "last_notebook", "description")
# keys a sweep cannot vary: the study itself and bookkeeping
FORBIDDEN_PREFIXES = ("study.", "sweep.")
FORBIDDEN_KEYS = ("run_name", "cache_dir", "published_values")
# keys whose change means other features (the sweep extracts what the cache lacks first)
EXTRACTION_PREFIXES = ("radiomics.settings", "radiomics.sequences", "deep.models", "deep.weights",
                       "deep.input_size", "deep.margin", "deep.shape_3d", "deep.clip_percentiles")
ROLES = ("radiomics", "dl", "dlrc")
FINISHED = ("ok", "failed")
MAX_VARIANTS = 2000


def flat_name(key: str) -> str:
    section, _, rest = key.partition(".")
    return f"{section}_{rest}" if rest else section


# ------------------------------------------------------------------------------ grid
@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]  # dotted key -> value, relative to the base parameters
    choices: dict[str, Any] = field(default_factory=dict)  # every swept key -> value used


@dataclass
class Grid:
    path: Path
    keys: list[str]  # every swept key, in grid order
    variants: list[Variant]
    last_notebook: Optional[str] = None
    description: str = ""
    base_choices: dict[str, Any] = field(default_factory=dict)  # the base parameters' values


def _schema_field(key: str):
    """The pydantic field of a dotted key, or None when the key is not in the schema."""
    model: Any = Params
    info = None
    for part in key.split("."):
        if not (isinstance(model, type) and issubclass(model, Section)) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    return info


def _key_problem(key: Any) -> Optional[str]:
    if not isinstance(key, str) or not key:
        return f"key {key!r} is not a dotted parameter key (e.g. selection.lasso_rule)"
    if key in FORBIDDEN_KEYS or key.startswith(FORBIDDEN_PREFIXES):
        return f"key '{key}' cannot be swept (a sweep analyses one study with one run name and cache)"
    info = _schema_field(key)
    if info is None:
        return f"unknown parameter key '{key}'"
    ann = info.annotation
    if isinstance(ann, type) and issubclass(ann, Section):
        return f"key '{key}' is a section; name one of its keys (e.g. {key}.{next(iter(ann.model_fields))})"
    return None


def _get(raw: dict, key: str) -> Any:
    obj: Any = raw
    for part in key.split("."):
        obj = obj[part]
    return obj


def _fmt_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt_value(x) for x in v)
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def table_cell(v: Any) -> Any:
    """A choice as it appears in sweep.csv (lists joined with x)."""
    return _fmt_value(v) if isinstance(v, (list, tuple)) else v


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "variant"


def _short_names(keys: list[str]) -> dict[str, str]:
    """Variant names use a key's last part (lasso_rule), the section too where that is ambiguous."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 and s not in ("threshold", "form", "batch") else flat_name(k))
            for k, s in zip(keys, last)}


def parse_grid(grid_path: str | Path, base: Params | str | Path) -> Grid:
    """Read and validate a sweep grid against the base parameters (read from their file by
    :func:`~dlrc_lib.core.config.load_params`; a path is read here).

    Raises :class:`ParamsError` with one line naming the grid file, the key and the value.
    """
    grid_path = Path(grid_path)
    base = base if isinstance(base, Params) else load_params(base)
    raw = read_yaml_mapping(grid_path, "sweep grid", ParamsError)
    unknown = [k for k in raw if k not in GRID_KEYS]
    if unknown:
        raise ParamsError(f"{grid_path}: unknown grid key '{unknown[0]}' (expected one of {', '.join(GRID_KEYS)})")
    factors, alone, named = _checked_sections(grid_path, raw, base)
    keys = list(dict.fromkeys([*factors, *alone, *(k for o in named.values() for k in o)]))
    base_values = {k: _base_value(base, k) for k in keys}

    variants: list[Variant] = []
    seen: dict[str, str] = {}
    short = _short_names(keys)

    def add(name: Optional[str], overrides: dict[str, Any]) -> None:
        overrides = {k: v for k, v in overrides.items() if not _same(v, base_values[k])}
        choices = {k: overrides.get(k, base_values[k]) for k in keys}
        ident = json.dumps(choices, sort_keys=True, default=str)
        if ident in seen:
            return
        if name is None:
            name = "__".join(f"{short[k]}={_fmt_value(v)}" for k, v in overrides.items()) or "base"
            name = _safe(name)
        if name in {v.name for v in variants}:
            raise ParamsError(f"{grid_path}: two variants are named {name!r}")
        seen[ident] = name
        variants.append(Variant(name, overrides, choices))

    fkeys = list(factors)
    for combo in itertools.product(*(factors[k] for k in fkeys)):
        add(None, dict(zip(fkeys, combo)))
    for key, values in alone.items():
        for v in values:
            add(None, {key: v})
    for name, overrides in named.items():
        add(str(name), dict(overrides))
    if len(variants) > MAX_VARIANTS:
        raise ParamsError(f"{grid_path}: {len(variants)} variants; at most {MAX_VARIANTS}")
    last = raw.get("last_notebook")
    if last is not None:
        last = str(last).zfill(2)[:2]
        if not last.isdigit():
            raise ParamsError(f"{grid_path}: last_notebook {raw['last_notebook']!r} is not a notebook number")
    return Grid(grid_path, keys, variants, last, str(raw.get("description") or ""), base_values)


def _checked_sections(grid_path: Path, raw: Mapping[str, Any], base: Params):
    """The grid's ``factors``, ``vary_alone`` and ``variants``, every key and value checked
    against the base parameters (one-line :class:`ParamsError` naming the grid file)."""
    factors = raw.get("factors") or {}
    alone = raw.get("vary_alone") or {}
    named = raw.get("variants") or {}
    for section, value in (("factors", factors), ("vary_alone", alone), ("variants", named)):
        if not isinstance(value, dict):
            raise ParamsError(f"{grid_path}: '{section}' must be a mapping")
    if not (factors or alone or named):
        raise ParamsError(f"{grid_path}: no factors, vary_alone or variants: nothing to sweep")

    def check_value(where: str, key: str, value: Any) -> None:
        problem = _key_problem(key)
        if problem:
            raise ParamsError(f"{grid_path}: {where}: {problem}")
        try:
            base.with_overrides({key: value})
        except ParamsError as exc:
            msg = str(exc).split(": ", 1)[-1]
            raise ParamsError(f"{grid_path}: {where}: {key} = {value!r} is not allowed ({msg})") from None

    for section, mapping in (("factors", factors), ("vary_alone", alone)):
        for key, values in mapping.items():
            if not isinstance(values, list) or not values:
                problem = _key_problem(key)
                if problem:
                    raise ParamsError(f"{grid_path}: {section}: {problem}")
                raise ParamsError(f"{grid_path}: {section}: {key} needs a non-empty list of values")
            for v in values:
                check_value(section, key, v)
            if len({json.dumps(v, sort_keys=True, default=str) for v in values}) < len(values):
                raise ParamsError(f"{grid_path}: {section}: {key} lists a value twice")
    for name, overrides in named.items():
        if not isinstance(overrides, dict):
            raise ParamsError(f"{grid_path}: variants: {name} must map parameter keys to values")
        if _safe(str(name)) != str(name):
            raise ParamsError(f"{grid_path}: variants: name {name!r} may use only letters, digits and . _ = + -")
        for key, v in overrides.items():
            check_value(f"variants: {name}", key, v)
        try:
            base.with_overrides(dict(overrides))
        except ParamsError as exc:
            raise ParamsError(f"{grid_path}: variants: {name}: {str(exc).split(': ', 1)[-1]}") from None

    return factors, alone, named


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _base_value(params: Params, key: str) -> Any:
    return _get(params.model_dump(mode="json"), key)


def variant_params(base: Params | str | Path, variant: Variant, cache_dir: Optional[str] = None) -> Params:
    """The base parameters with the variant's overrides (no nested sweep); ``cache_dir`` (absolute)
    replaces the file's feature store, as ``dlrc run --cache-dir`` does."""
    base = base if isinstance(base, Params) else load_params(base)
    overrides = dict(variant.overrides)
    if cache_dir:
        overrides["cache_dir"] = cache_dir
    overrides["sweep.grid"] = None
    return base.with_overrides(overrides)


# how a run executes, not what it computes: a change must not rerun finished variants (the
# cache is keyed by content, so where it lives changes no number)
_EXECUTION_ONLY = {"sweep": None, "cache_dir": None, "radiomics": ("n_jobs", "dask_scheduler", "progress"),
                   "study": ("n_jobs", "twin_dir"), "deep": ("workers", "batch_size", "dask_scheduler")}
# files whose content (not where they are) the numbers depend on
_CONTENT_KEYS = (("radiomics", "settings"), (None, "published_values"), ("study", "manifest"))


def fingerprint(params: Params, notebooks: list[str]) -> str:
    """What a variant's numbers depend on: its parameters (less the execution settings) and
    the notebooks it runs."""
    dump = params.model_dump(mode="json")
    for section, keys in _EXECUTION_ONLY.items():
        if keys is None:
            dump.pop(section, None)
        else:
            for k in keys:
                dump.get(section, {}).pop(k, None)
    for section, key in _CONTENT_KEYS:
        holder = dump if section is None else dump.get(section, {})
        value = holder.get(key)
        if value and Path(value).is_file():
            holder[key] = "sha256:" + hashlib.sha256(Path(value).read_bytes()).hexdigest()
    doc = {"params": dump, "notebooks": notebooks}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
