"""Study files on disk: a TOML file read and checked (a built-in study's or one's own model's), and the
built-in studies by name and by the kind of claim they test."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path

from noisereg.study.config.keypaths import StudyConfigError
from noisereg.study.config.study import StudyConfig, parse_config
from noisereg.study.config.user import UserStudyConfig, is_user_study, parse_user_config

__all__ = [
    "BUILTIN_DIR",
    "DEFAULT_STUDY",
    "UNGROUPED",
    "builtin_studies",
    "builtin_topics",
    "load_config",
    "resolve_study",
]

BUILTIN_DIR = Path(__file__).parent.parent / "builtin"
DEFAULT_STUDY = "case-study"


def load_config(path: str | Path) -> StudyConfig | UserStudyConfig:
    """Read and validate a TOML study file (a :class:`UserStudyConfig` when ``[model]`` names a factory).

    Relative ``data.path`` entries are resolved against the file's folder. Raises
    :class:`StudyConfigError` for a missing file, malformed TOML (with its line and column) or invalid
    content.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyConfigError([("", f"no such study file: {path}")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyConfigError([("", f"cannot read {path}: {exc}")], str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyConfigError([("", f"not valid TOML: {exc}")], str(path)) from None
    if is_user_study(raw):  # [model] names the user's factory: a study of their own model
        return parse_user_config(raw, source=str(path))
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        raw["data"] = {**data, "path": str((path.parent / data["path"]).resolve())}
    return parse_config(raw, source=str(path))


def builtin_studies() -> dict[str, Path]:
    """The built-in study files by name (the file name without ``.toml``)."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


UNGROUPED = "examples (no published claim)"
"""The group of the built-in studies whose file names no ``topic``."""


def builtin_topics() -> dict[str, list[str]]:
    """The built-in studies grouped by the kind of claim they test (their ``topic``): topic -> study
    names, topics in alphabetical order and the studies without one last, under :data:`UNGROUPED`."""
    groups: dict[str, list[str]] = {}
    for name, path in builtin_studies().items():
        with path.open("rb") as f:
            topic = tomllib.load(f).get("topic") or UNGROUPED
        groups.setdefault(topic, []).append(name)
    return {t: groups[t] for t in sorted(groups, key=lambda t: (t == UNGROUPED, t))}


def resolve_study(name_or_path: str | Path | None) -> StudyConfig | UserStudyConfig:
    """Load a study file, or a built-in study by name; ``None`` is the default (the case study)."""
    if name_or_path is None:
        name_or_path = DEFAULT_STUDY
    builtins = builtin_studies()
    if str(name_or_path) in builtins:
        return load_config(builtins[str(name_or_path)])
    path = Path(name_or_path)
    if not path.exists() and path.suffix != ".toml":
        close = difflib.get_close_matches(str(name_or_path), list(builtins), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise StudyConfigError(
            [("", f"{str(name_or_path)!r} is neither a study file nor a built-in study ({', '.join(builtins)}){hint}")],
            str(name_or_path),
        )
    return load_config(path)
