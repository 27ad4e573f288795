"""Versioned prompt files: ``agents/prompts/<agent>/<version>.txt``, sections ``### system`` etc.

A prompt is data, not code: a new version is a new file, so an experiment never overwrites the
prompt that produced earlier captions, and the journal keys on the version and a hash of its text
(an edit without a new version still re-runs the calls it affects). Only ``{name}`` fields named in
the mapping are substituted, so JSON braces in a prompt need no escaping.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

AGENTS = ("describe", "revise", "summarize")
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Prompt:
    agent: str
    version: str
    sections: dict[str, str]
    sha: str

    @property
    def id(self) -> str:
        """Version plus content hash: what the journal keys on."""
        return f"{self.version}@{self.sha[:12]}"

    def render(self, section: str, **fields: Any) -> str:
        if section not in self.sections:
            raise KeyError(f"prompt {self.agent}/{self.version} has no '### {section}' section")
        return _FIELD.sub(
            lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), self.sections[section]
        )


def prompt_dir() -> Path:
    return Path(str(resources.files("pathgen.agents") / "prompts"))


def available_versions(agent: str) -> list[str]:
    folder = prompt_dir() / agent
    return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []


def load_prompt(agent: str, version: str = "v1") -> Prompt:
    """Load a packaged prompt by agent and version, or any file when ``version`` is a path."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; agents: {', '.join(AGENTS)}")
    path = Path(version).expanduser()
    if not (path.suffix == ".txt" and path.is_file()):
        path = prompt_dir() / agent / f"{version}.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no prompt {agent}/{version}; available: {', '.join(available_versions(agent)) or 'none'}"
        )
    text = path.read_text(encoding="utf-8")
    sections = parse_sections(text)
    for required in ("system", "user", "reask"):
        if required not in sections:
            raise ValueError(f"{path}: missing '### {required}' section")
    name = path.stem if path.parent == prompt_dir() / agent else str(path)
    return Prompt(agent, name, sections, hashlib.sha256(text.encode()).hexdigest())


def parse_sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}
