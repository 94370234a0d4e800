"""Stage download: fetch fra.txt from data.url (an http(s) URL, or a local zip or text file)."""

import argparse
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.pipeline import download


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, required=True, help="where fra.txt goes")
    args = parser.parse_args()
    download.run(args.params, args.out)


if __name__ == "__main__":
    exit_on_error(main)
