"""Locating the shared contract examples and comparing JSON documents by shape."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

_DEFAULT_SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared"
SHARED_DIR = Path(os.environ.get("SHARED_DIR", _DEFAULT_SHARED_DIR))
EXAMPLES_DIR = SHARED_DIR / "contracts-examples"


def example_files(kind: str) -> list[Any]:
    """pytest params, one per example file of ``kind``, or one skipped param when absent."""
    folder = EXAMPLES_DIR / kind
    files = sorted(folder.glob("*.json"))
    if not files:
        reason = f"no examples in {folder}: set SHARED_DIR to the shared/ checkout"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="missing")]
    return [pytest.param(path, id=path.stem) for path in files]


def example_stems(kind: str) -> set[str]:
    folder = EXAMPLES_DIR / kind
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: set SHARED_DIR to the shared/ checkout")
    return {path.stem for path in folder.glob("*.json")}


def load_example(path: Path) -> Any:
    return json.loads(path.read_bytes())


def json_shape(value: Any) -> Any:
    """``value`` with every scalar replaced by its JSON type name (int and float kept apart)."""
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_shape(item) for item in value]
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise TypeError(f"not a JSON value: {value!r}")
