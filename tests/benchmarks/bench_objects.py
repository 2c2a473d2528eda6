"""Object-table overhead per image: segmentation alone vs segmentation plus the object table.

Per image of BSDS500 val (real photographs, 321 x 481): decode once, then time side by side
in one process, alternating, the watershed kernel (``skimage.watershed``, the method whose
object tables are on by default), batchseg's object measurement of its labels (the vectorised
moment kernel, :func:`batchseg.engine.execute.measure`), ``skimage.measure.regionprops_table``
with the same columns (the reference it equals), and writing the image's rows as a Parquet
part. Prints the ratios to the segmentation time.

    python -m tests.benchmarks.bench_objects --data ../shared/data [--limit 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from batchseg.engine.execute import measure
from batchseg.io.read import read_image
from batchseg.measure.objects import measure_objects
from batchseg.methods import get_method
from batchseg.store.objects import shard_part_name, write_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--method", default="skimage.watershed")
    args = parser.parse_args()
    files = sorted((args.data / "bsds500/images/val").glob("*.jpg"))[: args.limit]
    method = get_method(args.method)
    params = method.resolve_params({})
    seg = fast = ref = write = 0.0
    objects = 0
    with tempfile.TemporaryDirectory() as store:
        for i, path in enumerate(files):
            image = read_image(str(path))
            t0 = time.perf_counter()
            labels = method.segment(image, params)
            t1 = time.perf_counter()
            columns = measure(labels, image)
            t2 = time.perf_counter()
            measure_objects(labels, image)
            t3 = time.perf_counter()
            write_part(store, shard_part_name(i), {"image_id": [path.name] * len(columns["label"]),
                                                   **columns})  # fmt: skip
            t4 = time.perf_counter()
            seg, fast, ref, write = seg + t1 - t0, fast + t2 - t1, ref + t3 - t2, write + t4 - t3
            objects += len(columns["label"])
    n = len(files)
    print(f"{n} BSDS500 val images, {args.method} {params}: {objects / n:.0f} objects per image")
    print(f"  segmentation          {1000 * seg / n:8.1f} ms/image  1.00")
    print(f"  measure (batchseg)    {1000 * fast / n:8.1f} ms/image  {fast / seg:.3f}")
    print(f"  write Parquet part    {1000 * write / n:8.1f} ms/image  {write / seg:.3f}")
    print(f"  object table total    {1000 * (fast + write) / n:8.1f} ms/image  "
          f"{(fast + write) / seg:.3f}")  # fmt: skip
    print(f"  regionprops_table     {1000 * ref / n:8.1f} ms/image  {ref / seg:.3f} (reference)")


if __name__ == "__main__":
    main()
