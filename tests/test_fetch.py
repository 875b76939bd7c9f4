"""`data fetch` against a local HTTP server on loopback that serves small archives made
here: a whole download, a truncated one that resumes, a server that ignores ranges, a wrong
checksum, and archive members that try to escape the target folder."""
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from haan_core import cli
from haan_core import fetch as F

from .test_corpora import SHARED


class Server:
    """Serves ``files`` (path -> bytes). ``truncate[path] = n`` makes the next answers for
    ``path`` stop after n bytes while announcing the full length (one answer per entry of
    the count); ``ranges`` False makes it ignore Range headers like some servers do."""

    def __init__(self):
        self.files, self.truncate, self.ranges, self.log = {}, {}, True, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.log.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                cut = server.truncate.get(self.path)
                if cut:
                    n, times = cut
                    server.truncate[self.path] = (n, times - 1) if times > 1 else None
                    self.wfile.write(chunk[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def tar_bytes(members: dict, links: dict = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


BIG = bytes(range(256)) * 2000          # 512 kB: several read chunks


# ------------------------------------------------------------------ download

def test_download_whole_file_and_checksum(server, tmp_path):
    server.files["/a.bin"] = BIG
    out = F.download(server.url + "/a.bin", tmp_path / "a.bin",
                     sha256=hashlib.sha256(BIG).hexdigest(), progress=False)
    assert out.read_bytes() == BIG
    assert not (tmp_path / "a.bin.part").exists()


def test_truncated_download_keeps_part_and_resumes_with_a_range(server, tmp_path):
    server.files["/a.bin"] = BIG
    server.truncate["/a.bin"] = (100_000, 1)
    with pytest.raises(F.FetchError, match="run the same command again to resume"):
        F.download(server.url + "/a.bin", tmp_path / "a.bin", progress=False)
    part = tmp_path / "a.bin.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "a.bin").exists()
    F.download(server.url + "/a.bin", tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == BIG
    assert server.log[-1] == ("/a.bin", "bytes=100000-")     # it asked only for the rest


def test_server_that_ignores_ranges_restarts_the_part(server, tmp_path):
    server.files["/a.bin"] = BIG
    (tmp_path / "a.bin.part").write_bytes(b"garbage from an older run")
    server.ranges = False
    F.download(server.url + "/a.bin", tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == BIG          # not garbage + BIG


def test_part_longer_than_the_file_restarts(server, tmp_path):
    server.files["/a.bin"] = b"short"
    (tmp_path / "a.bin.part").write_bytes(b"much longer than the file")
    F.download(server.url + "/a.bin", tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == b"short"


def test_wrong_checksum_deletes_the_download(server, tmp_path):
    server.files["/a.bin"] = BIG
    with pytest.raises(F.FetchError, match="sha256 mismatch"):
        F.download(server.url + "/a.bin", tmp_path / "a.bin", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_unreachable_host_say_what_to_do(server, tmp_path):
    with pytest.raises(F.FetchError, match="HTTP 404.*--url"):
        F.download(server.url + "/nothing", tmp_path / "x", progress=False)
    with pytest.raises(F.FetchError, match="cannot reach"):
        F.download("http://127.0.0.1:9/x", tmp_path / "x", progress=False, timeout=2)


# ------------------------------------------------------------------ extraction

@pytest.mark.parametrize("evil", ["../escaped.txt", "top/../../escaped.txt", "/tmp/abs.txt"])
@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_escaping_member_is_refused_before_anything_is_written(tmp_path, evil, fmt):
    members = {"top/ok.txt": b"fine", evil: b"evil"}
    archive = tmp_path / f"a.{fmt}"
    archive.write_bytes(tar_bytes(members) if fmt == "tar" else zip_bytes(members))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(F.FetchError, match="absolute path|climbs out"):
        F.safe_extract(archive, target)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/abs.txt").exists()
    assert not (target / "top").exists() and not (target / "ok.txt").exists()


def test_link_member_is_refused(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes({"top/ok.txt": b"x"}, links={"top/link": "/etc/passwd"}))
    with pytest.raises(F.FetchError, match="link"):
        F.safe_extract(archive, tmp_path / "t")


def test_extract_strips_the_single_top_folder_and_keeps_only_what_is_asked(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_bytes({"repo-abc/labels/words": b"w", "repo-abc/images/1/2.jpeg":
                                   b"j", "repo-abc/README.md": b"r"}))
    target = tmp_path / "t"
    target.mkdir()
    (target / "labels").mkdir()
    (target / "labels" / "stale").write_text("from an older fetch")
    placed = F.safe_extract(archive, target, keep=("images", "labels"))
    assert placed == ["images", "labels"]
    assert (target / "labels" / "words").read_bytes() == b"w"
    assert not (target / "labels" / "stale").exists()        # replaced as a whole
    assert not (target / "README.md").exists()
    assert not (target / ".fetch" / "staging").exists()
    with pytest.raises(F.FetchError, match="no texts"):
        F.safe_extract(archive, target, keep=("texts",))


def test_not_an_archive(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"<html>an error page</html>")
    with pytest.raises(F.FetchError, match="neither a zip nor a tar"):
        F.safe_extract(tmp_path / "a.zip", tmp_path / "t")


# ------------------------------------------------------------------ whole datasets

WIKI_TEXT = "<document id='{i}' name='n' cat='{c}'><text>{words}</text></document>"


def small_wiki_zip() -> bytes:
    """A Wiki-layout archive: 10 classes, 20 train pairs, 240 test pairs (the loader's
    default takes 231 of them for validation), texts only."""
    cats = ["art", "biology", "geography", "history", "literature", "media", "music",
            "royalty", "sport", "warfare"]
    m = {"wikipedia_dataset/categories.list": "\n".join(cats).encode()}
    rows = {"train": [], "test": []}
    for i in range(260):
        split = "train" if i < 20 else "test"
        c = i % 10 + 1
        tid = f"{i:032x}-1"
        rows[split].append(f"{tid}\timg{i}\t{c}")
        m[f"wikipedia_dataset/texts/{tid}.xml"] = WIKI_TEXT.format(
            i=tid, c=cats[c - 1], words=f"{cats[c - 1]} word{i} text").encode()
    m["wikipedia_dataset/trainset_txt_img_cat.list"] = "\n".join(rows["train"]).encode()
    m["wikipedia_dataset/testset_txt_img_cat.list"] = "\n".join(rows["test"]).encode()
    return zip_bytes(m)


def test_fetch_wiki_end_to_end_through_the_cli(server, tmp_path, capsys):
    server.files["/wikipedia_dataset.zip"] = small_wiki_zip()
    root = tmp_path / "wiki"
    rc = cli.main(["data", "fetch", "wiki", "--root", str(root), "--url",
                   server.url + "/wikipedia_dataset.zip", "--no-progress"])
    assert rc == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["summary"]["pairs"] == 260 and manifest["summary"]["classes"] == 10
    assert manifest["archive_sha256"] == hashlib.sha256(
        server.files["/wikipedia_dataset.zip"]).hexdigest()
    assert json.loads((root / "FETCHED.json").read_text())["url"].endswith(".zip")
    assert (root / "texts").is_dir() and not (root / ".fetch").exists()
    # a second fetch does nothing (and says so); --force fetches again
    n = len(server.log)
    assert "already fetched" in F.fetch("wiki", root, url=server.url +
                                        "/wikipedia_dataset.zip", progress=False)["note"]
    assert len(server.log) == n


def test_interrupted_fetch_then_the_same_command_resumes(server, tmp_path):
    body = small_wiki_zip()
    server.files["/w.zip"] = body
    server.truncate["/w.zip"] = (len(body) // 3, 1)
    root = tmp_path / "wiki"
    with pytest.raises(F.FetchError, match="resume"):
        F.fetch("wiki", root, url=server.url + "/w.zip", progress=False)
    assert not (root / "texts").exists() and not (root / "FETCHED.json").exists()
    F.fetch("wiki", root, url=server.url + "/w.zip", progress=False)
    assert server.log[-1][1] == f"bytes={len(body) // 3}-"
    assert (root / "FETCHED.json").exists()


def test_corel_files_are_pinned_and_a_different_archive_is_refused(server, tmp_path):
    """The Corel 5K source pins its files; an archive with other label files fails."""
    server.files["/c.tar.gz"] = tar_bytes({
        "corel-5k-x/labels/words": b"sky\n", "corel-5k-x/labels/training_label": b"1 1\n",
        "corel-5k-x/labels/test_label": b"2 1\n", "corel-5k-x/images/1/1.jpeg": b"x"})
    with pytest.raises(F.FetchError, match="sha256 mismatch"):
        F.fetch("corel5k", tmp_path / "c", url=server.url + "/c.tar.gz", progress=False)
    assert not (tmp_path / "c" / "FETCHED.json").exists()


@pytest.mark.skipif(not (SHARED / "corel5k" / "labels").exists(),
                    reason="real Corel 5K copy not present (../shared/data)")
def test_corel_pins_match_the_real_copy_of_the_pinned_commit():
    F.verify_files(SHARED / "corel5k", F.SOURCES["corel5k"].files)


PAGE = """<html><body><table>
<tr><td><img src="aeroplane/a1.jpg"></td><td><table>
<tr><td> A plane on the runway.</td></tr><tr><td> A jet  parked.</td></tr></table></td></tr>
<tr><td><img src="bird/b1.jpg"></td><td><table>
<tr><td> A bird on a branch.</td></tr></table></td></tr>
</table></body></html>"""


def test_fetch_pascal_from_its_page(server, tmp_path):
    server.files["/pascal/"] = PAGE.encode()
    server.files["/pascal/aeroplane/a1.jpg"] = b"jpeg-a"
    server.files["/pascal/bird/b1.jpg"] = b"jpeg-b"
    root = tmp_path / "pascal"
    manifest = F.fetch("pascal", root, url=server.url + "/pascal/", progress=False)
    meta = json.loads((root / "pascal_sentences.json").read_text())
    assert meta == {"a1.jpg": {"category": "aeroplane",
                               "captions": ["A plane on the runway.", "A jet parked."]},
                    "b1.jpg": {"category": "bird", "captions": ["A bird on a branch."]}}
    assert (root / "images" / "b1.jpg").read_bytes() == b"jpeg-b"
    assert manifest["images"] == 2 and manifest["summary"]["classes"] == 2


def test_pascal_images_that_fail_are_named_and_fetched_on_the_next_run(server, tmp_path):
    server.files["/pascal/"] = PAGE.encode()
    server.files["/pascal/aeroplane/a1.jpg"] = b"jpeg-a"
    root = tmp_path / "pascal"
    with pytest.raises(F.FetchError, match="1 of 2 Pascal images.*run the same command"):
        F.fetch("pascal", root, url=server.url + "/pascal/", progress=False)
    server.files["/pascal/bird/b1.jpg"] = b"jpeg-b"
    F.fetch("pascal", root, url=server.url + "/pascal/", progress=False)
    assert (root / "images" / "b1.jpg").exists()
    assert [p for p, _ in server.log].count("/pascal/aeroplane/a1.jpg") == 1  # not again


def test_missing_dataset_error_names_the_fetch_command(tmp_path):
    from haan_core.corpora import load_corpus
    with pytest.raises(ValueError, match="python -m haan_core data fetch corel5k --root"):
        load_corpus("corel5k", tmp_path)
    assert cli.main(["data", "fetch", "imagenet", "--root", str(tmp_path)]) == 2
