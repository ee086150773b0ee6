"""`datagen plan`: the paper-scale forecast, JSON, measured costs from a run, bad input."""

import json

from helpers import run_cli


def test_paper_scale_plan_prints_total_gpu_hours():
    r = run_cli("plan", "--config", "sigma_set27k", "--num-samples", "27000", "--gpus", "16")
    assert r.returncode == 0, r.stderr
    total = [line for line in r.stdout.splitlines() if line.startswith("total:")]
    assert total and "GPU-hours" in total[0]
    assert "bottleneck:" in r.stdout and "estimates, not measurements" in r.stdout
    j = json.loads(run_cli("plan", "--config", "sigma_set27k", "-n", "27000", "--gpus", "16", "--json").stdout)
    assert j["total_gpu_hours"] > 50 and j["expected_kept"] < 27000
    assert {s["stage"] for s in j["stages"]} >= {"t2i", "repose"}
    assert "t2i" in j["estimated_stages"]
    assert sum(s["gpu_hours"] for s in j["stages"]) == __import__("pytest").approx(j["total_gpu_hours"], abs=0.05)


def test_plan_from_a_finished_run_uses_its_measurements(tmp_path, small_config_file):
    run = tmp_path / "RUN"
    assert run_cli("run", "--config", str(small_config_file), "--out", str(run), "--executor", "local").returncode == 0
    r = run_cli("plan", "--config", str(small_config_file), "--from", str(run), "--json", "-n", "1000")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert all(s["source"] == "measured: RUN" for s in j["stages"])
    assert j["estimated_stages"] == []
    kept = sum(json.loads(p.read_text())["samples_written"] for p in (run / "final").glob("*.stats.json"))
    assert abs(j["expected_kept"] - 1000 * kept / 12) < 1


def test_plan_bad_input_is_one_line(tmp_path):
    bad = (["--from", str(tmp_path / "nope")], ["--from", str(tmp_path)], ["-n", "0"], ["--cpus", "0"], ["--gpus", "-1"],
           ["--config", "missing.yaml"])
    for args in bad:
        r = run_cli("plan", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert r.stderr.strip().startswith("datagen: error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_plan_shows_the_shards_a_target_needs():
    from datagen.config import load_config, resolve_config_path
    from datagen.pipeline.forecast import forecast, render

    for target in (27000, 20000):
        cfg = load_config(resolve_config_path("sigma_set27k"), [f"run.target_kept={target}"])
        report = forecast(cfg, cfg.run.num_samples, 8, 64)
        t = report["target"]
        survival = report["expected_kept"] / cfg.run.num_samples
        assert t["expected_survival"] == round(survival, 4)
        assert t["expected_shards"] == -(-round(target / survival) // cfg.run.shard_size)
        assert t["expected_extra_shards"] == t["expected_shards"] - cfg.num_shards
        line = next(x for x in render(report) if x.startswith("target:"))
        assert ("added in rounds" in line) == (t["expected_extra_shards"] > 0)
    plain = load_config(resolve_config_path("sigma_set27k"))
    assert forecast(plain, plain.run.num_samples, 8, 64)["target"] is None
