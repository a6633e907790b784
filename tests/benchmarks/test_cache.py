from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import RLELossless

from medcls.benchmarks.cache import FILE_KINDS, cache_build_rates, synthetic_radiograph
from medcls.data.preprocessing import XRayPreprocessing
from medcls.data.preprocessing.dicom import is_dicom


def file_kind(path: Path) -> str:
    """What a file is by its content, named as the benchmark names its kinds."""
    if is_dicom(path):
        return "dicom-rle" if pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless else "dicom"
    with Image.open(path) as image:
        return f"{image.format.lower()}{16 if image.mode == 'I;16' else 8}"


def test_cache_builds_are_timed_for_every_file_kind(tmp_path) -> None:
    builds = cache_build_rates(tmp_path, images=2, workers=2, side=96, size=32)
    assert list(builds) == list(FILE_KINDS) == ["dicom", "dicom-rle", "png16", "tiff16"]
    for kind, build in builds.items():
        assert build.images_per_second > 0
        assert len(build.cache) == 2 and build.cache.channels == 1
        assert [file_kind(path) for path in build.cache.sources] == [kind, kind]
    # One picture per index whatever the file kind, as XRayPreprocessing makes it of the radiograph.
    for i in range(2):
        reads = [build.cache.read(i) for build in builds.values()]
        assert all(np.array_equal(read, reads[0]) for read in reads)
        assert np.abs(reads[0].astype(int) - XRayPreprocessing(size=32)(builds["png16"].cache.sources[i])).mean() < 2
    assert not np.array_equal(builds["dicom"].cache.read(0), builds["dicom"].cache.read(1))


def test_the_synthetic_radiograph_is_12_bit_with_bright_body_and_dark_lungs() -> None:
    image = synthetic_radiograph(256, seed=0)
    assert image.dtype == np.uint16 and image.max() < 4096
    body, lung, outside = image[128, 128], image[128, 70], image[5, 5]
    assert outside < lung < body
