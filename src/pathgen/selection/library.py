"""The attribute-prompt library: ~20 morphology prompts per TCGA project, plus the user's own.

The bundled file (``prompts/attributes.yaml``) is data, not code, so pathologists can edit it
without touching Python; the schema below rejects a malformed file before any tile is scored.
A user file may add prompts to a project, add new projects (any key, e.g. ``my-cohort``), or,
with ``replace=True``, replace the prompts of the projects it names.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# fmt: off
TCGA_PROJECTS = (
    "ACC", "BLCA", "BRCA", "CESC", "CHOL", "COAD", "DLBC", "ESCA", "GBM", "HNSC", "KICH", "KIRC",
    "KIRP", "LAML", "LGG", "LIHC", "LUAD", "LUSC", "MESO", "OV", "PAAD", "PCPG", "PRAD", "READ",
    "SARC", "SKCM", "STAD", "TGCT", "THCA", "THYM", "UCEC", "UCS", "UVM",
)
# fmt: on
_TCGA_SET = set(TCGA_PROJECTS)


class ProjectPrompts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    prompts: list[str] = Field(min_length=1)

    @field_validator("prompts")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()
        for text in value:
            text = " ".join(str(text).split())
            if not text:
                raise ValueError("a prompt is empty")
            if text.lower() not in seen:
                seen.add(text.lower())
                out.append(text)
        return out


class PromptLibrary(BaseModel):
    """Attribute prompts keyed by normalised project name (``TCGA-BRCA``, or a user key as given)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    projects: dict[str, ProjectPrompts]

    @field_validator("projects", mode="before")
    @classmethod
    def _normalise_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            norm = normalise_project(key)
            if norm is None:
                raise ValueError(f"empty project name {key!r}")
            out[norm] = {"prompts": item} if isinstance(item, list) else item
        return out

    def prompts_for(self, project: Any) -> list[str]:
        """The project's prompts, or [] for a missing/unknown project (cluster selection still runs)."""
        key = normalise_project(project)
        entry = self.projects.get(key) if key else None
        return list(entry.prompts) if entry else []


def normalise_project(value: Any) -> str | None:
    """'brca', 'TCGA_BRCA', ' TCGA-BRCA ' -> 'TCGA-BRCA'; other names are kept (stripped); empty -> None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    if not text:
        return None
    code = re.sub(r"^TCGA[-_ ]?", "", text.upper())
    return f"TCGA-{code}" if code in _TCGA_SET else text


@lru_cache(maxsize=1)
def _bundled_raw() -> str:
    return resources.files("pathgen.selection").joinpath("prompts/attributes.yaml").read_text("utf-8")


def bundled_library() -> PromptLibrary:
    return parse_library(yaml.safe_load(_bundled_raw()), "bundled prompts/attributes.yaml")


def parse_library(data: Any, source: str) -> PromptLibrary:
    """Validate a library; a mapping without a ``projects`` key is read as ``{project: prompts}``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a prompt file must be a mapping of projects to prompts")
    if "projects" not in data:
        data = {"projects": data}
    try:
        return PromptLibrary.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{source}: invalid prompt file: {exc}") from exc


def read_library_file(path: str | Path) -> PromptLibrary:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    return parse_library(data, str(path))


def load_library(user_file: str | Path | None = None, replace: bool = False) -> PromptLibrary:
    """The bundled library merged with a user file: added to, or (``replace``) replaced per project."""
    library = bundled_library()
    if user_file is None:
        return library
    user = read_library_file(user_file)
    projects = dict(library.projects)
    for key, entry in user.projects.items():
        if replace or key not in projects:
            projects[key] = entry
        else:
            base = projects[key]
            merged = ProjectPrompts(name=entry.name or base.name, prompts=base.prompts + entry.prompts)
            projects[key] = merged
    return PromptLibrary(version=library.version, projects=projects)
