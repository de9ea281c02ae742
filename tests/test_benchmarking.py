import json

import pytest

from r2ska.benchmarking import BenchmarkResult, load_results, record_result


def _result(name: str, value: float = 1.5) -> BenchmarkResult:
    return BenchmarkResult(
        name=name, description="a test", value=value, unit="s", goal="<= 2 s", met=True,
        details={"runs": 3},
    )


def test_record_result_round_trip(tmp_path):
    path = record_result(_result("speed"), tmp_path / "results")

    stored = json.loads(path.read_text())
    assert path.name == "speed.json"
    assert stored["value"] == 1.5
    assert stored["details"] == {"runs": 3}
    assert "CPU cores" in stored["machine"]
    assert stored["date"].endswith("UTC")


def test_load_results_table(tmp_path):
    record_result(_result("b", 2.0), tmp_path)
    record_result(_result("a", 1.0), tmp_path)

    table = load_results(tmp_path)
    assert list(table.index) == ["a", "b"]
    assert table.loc["b", "value"] == 2.0


def test_load_results_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/"):
        load_results(tmp_path)
