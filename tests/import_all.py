"""Import every module of the `sdedit` package using only its base dependencies.

A plain `python3 install.py` installs the base dependencies of pyproject.toml and nothing from the extras; a
module that imports a package only `[dev]` brings (scipy was one) breaks the user's install while every dev
test passes. Run as a script in a plain install's Python (CI does, before the dev install) it imports every
module there. With `--only-base`, in a dev install, it refuses every import of a distribution outside the
base dependencies' closure (as read from this Python's installed metadata), so a test can check the same
thing without a second environment.

Exit 0 and "imported N modules" on success; exit 1 with one line per module that failed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.metadata as md
import pkgutil
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def base_requirements() -> list[str]:
    """The `dependencies` of pyproject.toml (not the extras)."""
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def closure(requirements: list[str]) -> set[str]:
    """Distribution names reachable from `requirements` without any extra, as installed here."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo.extend(Requirement(r) for r in (md.requires(name) or []))
        except md.PackageNotFoundError:
            pass  # not installed (an optional platform package): nothing to import from it anyway
    return seen


class _OnlyBase(importlib.abc.MetaPathFinder):
    """Refuses top-level modules that belong to installed distributions outside the allowed set."""

    def __init__(self, allowed: set[str]) -> None:
        owners = md.packages_distributions()
        self.blocked = {mod for mod, dists in owners.items()
                        if not any(d.lower().replace("_", "-") in allowed for d in dists)}

    def find_spec(self, fullname, path=None, target=None):
        if "." not in fullname and fullname in self.blocked:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not a base dependency of sdedit)",
                                      name=fullname)
        return None


def import_everything() -> tuple[int, list[str]]:
    import sdedit

    failures, count = [], 0
    for info in pkgutil.walk_packages(sdedit.__path__, "sdedit."):
        if info.name.endswith("__main__"):
            continue  # running it would start the CLI
        count += 1
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, one line each
            failures.append(f"{info.name}: {type(exc).__name__}: {exc}")
    return count, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-base", action="store_true",
                        help="refuse imports of installed distributions outside the base dependencies")
    args = parser.parse_args()
    if args.only_base:
        allowed = closure(base_requirements()) | {"sdedit"}
        sys.meta_path.insert(0, _OnlyBase(allowed))
    count, failures = import_everything()
    for line in failures:
        print(line)
    if failures:
        return 1
    print(f"imported {count} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
