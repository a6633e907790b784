from medcls.benchmarks.loader import loader_rates


def test_the_loader_is_timed_over_the_originals_and_both_cache_formats() -> None:
    rates, builds = loader_rates(images=3, workers=0, epochs=1, size=(214, 142), cache_size=64)
    assert list(rates) == ["full-size originals", "64 px jpeg cache", "64 px memmap cache"]
    assert list(builds) == ["jpeg", "memmap"] and all(rate > 0 for rate in [*rates.values(), *builds.values()])
