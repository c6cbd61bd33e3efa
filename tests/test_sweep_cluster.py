"""``minifp sweep`` end to end on a Dask LocalCluster of 2 workers: one worker SIGKILLed
mid-run (its run resumes from its checkpoint, bit-identical to an uninterrupted run), one
run that kills every worker it lands on (recorded as failed, the sweep goes on)."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from minifp.checkpoint import load_checkpoint  # noqa: E402
from minifp.sweep import engine, expand, report  # noqa: E402
from minifp.sweep.spec import parse_spec  # noqa: E402
from minifp.sweep.task import OUTPUTS  # noqa: E402
from minifp.train import TrainConfig, train  # noqa: E402

SPEC = {"name": "killing", "grid": {"seed": [0, 1, 2]},
        "fixed": {"net": "mlp", "dataset": "digits", "dtype": "float16", "epochs": 3,
                  "batch_size": 64}}


def _killer(marker: str, once: str, always: str):
    """An on_epoch hook: SIGKILL this worker after epoch 2 of run ``once`` (the first
    time only) and after epoch 1 of run ``always`` (every time)."""
    def on_epoch(run_dir, row):
        name = Path(run_dir).name
        if name == always and row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if name == once and row["epoch"] == 2:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return on_epoch


def _metrics(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text()
            .splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_local_cluster_survives_killed_workers(tmp_path):
    import dask
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = parse_spec(SPEC)
    runs = expand(spec)
    once, always, plain = runs
    out = tmp_path / "sweep"
    lines = []
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        outcome = engine.run_sweep(spec, runs, out, workers=2, echo=lines.append,
                                   on_epoch=_killer(str(tmp_path / "killed"), once.id,
                                                    always.id))
    assert (tmp_path / "killed").exists()
    rows = {r["id"]: r for r in outcome.rows}
    assert rows[once.id]["status"] == "complete" and rows[plain.id]["status"] == "complete"
    assert rows[once.id]["resumed_from"] == 2
    assert "resuming from epoch 2" in (out / once.id / "log.txt").read_text()
    assert rows[always.id]["status"] == "failed"
    assert "worker died 2 times" in rows[always.id]["reason"]
    logged = engine.read_results(out)
    assert sorted(r["id"] for r in logged) == sorted(r.id for r in runs)
    assert any("2/3 done" in line and "1 failed" in line and "ETA" in line for line in lines)

    # the killed-and-resumed run is bit-identical to an uninterrupted one
    ref_dir = tmp_path / "uninterrupted"
    train(TrainConfig(**once.options, out=str(ref_dir), progress=False, quiet=True),
          echo=lambda line: None)
    assert _metrics(out / once.id) == _metrics(ref_dir)
    a = load_checkpoint(out / once.id / "checkpoint.h5")
    b = load_checkpoint(ref_dir / "checkpoint.h5")
    assert a["params"].keys() == b["params"].keys()
    for name in a["params"]:
        np.testing.assert_array_equal(a["params"][name], b["params"][name])

    # rerunning continues: the finished runs are kept, only the failed one is to run
    again = engine.plan(out, runs)
    assert [r.id for r, _ in again.finished] == [once.id, plain.id]
    assert [r.id for r in again.todo] == [always.id] and again.resumable == 1

    # the report: 3 runs, one configuration, the failure counted
    table = report.build(out)
    assert (table.total, table.complete, table.failed) == (3, 2, 1)
    assert np.load(out / plain.id / OUTPUTS)["softmax"].shape[1] == 10


def test_sweep_on_an_existing_cluster(tmp_path, monkeypatch):
    """--scheduler: the same runs on a cluster minifp did not start (and does not stop);
    the progress line also comes while no run finishes."""
    from click.testing import CliRunner
    monkeypatch.setattr(engine, "QUIET_SECONDS", 0.0)

    from minifp.cli import main
    spec = tmp_path / "two.toml"
    spec.write_text('name = "two"\n[grid]\nseed = [0, 1]\n[fixed]\nnet = "mlp"\n'
                    'dataset = "digits"\nepochs = 1\n')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster:
        r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"),
                                      "--scheduler", cluster.scheduler_address],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "2 runs, 2 complete" in r.output and f"scheduler {cluster.scheduler_address}" \
            in r.output
        assert any(line.startswith("  [0/2 done, ") for line in r.output.splitlines())
        with distributed.Client(cluster.scheduler_address, timeout="5s") as client:
            assert len(client.scheduler_info()["workers"]) == 1    # still there
    assert len(engine.read_results(tmp_path / "o")) == 2


def _visible_devices():
    import time
    time.sleep(0.3)                  # the two workers hold a task each at the same time
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_gpu_cluster_gives_each_worker_its_own_gpu():
    """The --device cuda cluster, without a GPU: 2 workers offering GPU=1 each, each seeing
    one device; tasks asking for the GPU resource run one per worker."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with engine.gpu_cluster(2) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        info = client.scheduler_info()["workers"].values()
        assert sorted(w["resources"].get("GPU") for w in info) == [1, 1]
        futures = [client.submit(_visible_devices, key=f"gpu-{i}", resources={"GPU": 1})
                   for i in range(4)]
        assert sorted(set(client.gather(futures))) == ["0", "1"]
