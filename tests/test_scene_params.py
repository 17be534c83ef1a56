"""Scene generators on their parameter ranges (datagen.scenes.params): every generator
documents each parameter, returns a scene or a one-line ConfigError anywhere in (and
out of) those ranges and in the ``[vary.*]`` ranges of the shipped build recipes, in
bounded time; bad values through the real CLI exit 2 naming the recipe and parameter."""

from __future__ import annotations

import contextlib
import inspect
import signal
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagen.errors import ConfigError, SceneLoadError
from datagen.pipeline import load_config
from datagen.pipeline.plan import pipelines_dir
from datagen.pipeline.vary import draw_params
from datagen.scene import Scene
from datagen.scenes import GENERATORS, PARAMS, generate, load_generators, param_names, recipes
from datagen.scenes.params import Param, problem

load_generators()
DATAGEN = [sys.executable, "-m", "datagen"]
ASSETS = sorted(str(p.relative_to(recipes.scenes_dir()))
                for p in (recipes.scenes_dir() / "assets").glob("*.glb"))
SCENE_SECONDS = 60
"""a generator call that runs longer than this is a hang (the slowest in-range scene, a
6 x 6 city, takes ~2 CPU-seconds); a wall-clock alarm, not a speed test."""


@contextlib.contextmanager
def time_limit(seconds: int):
    """TimeoutError inside the block after ``seconds`` of wall time (SIGALRM: Python code,
    the generators' loops, is interrupted between bytecodes)."""
    def expire(signum, frame):
        raise TimeoutError(f"no scene after {seconds} s: a loop without a bound?")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def values(name: str, param: Param) -> st.SearchStrategy:
    """Any value of the documented range of ``param``."""
    if param.kind == "int":
        base = st.integers(int(param.lo), int(param.hi))
    elif param.kind == "float":
        base = st.floats(param.lo, param.hi, allow_nan=False)
    elif param.kind == "str":
        base = st.sampled_from(param.choices) if param.choices else st.sampled_from(ASSETS)
    elif param.kind == "rgb_list":
        base = st.lists(st.lists(st.floats(param.lo, param.hi), min_size=3, max_size=3),
                        min_size=param.count[0], max_size=param.count[1])
    else:  # str_list: showroom assets
        base = st.lists(st.sampled_from(ASSETS), min_size=param.count[0], max_size=min(param.count[1], 4))
    return st.one_of(st.none(), base) if param.optional else base


def documented(generator: str) -> st.SearchStrategy:
    """A dict of some of the generator's parameters, each anywhere in its range."""
    table = PARAMS[generator]
    return st.fixed_dictionaries({}, optional={k: values(k, p) for k, p in table.items()})


def shipped_variations() -> list:
    """pytest params (scene, [vary.scene] table), one per table of every shipped build recipe."""
    out = []
    for path in sorted(pipelines_dir().glob("*.toml")):
        for scene, table in tomllib.loads(path.read_text()).get("vary", {}).items():
            out.append(pytest.param(scene, table, id=f"{path.stem}-{scene}"))
    return out


def build_or_refuse(generator: str, params: dict, seed: int) -> Scene | None:
    """The scene, or None where the generator refused with a ConfigError of one line (or,
    for a glTF file, a SceneLoadError: ``camera = "file"`` of a file without a camera)."""
    refusals = (ConfigError, SceneLoadError) if generator == "gltf" else ConfigError
    with time_limit(SCENE_SECONDS):
        try:
            scene = generate(generator, params, seed)
        except refusals as exc:
            assert "\n" not in str(exc) and str(exc)
            return None
    assert isinstance(scene, Scene) and scene.drawables()
    lo, hi = scene.bounds
    assert np.isfinite(scene.bounds).all() and (lo < hi).all()
    assert np.isfinite(scene.camera.view(0.0)).all()
    return scene


SETTINGS = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""deadline None: ``time_limit`` bounds each scene instead (a hypothesis deadline only
measures after the call returns, and fails as flaky where a loaded machine is slower
once than on the replay). Few examples: each builds a whole scene (up to ~2 s); the
ends of every range are built every time by ``test_range_ends...``."""


def range_end(param: Param, high: bool):
    """The low or high end of a documented range."""
    end = -1 if high else 0
    if param.kind in ("int", "float"):
        value = param.hi if high else param.lo
        return int(value) if param.kind == "int" else value
    if param.kind == "str":
        return param.choices[end] if param.choices else ASSETS[end]
    n = param.count[1 if high else 0]
    if param.kind == "rgb_list":
        return [[param.hi if high else param.lo] * 3] * n
    return [ASSETS[k % len(ASSETS)] for k in range(n)]


@pytest.mark.parametrize("high", [False, True], ids=["low", "high"])
@pytest.mark.parametrize("generator", ["primitives", "racing", "city", "forest", "showroom", "gltf"])
def test_range_ends_give_a_scene_or_a_config_error(generator, high):
    """Every parameter at the low (then the high) end of its range at once: zero trees,
    cars, lights, grass; the largest city and forest."""
    params = {k: range_end(p, high) for k, p in PARAMS[generator].items()}
    if generator == "gltf":
        params["path"] = str(recipes.scenes_dir() / params["path"])
    build_or_refuse(generator, params, 0)


@pytest.mark.parametrize("generator", ["primitives", "racing", "city", "forest", "showroom", "gltf"])
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_documented_ranges_give_a_scene_or_a_config_error(generator, data, seed):
    params = data.draw(documented(generator))
    if generator == "gltf":
        params["path"] = str(recipes.scenes_dir() / params.get("path", ASSETS[0]))
    build_or_refuse(generator, params, seed)


@pytest.mark.parametrize(("scene", "table"), shipped_variations())
@settings(SETTINGS, max_examples=3)
@given(seed=st.integers(0, 2**31 - 1))
def test_shipped_vary_ranges_give_a_scene(scene, table, seed):
    """What a build draws per sequence from the shipped recipes always builds."""
    recipe = recipes.load(scene)
    drawn = draw_params(table, lambda name: np.random.default_rng([seed, zlib.crc32(name.encode())]))
    assert build_or_refuse(recipe.generator, {**recipe.params, **drawn}, seed) is not None


def test_every_parameter_is_documented_and_its_default_in_range():
    for name, fn in GENERATORS.items():
        keywords = [p for p in inspect.signature(fn).parameters if p != "seed"]
        assert list(PARAMS[name]) == keywords == param_names(name), name
        for key, param in PARAMS[name].items():
            default = inspect.signature(fn).parameters[key].default
            assert problem(param, default) is None, f"{name}.{key}: default {default!r} is out of range"
    for scene in recipes.available():  # and every shipped recipe's own params
        recipes.load(scene).check()


@pytest.mark.parametrize(("generator", "params", "message"), [
    ("racing", {"cars": 9}, "cars = 9: must be an integer 1 to 4"),
    ("racing", {"car": 2, "cars": 2}, "unknown parameter(s) car of generator 'racing'; valid: track_length,"),
    ("racing", {"cars": 2.5}, "cars = 2.5: must be an integer"),
    ("racing", {"speed_min": 70.0, "speed_max": 40.0}, "speed_min = 70.0 is above speed_max = 40.0"),
    ("racing", {"cars": 3, "car_colors": [[1, 0, 0]]}, "car_colors has 1 colours for cars = 3"),
    ("racing", {"first_shot": "aerial"}, "first_shot = 'aerial': must be one of 'chase', 'trackside'"),
    ("primitives", {"boxes": -5}, "boxes = -5: must be an integer 0 to 64"),
    ("primitives", {"boxes": "three"}, "boxes = 'three': must be an integer 0 to 64"),
    ("primitives", {"boxes": True}, "boxes = True: must be an integer"),
    ("primitives", {"plane_size": float("nan")}, "plane_size = nan: must be a number 4 to 400"),
    ("forest", {"trees": 2000}, "trees = 2000: must be an integer 0 to 300"),
    ("forest", {"trees": 300, "size": 20.0}, "trees = 300: only"),
    ("city", {"min_storeys": 9, "max_storeys": 3}, "min_storeys = 9 is above max_storeys = 3"),
    ("city", {"sidewalk_width": 9.0, "block_size": 20.0}, "sidewalk_width = 9.0 leaves less than 10 m"),
    ("showroom", {"assets": []}, "assets = []: must be a list of 1 to 12 strings"),
    ("gltf", {"camera": "drone"}, "camera = 'drone': must be one of 'orbit', 'file', 'auto'"),
])
def test_out_of_range_is_a_config_error_naming_the_parameter(generator, params, message):
    with time_limit(SCENE_SECONDS), pytest.raises(ConfigError) as info:
        generate(generator, params, 0)
    assert message in str(info.value)


def test_a_full_forest_gives_up_in_bounded_tries():
    """300 trees cannot stand 3 m apart in 20 m: the placement stops after 60 tries a tree."""
    with time_limit(SCENE_SECONDS), pytest.raises(ConfigError, match=r"only \d+ fit 3 m apart"):
        generate("forest", {"trees": 300, "size": 20.0}, 0)
    assert len(build_or_refuse("forest", {"trees": 12, "size": 20.0}, 0).drawables()) >= 3


def test_empty_batches_draw_nothing():
    """No cars, no lights, no trees: the empty merged meshes are left out of the draw list."""
    city = generate("city", {"cars": 0, "lights_per_side": 0, "blocks_x": 1, "blocks_z": 1}, 0)
    assert all(len(n.mesh.indices) for n in city.drawables())
    forest = generate("forest", {"trees": 0, "grass_clumps": 0, "leaf_cards": 0}, 0)
    assert [n.name for n in forest.drawables()] == ["ground", "trail"]


# -- through the CLI -----------------------------------------------------------------------------


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*DATAGEN, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("command", ["render", "build"])
def test_racing_with_nine_cars_is_one_line_exit_2(tmp_path, command):
    recipe = tmp_path / "crowded.toml"
    recipe.write_text('generator = "racing"\n[params]\ncars = 9\n')
    extra = ["--sequences", "1", "--frames", "1"] if command == "build" else ["--frames", "1"]
    proc = run(command, recipe, *extra, "--res", "32x18", "--spp", "8", "--out", tmp_path / "out",
               cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "crowded.toml" in proc.stderr and "cars = 9: must be an integer 1 to 4" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("value", "message"), [("-5", "boxes = -5"), ('"three"', "boxes = 'three'")])
def test_primitives_bad_boxes_is_one_line_exit_2(tmp_path, value, message):
    recipe = tmp_path / "boxes.toml"
    recipe.write_text(f'generator = "primitives"\n[params]\nboxes = {value}\n')
    proc = run("render", recipe, "--frames", "1", "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "boxes.toml" in proc.stderr and message in proc.stderr
    assert "must be an integer 0 to 64" in proc.stderr


def test_vary_out_of_a_parameters_range_is_refused_before_any_cluster(tmp_path):
    recipe = tmp_path / "build.toml"
    recipe.write_text('scenes = ["racing"]\nsequences = 2\nframes = 1\nres = "32x18"\nspp = 8\n'
                      "[vary.racing]\ncars = [1, 9]\n")
    with pytest.raises(ConfigError, match=r"vary.racing.cars = \[1, 9\] can draw 9, but cars must be an "
                                          "integer 1 to 4"):
        load_config(recipe)
    proc = run("build", "--recipe", recipe, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2 and "vary.racing.cars" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("generator", "params"), [
    ("racing", {}), ("city", {"blocks_x": 2, "blocks_z": 1}), ("forest", {"trees": 5}), ("primitives", {}),
    ("compose", {"objects": 2, "area": 3.0}), ("compose", {"objects": 0, "area": 150})])
def test_registered_clip_planes_are_the_built_cameras(generator, params):
    """The build reads near/far from the generator's registered clip planes without building
    the scene: they must be what the scene's camera has."""
    from datagen.scenes import CLIPS, clip_planes

    assert generator in CLIPS
    camera = generate(generator, params, 3).camera
    assert clip_planes(generator, params, 3) == (camera.near, camera.far)
