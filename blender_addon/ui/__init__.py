"""Panels, operators, menus and preferences. Importing this imports ``bpy`` only."""

from __future__ import annotations

from . import menus, operators, panels, preferences, video_operators

_modules = (preferences, operators, video_operators, panels, menus)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
