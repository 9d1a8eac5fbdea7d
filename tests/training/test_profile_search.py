"""bench/profile.py's search for the largest batch within a memory budget, on a stand-in for the measured peak (a
fresh process per probe is the benchmark's job, not the suite's): it brackets, bisects to within an eighth of the
bracket, probes multiples of 4 only, and says why it stopped where it did not bracket."""

import pytest

from bench import profile


def linear_peak(base_mb: float, mb_per_example: float, probed: list):
    def peak(engine, batch):
        assert batch % 4 == 0, "the B/4 microbatch engines need a multiple of 4"
        probed.append(batch)
        return base_mb + mb_per_example * batch
    return peak


def test_the_search_brackets_the_budget_and_bisects(monkeypatch):
    probed = []
    monkeypatch.setattr(profile, "peak_rss_mb", linear_peak(900, 0.25, probed))
    found = profile.largest_batch_within("e", 2000, 64, 900 + 0.25 * 64, cap=29_996)
    exact = (2000 - 900) / 0.25  # 4400
    assert found["limited_by"] == "budget" and found["batch"] <= exact < found["first_over"]
    assert found["first_over"] - found["batch"] <= max(4, (8192 - 4096) // 8)
    assert probed[:7] == [128, 256, 512, 1024, 2048, 4096, 8192]
    assert set(map(int, found["probes"])) == {64, *probed}


def test_an_engine_flat_in_batch_stops_at_the_largest_probe(monkeypatch):
    monkeypatch.setattr(profile, "peak_rss_mb", linear_peak(1000, 0, []))
    found = profile.largest_batch_within("e", 2000, 64, 1000, cap=29_996)
    assert found == {**found, "batch": 29_996, "first_over": None, "limited_by": "training_set"}


def test_an_engine_over_budget_at_the_first_batch_has_none(monkeypatch):
    monkeypatch.setattr(profile, "peak_rss_mb", linear_peak(2500, 1, []))
    found = profile.largest_batch_within("e", 2000, 64, 2564, cap=29_996)
    assert found["batch"] is None and found["limited_by"] == "budget"
    assert profile._largest(found) == "none (B over budget)"


def test_the_search_time_bounds_the_doubling(monkeypatch):
    monkeypatch.setattr(profile, "peak_rss_mb", linear_peak(1000, 0, []))
    monkeypatch.setattr(profile, "SEARCH_SECONDS", 0)
    found = profile.largest_batch_within("e", 2000, 64, 1000, cap=29_996)
    assert found["batch"] == 64 and found["limited_by"] == "search_time"
    assert profile._largest(found) == "64+ (search time out)"


@pytest.mark.parametrize("limited_by, cell", [("budget", "4400"), ("training_set", "4400+ (the largest probed)")])
def test_the_table_cell_says_why_the_search_stopped(limited_by, cell):
    assert profile._largest({"batch": 4400, "limited_by": limited_by}) == cell
