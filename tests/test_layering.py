"""The import rules of the code base, checked on every module of the package: each
is imported with importlib (so that it imports at all), and every import statement
in it, module level or inside a function, is held against the rules below."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import datagen

GL = ("moderngl", "datagen.gl", "datagen.gl_resources", "datagen.render", "datagen.shaders")
"""the modules that make or use GL objects."""

FORBIDDEN: dict[str, tuple[str, ...]] = {  # package prefix -> what it must never import
    # the store knows records and Zarr only: no GL, no scenes, no pipeline, no torch
    "datagen.store": (*GL, "datagen.scenes",
                      "datagen.gltf", "datagen.pipeline", "datagen.train", "datagen.bench", "torch"),
    # training reads the store and never the renderer or the scene generators
    "datagen.train": (*GL, "datagen.scenes",
                      "datagen.gltf", "datagen.pipeline", "datagen.bench"),
    # the scene model, the generators and glTF import know nothing of GL
    "datagen.scene": GL,
    "datagen.frame_setup": GL,  # the CPU side of a frame: matrices and uniforms
    "datagen.scenes": (*GL, "datagen.pipeline",
                       "datagen.store", "datagen.train"),
    "datagen.gltf": (*GL, "datagen.pipeline",
                     "datagen.store", "datagen.train"),
    # the conventions are the bottom layer: numpy, the standard library and the error classes only
    "datagen.conventions": ("datagen.",),
    "datagen.errors": ("datagen.",),
}
ALLOWED: dict[str, tuple[str, ...]] = {  # module -> what it may import despite FORBIDDEN
    "datagen.conventions": ("datagen.errors",),  # parse_size raises ConfigError
}


def modules() -> list[str]:
    names = ["datagen"]
    for info in pkgutil.walk_packages(datagen.__path__, "datagen."):
        if info.name != "datagen.__main__":  # running it would parse this process's argv
            names.append(info.name)
    return names


def imported_names(module: str) -> set[str]:
    """Every module an import statement of ``module`` names, lazy imports included."""
    spec = importlib.util.find_spec(module)
    package = module if spec.submodule_search_locations else module.rpartition(".")[0]
    return names_in(Path(spec.origin).read_text(encoding="utf-8"), package)


def names_in(source: str, package: str) -> set[str]:
    """The modules the import statements of ``source`` (a module of ``package``) name."""
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def rules_for(module: str) -> tuple[str, ...]:
    return tuple(bad for prefix, bads in FORBIDDEN.items()
                 if module == prefix or module.startswith(prefix + ".") for bad in bads)


def breaks(name: str, bad: str) -> bool:
    return name.startswith(bad) if bad.endswith(".") else name == bad or name.startswith(bad + ".")


@pytest.mark.parametrize("module", modules())
def test_module_imports_and_keeps_the_layering(module):
    importlib.import_module(module)
    rules = rules_for(module)
    allowed = ALLOWED.get(module, ())
    broken = sorted({name for name in imported_names(module) for bad in rules
                     if breaks(name, bad) and not any(breaks(name, ok) for ok in allowed)})
    assert not broken, f"{module} imports {broken}, which its layer must not"


def test_the_rules_catch_a_lazy_import():
    # the checker itself, on a store module that renders inside a function
    source = "import numpy\n\ndef f():\n    from ..render import Renderer\n    from . import writer\n"
    names = names_in(source, "datagen.store")
    assert {"numpy", "datagen.render", "datagen.render.Renderer", "datagen.store.writer"} <= names
    broken = sorted(n for n in names for bad in rules_for("datagen.store.x") if breaks(n, bad))
    assert broken == ["datagen.render", "datagen.render.Renderer"]
    assert not breaks("datagen.renderer_x", "datagen.render")
