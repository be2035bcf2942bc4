"""download against a local HTTP server on 127.0.0.1: a normal run, a cut download resumed, a wrong
checksum, and archives with unsafe members."""

import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import cli
from asdkeras.data.download import extract_safely
from asdkeras.errors import AsdError


class ArchiveServer(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with HTTP Range; ``cut_after`` bytes of a file end its first response."""

    files: dict = {}
    cut_after: dict = {}
    ranges: list = []

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        start = 0
        header = self.headers.get("Range")
        self.ranges.append((name, header))
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.cut_after.pop(name, None)
        self.wfile.write(body[start:cut] if cut else body[start:])
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    ArchiveServer.files, ArchiveServer.cut_after, ArchiveServer.ranges = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _wav_bytes(seed):
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    sf.write(buffer, (0.1 * rng.standard_normal(16000 * 10)).astype(np.float32), 16000, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _dev_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for i in range(3):
            bundle.writestr(f"fan/train/section_00_source_train_normal_{i:04d}_m-n_W.wav", _wav_bytes(i))
        for label in ("normal", "anomaly"):
            bundle.writestr(f"fan/test/section_00_source_test_{label}_0000_m-n_W.wav", _wav_bytes(10))
            bundle.writestr(f"fan/test/section_00_target_test_{label}_0000_m-n_W.wav", _wav_bytes(11))
    return buffer.getvalue()


def _run(*args):
    return CliRunner(mix_stderr=False).invoke(cli.cli, [str(a) for a in args])


def test_download_checks_the_md5_extracts_and_prints_the_licence(server, tmp_path):
    archive = _dev_zip()
    ArchiveServer.files = {"dev_fan.zip": archive, "dev_fan.zip.md5": hashlib.md5(archive).hexdigest().encode()}
    result = _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server)
    assert result.exit_code == 0, result.output + result.stderr
    assert "CC BY-NC-SA 4.0" in result.output and "matches the published checksum" in result.stderr
    assert len(os.listdir(tmp_path / "dev_data" / "fan" / "train")) == 3
    assert "fan        00" in result.output  # the summary of the tree
    again = _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server)
    assert again.exit_code == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server, "--force").exit_code == 0


def test_a_cut_download_resumes_with_a_range_request(server, tmp_path):
    archive = _dev_zip()
    ArchiveServer.files = {"dev_fan.zip": archive, "dev_fan.zip.md5": hashlib.md5(archive).hexdigest().encode()}
    ArchiveServer.cut_after = {"dev_fan.zip": len(archive) // 2}
    first = _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server)
    assert first.exit_code == 2 and "connection was lost after" in first.stderr and "again to resume" in first.stderr
    assert first.stderr.count("error:") == 1 and "Traceback" not in first.stderr
    part = tmp_path / "downloads" / "dev_fan.zip.part"
    assert part.stat().st_size == len(archive) // 2 and not (tmp_path / "dev_data").exists()
    second = _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server)
    assert second.exit_code == 0, second.stderr
    archive_requests = [header for name, header in ArchiveServer.ranges if name == "dev_fan.zip"]
    assert archive_requests == [None, f"bytes={len(archive) // 2}-"]
    assert (tmp_path / "downloads" / "dev_fan.zip").read_bytes() == archive and not part.exists()


def test_a_wrong_checksum_keeps_nothing(server, tmp_path):
    ArchiveServer.files = {"dev_fan.zip": _dev_zip(), "dev_fan.zip.md5": b"0" * 32 + b"  dev_fan.zip\n"}
    result = _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server)
    assert result.exit_code == 2 and "differs from the published 000000" in result.stderr
    assert not (tmp_path / "dev_data").exists() and os.listdir(tmp_path / "downloads") == []


def _zip_with(name, symlink=False):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("fan/train/ok.wav", b"x")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (0o120777 << 16)
        bundle.writestr(info, "/etc/passwd" if symlink else "evil")
    return buffer.getvalue()


@pytest.mark.parametrize("member, symlink, message", [
    ("../evil.wav", False, "would land outside the target folder"),
    ("fan/../../evil.wav", False, "would land outside the target folder"),
    ("/tmp/evil.wav", False, "has an absolute path"),
    ("fan/train/link.wav", True, "is a link or special file"),
])
def test_unsafe_zip_members_are_refused_and_nothing_is_written(server, tmp_path, member, symlink, message):
    ArchiveServer.files = {"dev_fan.zip": _zip_with(member, symlink)}
    result = _run("download", "--machine", "fan", "--data", tmp_path, "--mirror", server)
    assert result.exit_code == 2 and message in result.stderr and member in result.stderr
    assert "no MD5 published" in result.stderr
    assert not (tmp_path / "dev_data").exists() or os.listdir(tmp_path / "dev_data") == []
    assert not (tmp_path / "evil.wav").exists()


def test_tar_links_and_devices_are_refused(tmp_path):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as bundle:
        info = tarfile.TarInfo("fan/train/link.wav")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(info)
    with pytest.raises(AsdError, match="'fan/train/link.wav' is a link or special file"):
        extract_safely(str(path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
