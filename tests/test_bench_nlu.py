"""``mimo-home bench nlu`` reports every home size, through the steps a request takes."""

from assistant.understanding.fastpath import FastPath
from assistant.virtual.bench import SIZES, UTTERANCES, Understanding, run_nlu_bench, synthetic_home


def test_the_bench_reports_each_size_with_compounds_and_follow_ups() -> None:
    assert {500, 2000} <= set(SIZES)
    results = run_nlu_bench(sizes=(50, 2000), repeats=1)
    assert list(results) == ["50", "2000"]
    for row in results.values():
        assert row["samples"] == len(UTTERANCES)
        assert 0 < row["cpu_median_ms"] and 0 < row["median_ms"] <= row["p95_ms"]
        # the mix goes down every path a request can take on the fast path
        assert row["paths"]["compound"] > 0 and row["paths"]["follow-up"] > 0
        assert row["paths"]["whole"] > 0
        assert row["matched"] == row["samples"] - row["paths"]["none"]


def test_the_bench_understands_like_the_conversation() -> None:
    fast = FastPath(synthetic_home(50))
    understanding = Understanding(fast)
    # nothing said before: "turn it off" refers to nothing
    assert understanding.understand("turn it off").path == "none"
    assert understanding.understand("turn on the office spotlight").path == "whole"
    followed = understanding.understand("turn it off")
    assert followed.path == "follow-up"
    assert [(c.tool, c.args["entity_ids"]) for c in followed.calls] == [
        ("turn_off", ["light.office_spotlight"])]
    both = understanding.understand(
        "turn on the kitchen ceiling light and turn off the hallway lamp")
    assert both.path == "compound"
    assert [(c.tool, c.args["entity_ids"]) for c in both.calls] == [
        ("turn_on", ["light.kitchen_ceiling_light"]), ("turn_off", ["light.hallway_lamp"])]
    fast.close()
