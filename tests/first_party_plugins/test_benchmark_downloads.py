"""`--download` for the named benchmarks, exercised for real against a loopback HTTP server that
serves small archives in the real layouts: the tree is extracted where the layout wants it, an
interrupted transfer resumes with a Range request, a wrong checksum or a truncated archive is
refused with nothing half-extracted, and fetch options never change a run id."""

from __future__ import annotations

import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import run_cli
from test_named_benchmarks import write_tree
from tlbench.plugin.errors import UserError
from tlbench.utils.download import DownloadError, verify
from tlbench_plugins.datasets.benchmarks.plugin import PLUGINS


class Served:
    """What the loopback server holds: ``files`` by URL path, ``cut`` (path -> bytes sent before the
    connection drops, with the full Content-Length announced), and the Range headers it saw."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges: list[str] = []


@pytest.fixture
def server():
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted:
                served.ranges.append(wanted)
                start = int(re.match(r"bytes=(\d+)-", wanted).group(1))
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            limit = served.cut.get(self.path)
            self.wfile.write(body[start:] if limit is None else body[start:limit])
            self.wfile.flush()
            if limit is not None:
                self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield served
    httpd.shutdown()
    httpd.server_close()


def _zip_of(folder: Path, inside: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        for path in sorted((folder / inside).rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _tar_of(folder: Path, inside: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as handle:
        handle.add(folder / inside, arcname=inside)
    return buffer.getvalue()


def serve_domainnet(served: Served, tmp_path: Path, domain: str = "clipart") -> None:
    """DomainNet's real host layout: groundtruth/clipart.zip (holding clipart/<class>/...) and the lists."""
    source = write_tree("domainnet", tmp_path / "published", per_class=4, domains=(domain,))
    folder = "groundtruth/" if domain in ("clipart", "painting") else ""  # as the host lays them out
    served.files[f"/{folder}{domain}.zip"] = _zip_of(source, domain)
    for split in ("train", "test"):
        served.files[f"/domainnet/txt/{domain}_{split}.txt"] = (source / f"{domain}_{split}.txt").read_bytes()


def test_domainnet_domain_is_downloaded_into_its_layout_and_loads(server, tmp_path):
    serve_domainnet(server, tmp_path)
    root = tmp_path / "data"
    dataset = PLUGINS["domainnet"](data_root=str(root), size=16, download=True, download_url=server.url)
    dataset.check_domain("clipart")
    data = dataset.load("clipart")
    assert (len(data.train.x.paths), len(data.test.x.paths)) == (3 * 3, 3 * 1)
    assert (root / "clipart_train.txt").is_file() and not list((root / ".downloads").iterdir())
    assert "groundtruth/clipart.zip" in (root / ".tlbench-downloads.json").read_text()  # trusted on first use


def test_an_interrupted_transfer_resumes_where_it_stopped(server, tmp_path):
    serve_domainnet(server, tmp_path)
    archive = "/groundtruth/clipart.zip"
    server.cut[archive] = len(server.files[archive]) // 2
    root = tmp_path / "data"
    with pytest.raises(UserError, match=r"stopped at [\d,]+ of [\d,]+ bytes; rerun with --download to resume") as info:
        PLUGINS["domainnet"](data_root=str(root), download=True, download_url=server.url).check_domain("clipart")
    assert "\n" not in str(info.value) and not (root / "clipart").exists()  # nothing extracted
    assert (root / ".downloads" / "clipart.zip.part").stat().st_size == len(server.files[archive]) // 2
    del server.cut[archive]
    PLUGINS["domainnet"](data_root=str(root), download=True, download_url=server.url).check_domain("clipart")
    assert server.ranges == [f"bytes={len(server.files[archive]) // 2}-"]
    assert len(list((root / "clipart").rglob("*.jpg"))) == 3 * 4


def test_a_changed_archive_is_refused_by_its_first_seen_checksum_and_nothing_is_extracted(server, tmp_path):
    serve_domainnet(server, tmp_path)
    root = tmp_path / "data"
    PLUGINS["domainnet"](data_root=str(root), download=True, download_url=server.url).check_domain("clipart")
    for path in [root / "clipart", root / "clipart_train.txt", root / "clipart_test.txt"]:
        __import__("shutil").rmtree(path) if path.is_dir() else path.unlink()
    archive = "/groundtruth/clipart.zip"
    server.files[archive] = server.files[archive][:-30] + b"\0" * 30  # same size, other bytes
    with pytest.raises(UserError, match="clipart.zip has SHA-256 .* not the first seen in .*; the file was deleted"):
        PLUGINS["domainnet"](data_root=str(root), download=True, download_url=server.url).check_domain("clipart")
    assert not (root / "clipart").exists() and not list((root / ".downloads").iterdir())


def test_a_recorded_checksum_is_checked_before_unpacking(tmp_path):
    path = tmp_path / "train.tar"
    path.write_bytes(b"not what was published")
    with pytest.raises(DownloadError, match="not the recorded 0000000000000000"):
        verify(path, "0" * 64, tmp_path, "train.tar")
    assert not path.exists()


def test_a_truncated_archive_leaves_nothing_half_extracted(server, tmp_path):
    source = write_tree("visda2017", tmp_path / "published", per_class=4, domains=("train",))
    whole = _tar_of(source, "train")
    server.files["/train.tar"] = whole[: len(whole) * 2 // 3]  # a short file, served whole
    root = tmp_path / "data"
    with pytest.raises(UserError, match="train.tar cannot be unpacked .* truncated or corrupt and was deleted"):
        PLUGINS["visda2017"](data_root=str(root), download=True, download_url=server.url).check_domain("train")
    assert not (root / "train").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".tlbench-extract")]
    assert not (root / ".downloads" / "train.tar").exists()  # deleted: a rerun fetches it again
    server.files["/train.tar"] = whole  # the short file's digest was never trusted: it did not unpack
    PLUGINS["visda2017"](data_root=str(root), download=True, download_url=server.url).check_domain("train")
    assert (root / "train" / "image_list.txt").is_file()


def test_a_download_url_that_is_not_http_is_one_line(tmp_path):
    with pytest.raises(UserError, match="domainnet option `download_url` = 'ftp://x' must be an http:// or https://"):
        PLUGINS["domainnet"](data_root=str(tmp_path), download=True, download_url="ftp://x")


def test_without_a_public_url_download_says_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match=r"officehome has no public download URL; get it from https://www\.hemanthdv\.org"):
        PLUGINS["officehome"](data_root=str(tmp_path), download=True).check_domain("Art")


def test_run_download_fetches_before_training_and_fetch_options_leave_run_ids_alone(server, tmp_path):
    serve_domainnet(server, tmp_path, "clipart")
    serve_domainnet(server, tmp_path, "real")
    root = tmp_path / "data"
    grid = ["run", "--backbone", "smallcnn", "--source", "domainnet:clipart", "--target", "domainnet:real",
            "--data-root", root, "--set", "domainnet.size=16", "--set", "smallcnn.width=4", "--shots", "0",
            "--set", "train.steps=1", "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2",
            "--set", "train.export_dynamo=false", "--set", "train.int8=false", "--threads", "1"]
    first = run_cli(*grid, "--download", "--set", f"domainnet.download_url={server.url}", "--results-dir", tmp_path / "runs")
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_cli(*grid, "--results-dir", tmp_path / "runs")  # no fetch options now: the same cell
    assert again.returncode == 0 and "1 already finished, 0 to run" in again.stdout, again.stdout
