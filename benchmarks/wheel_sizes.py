"""Download size of one release's wheel set, read from index metadata (nothing downloaded).

    python benchmarks/wheel_sizes.py 2.15                       # PyPI (Linux: CUDA build)
    python benchmarks/wheel_sizes.py 2.15 --index-url https://download.pytorch.org/whl/cpu

uv resolves the release's requirement for Linux x86_64 / CPython of the release table
against the index; each pinned wheel's size comes from the index's PEP 691/700 JSON
(`size`), or, where an index serves only HTML, from an HTTP HEAD of the file.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convbn_compat.core.releases import RELEASES

JSON = "application/vnd.pypi.simple.v1+json"


def _files(index: str, name: str) -> list[dict]:
    url = f"{index.rstrip('/')}/{name}/"
    req = urllib.request.Request(url, headers={"Accept": f"{JSON}, text/html;q=0.1"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read().decode()
        if JSON in resp.headers.get("Content-Type", ""):
            return json.loads(body)["files"]
    files = []
    for href, fname in re.findall(r'<a[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', body):
        files.append({"filename": fname.strip(), "url": urllib.parse.urljoin(url, href)})
    return files


def _size(entry: dict) -> int:
    if entry.get("size"):
        return int(entry["size"])
    req = urllib.request.Request(entry["url"].split("#")[0], method="HEAD")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return int(resp.headers["Content-Length"])


def _fits(filename: str, version: str, cp: str) -> bool:
    if not filename.endswith(".whl"):
        return False
    parts = filename[:-4].split("-")
    ver, tags = parts[1], "-".join(parts[-3:])
    if ver != version and ver.split("+")[0] != version:
        return False
    if tags.endswith("none-any"):
        return True
    return (cp in tags or "abi3" in tags or "py3-none" in tags) and (
        "x86_64" in tags and "linux" in tags
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", choices=list(RELEASES))
    parser.add_argument("--index-url", default="https://pypi.org/simple")
    args = parser.parse_args(argv)
    release = RELEASES[args.release]
    cp = "cp" + release.python.replace(".", "")
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "req.in"
        req.write_text(release.requirement() + "\n")
        out = subprocess.run(
            [
                "uv",
                "pip",
                "compile",
                "-q",
                str(req),
                "--index-url",
                args.index_url,
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--python-version",
                release.python,
                "--no-header",
                "--no-annotate",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    pins = [line.split("==") for line in out.splitlines() if "==" in line]
    total, rows = 0, []
    for name, version in pins:
        candidates = [f for f in _files(args.index_url, name) if _fits(f["filename"], version, cp)]
        if not candidates:
            raise SystemExit(f"{name}=={version}: no Linux x86_64 {cp} wheel on {args.index_url}")
        best = max(candidates, key=lambda f: f.get("size") or 0)
        size = _size(best)
        total += size
        rows.append((size, f"{name}=={version}"))
    for size, pin in sorted(rows, reverse=True):
        print(f"{size / 2**20:9.1f} MiB  {pin}")
    print(
        f"total {total / 2**30:.2f} GiB in {len(rows)} wheels for torch {release.torch} "
        f"from {args.index_url}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
