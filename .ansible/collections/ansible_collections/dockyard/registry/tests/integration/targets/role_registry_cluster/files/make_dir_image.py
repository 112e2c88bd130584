# Copyright (c) dockyard.registry contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write a corpus image as a skopeo ``dir:`` layout, so skopeo itself pushes it.

    python make_dir_image.py HARNESS_DIR OUT_DIR SEED LAYER_SIZE...

Prints the manifest digest. The layers are the harness corpus's deterministic layers.
"""

from __future__ import annotations

import os
import shutil
import sys


def main() -> None:
    harness, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sizes = [int(size) for size in sys.argv[4:]]
    sys.path.insert(0, harness)
    from corpus import make_image  # pylint: disable=import-outside-toplevel

    image = make_image(seed, sizes, cache_dir=os.path.join(out + ".cache"))
    os.makedirs(out, exist_ok=True)
    for blob in [image.config] + list(image.layers):
        with blob.open() as src, open(os.path.join(out, blob.digest.split(":", 1)[1]), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    with image.manifest.open() as src, open(os.path.join(out, "manifest.json"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    with open(os.path.join(out, "version"), "w", encoding="ascii") as dst:
        dst.write("Directory Transport Version: 1.1\n")
    print(image.digest)


if __name__ == "__main__":
    main()
