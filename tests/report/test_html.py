"""The HTML leaderboard renders in headless Chromium with its tables and embedded plots."""

import shutil
import subprocess

import pytest

from conftest import run_cli
from test_leaderboard import noise_set, shots_grid, write_results

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (CI installs it with apt-get install chromium)")
def test_html_page_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    other_pair = [{**r, "target": "d:c", "run_id": r["run_id"] + "-c"} for r in shots_grid()]
    runs = write_results(tmp_path / "runs", other_pair + noise_set())
    page = tmp_path / "board.html"
    proc = run_cli("leaderboard", runs, "--format", "html", "-o", page)
    assert proc.returncode == 0, proc.stderr
    profile, shot = tmp_path / "profile", tmp_path / "shot.png"
    base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50  # a rendered page, not a blank canvas
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('<table class="lb">') == 2  # one per source -> target pair
    assert dom.count("data:image/png;base64,") == 4 and dom.count("<img") == 4  # shots, latency, gain, robust IQM
    assert "★ 82.0 ± 2.0" in dom and "NEG" in dom and "Reported checkpoint" in dom
