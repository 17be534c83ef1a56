"""Scene recipes: moved to ``datagen.scenes.recipes``; this name re-exports it for the
callers not yet moved (the CLI and the build pipeline)."""

from datagen.scenes.recipes import Recipe, available, load, scenes_dir

__all__ = ["Recipe", "available", "load", "scenes_dir"]
