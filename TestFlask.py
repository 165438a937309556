"""Query a running service for the sample sequences and print each URL and its answer.

    python TestFlask.py [--url http://127.0.0.1:6009] [NAME ...]   (default names: test seqB)
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request


def fetch(url: str, timeout: float) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:   # the service answers errors as JSON too
        return error.code, json.loads(error.read() or b"{}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:6009")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("names", nargs="*", default=["test", "seqB"])
    args = parser.parse_args(argv)
    failed = False
    for name in args.names:
        url = f"{args.url.rstrip('/')}/seqPath/{name}"
        try:
            status, body = fetch(url, args.timeout)
        except urllib.error.URLError as error:
            print(f"cannot reach {url}: {error.reason} (is `python flaskMain.py` running?)", file=sys.stderr)
            return 2
        print("input:", url)
        print("output:", body if status == 200 else f"HTTP {status} {body}")
        failed |= status != 200
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
