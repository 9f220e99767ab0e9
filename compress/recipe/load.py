"""Read a recipe file, apply `--set path=value` overrides, validate, and turn errors into one line; `yaml_form` is
the inverse (a validated recipe as the YAML a user writes)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import CompressError
from .schema import Recipe


def apply_override(raw: dict, assignment: str) -> None:
    """`stages.1.steps=200` sets field `steps` of the second stage (`- distill: {...}`); values are YAML."""
    if "=" not in assignment:
        raise CompressError("--set", f"{assignment!r} is not PATH=VALUE", "e.g. --set stages.1.steps=200")
    path, value = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = raw
    for i, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise CompressError("--set", f"{path}: index {key} is out of range", f"the list has {len(node)} items")
            node = node[int(key)]
            if keys[i - 1] == "stages" and isinstance(node, dict) and len(node) == 1:
                node = next(iter(node.values()))  # - prune: {...}: step into the stage's fields
                if node is None:
                    raise CompressError("--set", f"{path}: the stage has no field block")
        else:
            node = node.setdefault(key, {})
    node[keys[-1]] = yaml.safe_load(value)


SHIPPED = Path(__file__).resolve().parents[2] / "recipes"  # the repository's recipes/ (source checkouts)
DEFAULT = "minilm-sentiment"


def shipped() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file, or the name of a shipped recipe (`minilm-sentiment` -> recipes/minilm-sentiment.yaml)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if (SHIPPED / f"{name_or_path}.yaml").exists():
        return SHIPPED / f"{name_or_path}.yaml"
    raise CompressError(
        "recipe", f"{path} does not exist", f"give a recipe YAML file or a shipped recipe: {', '.join(shipped())}"
    )


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    path = find_recipe(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise CompressError("recipe", f"{path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise CompressError("recipe", f"{path} must hold a mapping with name, model, task, data, stages")
    for o in overrides:
        apply_override(raw, o)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "recipe"
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise CompressError(f"{path.name}: {where}", msg + more, "see docs/recipe.md for allowed fields") from None


def yaml_form(recipe: Recipe) -> dict:
    """The recipe as a user writes it (`- prune: {...}` stage items), for recipe.yaml and model cards."""
    data = recipe.model_dump(mode="json", exclude_none=True)
    data["stages"] = [{s.pop("type"): s} for s in copy.deepcopy(data["stages"])]
    return data
