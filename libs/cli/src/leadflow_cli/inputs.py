"""Reading what the user gives: files (``-`` for stdin), comma lists, and bodies built from flags."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote


class UsageError(Exception):
    """The command line or an input file is wrong; nothing was sent."""


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def read_json(path: str) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{'stdin' if path == '-' else path} is not valid JSON: {exc}") from None


def read_object(path: str) -> dict[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return value


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def segment(value: object) -> str:
    """One path segment, escaped so an id can never change the route."""
    return quote(str(value), safe="")


def body_from(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, Any]:
    """The ``-f`` file's object (if any) overlaid with the flags that were given.

    ``flags`` maps an argparse destination to the API field it sets.
    """
    body = read_object(args.file) if getattr(args, "file", None) else {}
    for dest, api_field in flags.items():
        value = getattr(args, dest, None)
        if value is not None:
            body[api_field] = value
    return body
