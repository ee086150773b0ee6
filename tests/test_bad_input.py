"""Every user mistake: one line naming what is wrong, a non-zero exit, no traceback, nothing
half-written under RUN/final."""

import shutil
import subprocess
import sys
import time

import pytest

from helpers import _env, run_cli


def _one_line_error(r, *needles):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("datagen: error:")]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _no_final(run):
    final = run / "final"
    assert not final.exists() or not any(final.iterdir())


def test_missing_config(tmp_path):
    _one_line_error(run_cli("run", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r")),
                    "nope.yaml", "not found")
    assert not (tmp_path / "r").exists()


def test_yaml_syntax_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  seed: [1,\n")
    _one_line_error(run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r")), "bad.yaml", "YAML syntax error", "line")


@pytest.mark.parametrize(
    "text, needles",
    [
        ("run:\n  num_samples: many\n", ["run.num_samples"]),
        ("stages:\n  boxes:\n    fit:\n      min_pointz: 3\n", ["stages.boxes.fit.min_pointz", "unknown key"]),
        ("output:\n  keep_truth: [1]\n", ["output.keep_truth"]),
    ],
)
def test_wrong_type_and_unknown_key(tmp_path, text, needles):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    _one_line_error(run_cli("run", "--config", str(cfg), "--out", str(tmp_path / "r")), "c.yaml", *needles)


def test_set_with_unknown_key(tmp_path, small_config_file):
    _one_line_error(run_cli("run", "--config", str(small_config_file), "--out", str(tmp_path / "r"), "--set", "run.sead=1"),
                    "--set run.sead=1", "unknown key")


def test_out_is_a_file(tmp_path, small_config_file):
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_error(run_cli("run", "--config", str(small_config_file), "--out", str(f)), str(f), "not a directory")
    assert f.read_text() == "x"


def test_unknown_stage_name(tmp_path, small_config_file):
    _one_line_error(run_cli("run", "--config", str(small_config_file), "--out", str(tmp_path / "r"), "--stages", "t2i,segmnet"),
                    "--stages", "segmnet")


@pytest.mark.parametrize("n", ["0", "-3"])
def test_bad_num_samples(tmp_path, small_config_file, n):
    _one_line_error(run_cli("run", "--config", str(small_config_file), "--out", str(tmp_path / "r"), "--num-samples", n),
                    "--num-samples")


def test_zero_workers(tmp_path, small_config_file):
    _one_line_error(run_cli("run", "--config", str(small_config_file), "--out", str(tmp_path / "r"), "--workers", "0"), "--workers")


def test_status_on_a_path_that_is_not_a_run(tmp_path):
    _one_line_error(run_cli("status", str(tmp_path)), str(tmp_path), "not a datagen run")
    _one_line_error(run_cli("status", str(tmp_path / "missing")), "not a datagen run")


def test_a_gpu_config_on_a_cpu_machine_is_refused_before_anything_starts(tmp_path):
    online = {k: v for k, v in _env().items() if k != "HF_HUB_OFFLINE"}  # offline, the missing weights come first
    line = _one_line_error(run_cli("run", "--config", "sigma_set27k", "--out", str(tmp_path / "r"), env=online), "stages.", "exec.gpus")
    assert "the cluster has 0" in line
    _no_final(tmp_path / "r")


def test_truncated_intermediate_shard_is_redone(tmp_path, small_config_file):
    run = tmp_path / "r"
    assert run_cli("run", "--config", str(small_config_file), "--out", str(run), "--executor", "local").returncode == 0
    before = {p.name: p.read_bytes() for p in (run / "final").glob("*.tar")}
    tar = run / "stages" / "t2i" / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    # Shard 1 is finished: its final output counts, so the damage below it is left alone ...
    r = run_cli("run", "--config", str(small_config_file), "--out", str(run), "--executor", "local")
    assert r.returncode == 0 and "nothing to do" in r.stderr
    # ... until the final output is gone too: then the truncated stage and those after it rerun.
    (run / "final" / "shard-000001.tar").unlink()
    r = run_cli("run", "--config", str(small_config_file), "--out", str(run), "--executor", "local")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "1 of 3 shards to process" in r.stderr
    assert {p.name: p.read_bytes() for p in (run / "final").glob("*.tar")} == before


def _in_tiny_disk(tmp_path, size: str, script: str) -> subprocess.CompletedProcess:
    """Run `script` in a private mount namespace with a tmpfs of `size` at tmp_path/disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    unshare = shutil.which("unshare")
    assert unshare, "util-linux unshare is needed for the full-disk test"
    cmd = f"mount -t tmpfs -o size={size} tmpfs {disk} && {script}"
    return subprocess.run([unshare, "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=300)


def test_unwritable_or_full_out(tmp_path, small_config_file):
    py = sys.executable
    r = _in_tiny_disk(tmp_path, "8k",
                      f"head -c 8192 /dev/zero > {tmp_path}/disk/fill; {py} -m datagen.cli run --config {small_config_file} --out {tmp_path}/disk/run")
    _one_line_error(r, "cannot write")


def test_disk_full_during_the_run(tmp_path, small_config_file):
    py = sys.executable
    run = f"{tmp_path}/disk/run"
    r = _in_tiny_disk(tmp_path, "600k",
                      f"{py} -m datagen.cli run --config {small_config_file} --out {run} --executor local; echo rc=$?; "
                      f"ls -a {run}/final 2>/dev/null; find {run} -name '.*tmp-*'")
    assert "rc=1" in r.stdout, r.stdout + r.stderr
    assert "No space left on device" in r.stderr
    assert "Traceback" not in r.stderr
    assert ".tmp-" not in r.stdout  # no half-written file left behind


@pytest.mark.parametrize("text", ["", "# settings to come\n"], ids=["empty", "comments"])
def test_an_empty_config_is_refused_not_run_on_defaults(tmp_path, text):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text(text)
    _one_line_error(run_cli("run", "--config", str(cfg), "--out", str(tmp_path / "r")), "empty.yaml", "the config is empty")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("address, needle", [("127.0.0.1:1", "nothing listens there"), ("127.0.0.1", "expected HOST:PORT")])
def test_an_address_with_no_cluster_fails_in_seconds(tmp_path, small_config_file, address, needle):
    start = time.monotonic()
    r = run_cli("run", "--config", str(small_config_file), "--out", str(tmp_path / "r"), "--address", address, timeout=60)
    _one_line_error(r, f"--address {address}", needle)
    assert time.monotonic() - start < 30  # Ray's own retries print warnings for minutes
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_validate_with_nothing_to_validate_is_an_error(tmp_path, small_config_file):
    run = tmp_path / "r"
    assert run_cli("run", "--config", str(small_config_file), "--out", str(run), "--executor", "local", "--stages", "prompts").returncode == 0
    line = _one_line_error(run_cli("validate", str(run)), str(run), "no final shards to validate")
    assert "0 samples checked" not in line


@pytest.mark.parametrize("command", [
    ["browse", "{run}", "--out", "/proc/datagen-x"],
    ["show", "{run}", "--out", "/proc/datagen-x.png"],
    ["export", "hf", "{run}", "--out", "/proc/datagen-x"],
    ["status", "{run}", "--report-dir", "/proc/datagen-x"],
], ids=["browse", "show", "export-hf", "report"])
def test_an_output_that_cannot_be_created_is_one_line(finished_run, command):
    args = [a.format(run=finished_run) for a in command]
    _one_line_error(run_cli(*args), "/proc/datagen-x", "cannot create it here")
