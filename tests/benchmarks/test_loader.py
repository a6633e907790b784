from medcls.benchmarks.loader import loader_rates


def test_the_loader_is_timed_over_the_originals_and_each_cache_both_ways() -> None:
    originals, rates = loader_rates(
        images=3, workers=0, epochs=1, cache_sizes=(64,), batch_size=16, size=(214, 142), pass_images=32
    )
    assert list(rates) == ["64 px jpeg", "64 px memmap"] and originals > 0
    assert all(rate.workers_transform > 0 and rate.reading > 0 and rate.device_transform > 0 for rate in rates.values())
