"""The schema's building blocks: frozen models, safe names (every id that becomes a file name) and content
hashes (the identity of tasks and attempts)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def is_safe_name(value: str) -> bool:
    """Every id that becomes a file name (task, agent, attempt) fits one pattern: no path can come of it."""
    return bool(NAME_PATTERN.fullmatch(value)) and ".." not in value


def _safe_name(value: str) -> str:
    if not is_safe_name(value):
        raise ValueError(f"{value!r} is not a safe name: letters, digits, '.', '_', '-' (no '..'), 200 at most")
    return value


def slug(value: str) -> str:
    """A safe name made of an outside name (a predictions file's model name)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", value).replace("..", "_").strip("._-")[:100]
    return text or "unnamed"


SafeName = Annotated[str, AfterValidator(_safe_name)]


def content_hash(data: Any, length: int = 12) -> str:
    """Stable short hash of JSON-able data: the identity of tasks and attempts, independent of file order."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]

