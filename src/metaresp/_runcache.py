"""What ``metaresp run`` keeps between runs, so that a run redoes only what moved.

Each analysis of the plan gets a *fingerprint*: the SHA-256 of the canonical JSON of
exactly what its output depends on,

- the analysis as the plan resolves it (name, title, selection, grouping, model, ...);
- the records it can see: every record of every study that has a record the analysis
  selects (:func:`metaresp.analysis.selects`), in corpus order, with all their fields (a
  study's other groups matter to how its combined groups are classified);
- the figure settings (:data:`FIGURE_SETTINGS`: resolution, formats, the smallest class
  drawn as a cumulative plot);
- the metaresp version and a digest of its source code and of the versions of the
  libraries that compute and draw (NumPy, SciPy, matplotlib, forestplot), so that an
  upgrade or a code change redraws everything.

An analysis that moved is refitted, but each of its figures is redrawn only when what it
draws changed: a figure has its own fingerprint (its data, its file name, the settings and
the code), so that a new study of one class redraws the forest plots that show it and the
cumulative plot of that class only.

The cache lives in the results folder, in ``.cache/``: ``manifest.json`` maps every
analysis to its fingerprint and the figure files it drew, every figure to its
fingerprint, and
``analyses/<fingerprint>.pickle`` holds its fit (the :class:`~metaresp.analysis.
AnalysisResult`) and its cumulative steps. A run whose analysis has the fingerprint of
the previous run takes the fit from there and hard-links (or copies) the figures from the
previous results folder into the new one; the folder is still built aside and swapped in
as a whole. Anything missing or unreadable in the cache only means that the analysis is
redone. The pickles are read as trusted files, like the code itself: a results folder
from someone else should be run with ``--force`` (or deleted) first.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.analysis import AnalysisResult
    from metaresp.cumulative import CumulativeStep
    from metaresp.plan import Analysis
    from metaresp.records import Record

__all__ = [
    "CACHE_FOLDER",
    "FIGURE_DPI",
    "FIGURE_SETTINGS",
    "Cached",
    "Fingerprints",
    "NewCache",
    "PreviousRun",
    "code_digest",
]

CACHE_SCHEME = 1
"""Version of the cache layout; a cache of another scheme is ignored."""
CACHE_FOLDER = ".cache"
MANIFEST_NAME = "manifest.json"

FIGURE_DPI = 300
"""PNG resolution: 300 dpi, what journals ask for figures printed in colour or greyscale
(line art is asked at 600-1200 dpi, but these figures carry text and shaded marks, and the
SVG beside each PNG scales without limit)."""
FIGURE_SETTINGS: Mapping[str, Any] = {
    "dpi": FIGURE_DPI,
    "formats": ["png", "svg"],
    "cumulative_min_k": 3,
}
"""Everything about the figures that is not in the data; part of every fingerprint."""

_LIBRARIES = ("numpy", "scipy", "matplotlib", "forestplot", "pydantic")


@functools.cache
def code_digest() -> str:
    """SHA-256 of metaresp's source files (by relative path) and of the versions of the
    libraries that compute and draw the results."""
    from importlib import metadata

    import metaresp

    root = Path(metaresp.__file__).parent
    digest = hashlib.sha256(metaresp.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    for name in _LIBRARIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"\0{name}={version}".encode())
    return digest.hexdigest()


def _canon(value: Any) -> Any:
    """``value`` as plain JSON values, independent of set and hash order."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canon(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set | frozenset):
        return sorted((_canon(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, enum.Enum):
        return _canon(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Fingerprints:
    """The fingerprint of every analysis on ``records`` with the figure settings
    ``figures`` (see the module docstring); each record is serialised once."""

    def __init__(
        self, records: Sequence[Record], figures: Mapping[str, Any] = FIGURE_SETTINGS
    ) -> None:
        self.records = list(records)
        self._record_digests = [_digest(_canon(r)) for r in self.records]
        self._base = {"scheme": CACHE_SCHEME, "code": code_digest(), "figures": _canon(figures)}

    def of(self, analysis: Analysis, drawn: bool = True) -> str:
        """Every record of the studies that have a record ``analysis`` selects
        (:func:`metaresp.analysis.selects`), with the analysis and the settings, and
        whether its figures are drawn (``drawn``: the plan's ``figures`` scope)."""
        from metaresp.analysis import selects

        studies = {r.study for r in self.records if selects(analysis, r)}
        seen = [
            d for r, d in zip(self.records, self._record_digests, strict=True) if r.study in studies
        ]
        return _digest(
            {**self._base, "analysis": _canon(analysis), "records": seen, "drawn": drawn}
        )

    def of_figure(self, name: str, data: Any) -> str:
        """The fingerprint of one figure: what it draws (``data``), where (``name``,
        relative to the results folder), the figure settings and the code."""
        return _digest({**self._base, "figure": name, "data": _canon(data)})

    def of_run(self, analyses: Sequence[str], meta: Mapping[str, Any]) -> str:
        """The fingerprint of the files written from all analyses together (tables,
        summary, report, cumulative.csv): every analysis's fingerprint, in plan order, and
        the run's descriptive fields (which carry the corpus version)."""
        return _digest({**self._base, "analyses": list(analyses), "meta": _canon(meta)})


@dataclass(frozen=True)
class Cached:
    """One analysis as the previous run left it."""

    fingerprint: str
    result: AnalysisResult
    steps: dict[str, list[CumulativeStep]]
    files: tuple[str, ...]
    """Figure files, relative to the results folder."""


def _pickle_path(folder: Path, fp: str) -> Path:
    return folder / CACHE_FOLDER / "analyses" / f"{fp}.pickle"


class PreviousRun:
    """The cache of an earlier results folder (empty when there is none, or ``force``)."""

    def __init__(self, out: Path, *, force: bool = False) -> None:
        self.out = out
        self.entries: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.run: tuple[str, tuple[str, ...]] | None = None
        self.figures: dict[str, str] = {}
        manifest = out / CACHE_FOLDER / MANIFEST_NAME
        if force or not manifest.is_file():
            return
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if data.get("scheme") != CACHE_SCHEME:
                return
            for name, entry in data["analyses"].items():
                self.entries[str(name)] = (
                    str(entry["fingerprint"]),
                    tuple(str(f) for f in entry["files"]),
                )
            figures = data.get("figures")
            if isinstance(figures, dict):
                self.figures = {str(k): str(v) for k, v in figures.items()}
            run = data.get("run")
            if isinstance(run, dict):
                self.run = (str(run["fingerprint"]), tuple(str(f) for f in run["files"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.entries, self.run, self.figures = {}, None, {}

    @property
    def empty(self) -> bool:
        return not self.entries

    def lookup(self, name: str, fp: str) -> Cached | None:
        """The cached analysis when its fingerprint is ``fp`` and all its files are there."""
        entry = self.entries.get(name)
        if entry is None or entry[0] != fp:
            return None
        fp_old, files = entry
        if not all((self.out / f).is_file() for f in files):
            return None
        try:
            with _pickle_path(self.out, fp_old).open("rb") as fh:
                result, steps = pickle.load(fh)
        except Exception:
            return None
        return Cached(fp_old, result, steps, files)

    def run_files(self, fp: str) -> tuple[str, ...] | None:
        """The files written from all analyses together, when the previous run wrote them
        with fingerprint ``fp`` and they are all there."""
        if self.run is None or self.run[0] != fp:
            return None
        files = self.run[1]
        return files if all((self.out / f).is_file() for f in files) else None

    def figure(self, name: str, fp: str, files: Sequence[str]) -> bool:
        """Whether the previous run drew figure ``name`` with fingerprint ``fp`` and
        its ``files`` are all there."""
        return self.figures.get(name) == fp and all((self.out / f).is_file() for f in files)

    def foreign(self) -> list[str]:
        """Files of the previous results folder that no run wrote (a user's notes): every
        file the manifest does not list, outside ``figures/`` and the cache. Without a
        manifest nothing is known to be foreign (the folder is the run's, as before)."""
        if self.empty or self.run is None:
            return []
        owned = set(self.run[1]) | {f for _, files in self.entries.values() for f in files}
        out: list[str] = []
        for path in sorted(self.out.rglob("*")):
            name = path.relative_to(self.out).as_posix()
            top = name.split("/")[0]
            if path.is_file() and name not in owned and top not in ("figures", CACHE_FOLDER):
                out.append(name)
        return out

    def bring(self, files: Iterable[str], folder: Path) -> None:
        """Hard-link (else copy) ``files`` of the previous results into ``folder``."""
        for name in files:
            source, target = self.out / name, folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


class NewCache:
    """The cache the run being written leaves in its results folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.entries: dict[str, dict[str, Any]] = {}
        self.run: dict[str, Any] | None = None
        self.figures: dict[str, str] = {}

    def keep(
        self,
        name: str,
        fp: str,
        result: AnalysisResult,
        steps: Mapping[str, list[CumulativeStep]],
        files: Iterable[Path],
        previous: PreviousRun | None = None,
    ) -> None:
        """Record one analysis (its fit pickled, or linked from ``previous``)."""
        target = _pickle_path(self.folder, fp)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = _pickle_path(previous.out, fp) if previous is not None else None
        if source is not None and source.is_file():
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        else:
            with target.open("wb") as fh:
                pickle.dump((result, dict(steps)), fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.entries[name] = {
            "fingerprint": fp,
            "files": sorted(Path(f).relative_to(self.folder).as_posix() for f in files),
        }

    def keep_run(self, fp: str, files: Iterable[Path]) -> None:
        """Record the files written from all analyses together."""
        names = sorted(Path(f).relative_to(self.folder).as_posix() for f in files)
        self.run = {"fingerprint": fp, "files": names}

    def write(self) -> None:
        data: dict[str, Any] = {
            "scheme": CACHE_SCHEME,
            "analyses": dict(sorted(self.entries.items())),
        }
        if self.figures:
            data["figures"] = dict(sorted(self.figures.items()))
        if self.run is not None:
            data["run"] = self.run
        path = self.folder / CACHE_FOLDER / MANIFEST_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
