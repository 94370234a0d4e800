"""Stage download: fetch fra.txt from data.url (an http(s) URL, or a local zip or text file)."""

import argparse
from pathlib import Path

from charmt.errors import exit_on_error
from charmt.params import load_sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, required=True, help="where fra.txt goes")
    args = parser.parse_args()

    data = load_sections(args.params, ["data"])["data"]

    from charmt.data.download import fetch_pairs_file  # after the params check: it imports requests

    fetch_pairs_file(data["url"], args.out, data.get("sha256"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    exit_on_error(main)
