"""The throughput benchmark runs on the CPU with a tiny configuration and writes its JSON."""
import importlib.util
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark():
    spec = importlib.util.spec_from_file_location(
        "throughput", os.path.join(REPO, "benchmarks", "throughput.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_writes_json_and_a_table(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    records = _benchmark().main(["--arch", "resnet18", "--height", "64", "--width", "32",
                                 "--device", "cpu", "--batch-sizes", "8", "--amp", "fp32",
                                 "bf16", "--channels-last", "off", "on", "--iters", "1",
                                 "--warmup", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == records and len(saved) == 4
    assert {(r["amp"], r["channels_last"]) for r in saved} == {
        ("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)}
    for record in saved:
        assert record["train_images_per_s"] > 0 and record["extract_images_per_s"] > 0
    assert "| batch | precision |" in capsys.readouterr().out
