"""Two real processes write different sequences of one store at the same time.

Each sequence lives in shards of its own and ``complete`` has one chunk per
sequence, so neither writer may lose the other's data: every sequence must read
back exactly. Frames are ``synthetic_frames`` (deterministic per seed), so the
parent can make the same frames to compare with.
"""

from __future__ import annotations

import multiprocessing

import numpy as np

from datagen import conventions as cv
from datagen.store import Layout, create_store, open_store, write_sequence
from datagen.store.measure import synthetic_frames
from datagen.store.schema import PER_FRAME

HR, SCALE, T, SEQUENCES = (48, 30), 2.0, 5, 6
LAYOUT = Layout(tile_hr=16, frames_per_shard=2, codec="blosc-zstd", level=1)


def frames_of(index: int):
    return synthetic_frames(HR, SCALE, T, seed=100 + index)


def write_some(path: str, indices: list[int], barrier) -> None:
    """Child process: write ``indices`` of train, starting when the other child does."""
    barrier.wait(timeout=60)
    for index in indices:
        write_sequence(path, "train", index, frames_of(index), {"scene": "synthetic", "seed": 100 + index})


def test_two_processes_write_different_sequences_of_one_store(tmp_path):
    path = create_store(tmp_path / "s", {"test": "concurrency"}, {"train": SEQUENCES}, T, HR, SCALE,
                        cv.conventions_block(SCALE, 8, 0.1, 100.0), layout=LAYOUT)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    # interleaved indices: neighbouring `complete` and metadata elements written at once
    workers = [ctx.Process(target=write_some, args=(str(path), list(range(k, SEQUENCES, 2)), barrier))
               for k in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    store = open_store(path)
    seqs = store.sequences("train")
    assert all(s.complete for s in seqs)
    assert [s.seed for s in seqs] == [100 + i for i in range(SEQUENCES)]
    for index in range(SEQUENCES):
        data = store.read_window("train", index)
        for name in PER_FRAME:
            want = np.stack([np.asarray(getattr(f, name)) for f in frames_of(index)])
            np.testing.assert_array_equal(data[name], want, err_msg=f"sequence {index} {name}")


FORKED_READ = """
import multiprocessing, sys
import numpy as np
from datagen.store import open_store

store = open_store(sys.argv[1])
parent = store.read_window("train", 0, 0, 2)["color_hr"]

def child(_):
    return store.read_window("train", 0, 0, 2)["color_hr"].tobytes() == parent.tobytes()

with multiprocessing.get_context("fork").Pool(2) as pool:
    print(pool.map(child, range(2)))
"""


def test_a_store_opened_before_a_fork_reads_in_the_children(tmp_path):
    """Training loaders fork workers (PyTorch's default on Linux): the zarr engine must
    work in a child forked after the parent opened and read the store."""
    import subprocess
    import sys

    path = create_store(tmp_path / "s", {"test": "fork"}, {"train": 1}, T, HR, SCALE,
                        cv.conventions_block(SCALE, 8, 0.1, 100.0), layout=LAYOUT)
    write_sequence(path, "train", 0, frames_of(0), {"scene": "synthetic", "seed": 100})
    done = subprocess.run([sys.executable, "-c", FORKED_READ, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True]"
