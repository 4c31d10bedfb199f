"""Writes the pipeline's input: a few CSV files of sales, some rows malformed on purpose."""

import csv
import random
import sys
from pathlib import Path

REGIONS = ["north", "south", "east", "west"]


def main(folder: str = "data", files: int = 4, rows: int = 200) -> None:
    rng = random.Random(7)
    Path(folder).mkdir(exist_ok=True)
    for name in "abcdefgh"[:files]:
        with open(Path(folder) / f"{name}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["region", "amount"])
            for i in range(rows):
                amount = f"{rng.uniform(5, 500):.2f}" if i % 37 else "n/a"  # some bad rows
                writer.writerow([rng.choice(REGIONS).upper(), amount])


if __name__ == "__main__":
    main(*sys.argv[1:2])
