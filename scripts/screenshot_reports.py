"""Write the report of each run and the comparison of all, then take a screenshot of each HTML
page in headless Chromium, to look at them as a reader would (issue: reports checked in a real
browser). Needs a ``chromium`` (or ``google-chrome``) binary; without one the pages are written and
the screenshots skipped, with a note.

    .venv/bin/python scripts/screenshot_reports.py runs/demo/digits_dalif runs/demo/digits_arlif --out /tmp/shots
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

from adalif.experiments.report import write_comparison, write_report


def screenshot(page: str, png: str, width: int = 1280, height: int = 5200) -> bool:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        print(f"no chromium found: {page} written, not photographed")
        return False
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={os.path.abspath(png)}",
                    "file://" + os.path.abspath(page)], check=True, capture_output=True, timeout=120)
    print(f"{page} -> {png}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories written by adalif train")
    parser.add_argument("--out", required=True, help="folder for the reports, the comparison and the screenshots")
    parser.add_argument("--height", type=int, default=5200, help="window height of the screenshots (pixels)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for run in args.runs:
        name = os.path.basename(os.path.normpath(run))
        folder = write_report(run, os.path.join(args.out, name))
        screenshot(os.path.join(folder, "report.html"), os.path.join(args.out, f"{name}.png"), height=args.height)
    if len(args.runs) > 1:
        folder = write_comparison(args.runs, os.path.join(args.out, "comparison"))
        screenshot(os.path.join(folder, "comparison.html"), os.path.join(args.out, "comparison.png"), height=args.height)


if __name__ == "__main__":
    main()
