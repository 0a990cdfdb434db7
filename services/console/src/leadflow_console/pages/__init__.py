"""The console's pages: one APIRouter per area (``pages/<area>.py``), each exported as a ``Page`` with
its navigation entries, and listed once in ``leadflow_console.app.PAGES``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from leadflow_console.auth import Role


@dataclass(frozen=True)
class NavItem:
    """A link in the navigation, shown only to ``roles`` (admins see everything)."""

    label: str
    href: str
    roles: tuple[Role, ...]

    def visible_to(self, role: str) -> bool:
        return role == "admin" or role in self.roles


@dataclass(frozen=True)
class Page:
    router: APIRouter
    nav: tuple[NavItem, ...] = ()
