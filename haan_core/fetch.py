"""Fetch the paper's datasets from their public homes (Section 4.1).

    python -m haan_core data fetch corel5k --root data/corel5k

What it guarantees, whatever the network does:

* **Resume or restart.** A download goes to ``<root>/.fetch/<file>.part``. Run the same
  command again after an interruption and it asks the server for the rest (an HTTP Range
  request); a server that ignores the range sends the whole file again, and the part file
  is restarted rather than appended to.
* **Checksums where the files are fixed.** An archive with a known sha256 is checked before
  it is opened; a mismatch deletes the download and says so. Corel 5K comes from a GitHub
  commit, so its files are fixed: the label files and a digest of all 5000 images are
  pinned (``Source.files``), measured on a copy of that commit. The Wiki archive and the
  Pascal page carry no published checksum; they are checked by reading them back with the
  dataset's loader (pairs and split sizes), and the sha256 of what was downloaded is
  written to ``<root>/FETCHED.json`` so a later fetch can be compared with it.
* **Safe extraction.** Every archive member is checked before anything is written: no
  absolute path, no ``..``, no link, no device. Files go to a staging folder inside
  ``root`` and are moved into place only when all of them are out, so a failed fetch never
  leaves a half-written dataset.

The URL of every source can be replaced (``--url``) by a mirror; the tests use a local
HTTP server.
"""
from __future__ import annotations

import hashlib
import html.parser
import http.client
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import HAANInputError
from .provenance import write_json

CHUNK = 1 << 16
USER_AGENT = "haan-companion-fetch/1.0 (+https://github.com/haan-companion/haan)"


class FetchError(HAANInputError):
    """A download or an archive went wrong; the message says whether to simply run again."""


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    kind: str                       # "archive" or "pascal_page"
    home: str                       # where the URL comes from, for people
    keep: tuple = ()                # top-level entries of the archive to keep (all if empty)
    archive_sha256: str | None = None
    files: dict = field(default_factory=dict)  # relative path -> sha256 (or tree digest)


COREL5K_COMMIT = "29e385c13e69db7761a083efd1b6533e5b4570d3"

SOURCES = {
    "corel5k": Source(
        "corel5k",
        f"https://github.com/ParkByungYoon/corel-5k/archive/{COREL5K_COMMIT}.tar.gz",
        "archive",
        f"GitHub ParkByungYoon/corel-5k at commit {COREL5K_COMMIT} (its first commit; later "
        "commits move or delete these files)",
        keep=("images", "labels"),
        # GitHub builds archives on demand, so the archive's bytes are not guaranteed to be
        # stable; the files inside a commit are. These were measured on a copy of it.
        files={
            "labels/words": "e9c5d8f1c299daa81c7599671bbbb3616f5e036f65e1de35952d7bb55c85afe6",
            "labels/training_label":
                "9588df754114cc8389d5819041be3e579c8f002793413bfa1e81133fd37ba587",
            "labels/test_label":
                "6cba37ebe21041a8958c94c7842d2c084158d564f39d043442715dacb948198c",
            "images/": "028d36d61602fb32d56d767d39f28a3191ed586b33416cc8de7a3764119fdaad",
        }),
    "wiki": Source(
        "wiki", "http://www.svcl.ucsd.edu/projects/crossmodal/wikipedia_dataset.zip",
        "archive",
        "the SVCL cross-modal retrieval page (Rasiwasia et al., ACM MM 2010), "
        "http://www.svcl.ucsd.edu/projects/crossmodal/"),
    "pascal": Source(
        "pascal", "http://vision.cs.uiuc.edu/pascal-sentences/", "pascal_page",
        "the UIUC pascal-sentences page (Rashtchian et al. 2010): one HTML page that links "
        "the 1000 images and lists their five sentences"),
}


# ------------------------------------------------------------------ download

def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(folder) -> str:
    """sha256 over the sorted lines ``<path relative to folder's parent>\\t<sha256>``."""
    folder = Path(folder)
    lines = [f"{p.relative_to(folder.parent).as_posix()}\t{sha256_file(p)}\n"
             for p in sorted(folder.rglob("*")) if p.is_file()]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=0, unit="B", unit_scale=True, desc=desc,
                disable=None if enabled else True, leave=False)


def download(url: str, dest, *, sha256: str | None = None, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if an earlier run was cut off.

    ``dest`` appears only when the whole file is there (and matches ``sha256`` if given).
    An interrupted transfer raises :class:`FetchError` and keeps the part file, so the same
    call resumes it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:      # the range is past the end: start again
            part.unlink()
            return download(url, dest, sha256=sha256, progress=progress, timeout=timeout)
        raise FetchError(f"{url} answered HTTP {e.code} ({e.reason}): check the URL, or "
                         "pass a mirror with --url") from None
    except (urllib.error.URLError, OSError) as e:
        raise FetchError(f"cannot reach {url} ({getattr(e, 'reason', e)}): check the network "
                         "connection, or pass a mirror with --url") from None
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None else None
        if status == 206 and _range_start(response.headers.get("Content-Range")) == have:
            mode, start = "ab", have            # the server resumes where we stopped
        else:
            mode, start = "wb", 0               # a full answer: restart the part file
        total = None if length is None else start + length
        got = start
        bar = _progress(total, dest.name, progress)
        bar.update(start)
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, ValueError, http.client.HTTPException) as e:
                        raise _interrupted(url, got, total, part) from e  # IncompleteRead too
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if total is not None and got < total:
        raise _interrupted(url, got, total, part)
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256:
            part.unlink()
            raise FetchError(f"{url}: sha256 mismatch (expected {sha256}, got {actual}). The "
                             "download was deleted; run the command again, and if it fails "
                             "the same way the file at the source has changed")
    os.replace(part, dest)
    return dest


def _range_start(content_range):
    # "bytes 100-199/200" -> 100
    try:
        return int(content_range.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _interrupted(url, got, total, part) -> FetchError:
    of = f" of {total}" if total is not None else ""
    return FetchError(f"the download of {url} stopped after {got}{of} bytes; the part is kept "
                      f"in {part}: run the same command again to resume")


# ------------------------------------------------------------------ extraction

def _member_path(name: str) -> PurePosixPath:
    """The relative path an archive member would be written to, or FetchError."""
    posix = name.replace("\\", "/")
    path = PurePosixPath(posix)
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise FetchError(f"archive member {name!r} has an absolute path: refusing to extract "
                         "an archive that writes outside its folder")
    if ".." in path.parts:
        raise FetchError(f"archive member {name!r} climbs out of the target folder with "
                         "'..': refusing to extract it")
    return PurePosixPath(*[p for p in path.parts if p not in ("", ".")])


def _members(archive: Path):
    """[(relative path, is_dir, opener)] for every member, all checked before any write."""
    out = []
    if zipfile.is_zipfile(archive):
        zf = zipfile.ZipFile(archive)
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise FetchError(f"archive member {info.filename!r} is a symbolic link: "
                                 "refusing to extract it")
            out.append((_member_path(info.filename), info.is_dir(),
                        lambda info=info: zf.open(info)))
        return out, zf
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError as e:
        raise FetchError(f"{archive} is neither a zip nor a tar archive ({e}): delete it and "
                         "fetch again") from None
    for m in tf.getmembers():
        if m.issym() or m.islnk():
            raise FetchError(f"archive member {m.name!r} is a link to {m.linkname!r}: "
                             "refusing to extract links")
        if not (m.isfile() or m.isdir()):
            if m.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                continue
            raise FetchError(f"archive member {m.name!r} is not a file or a folder: refusing")
        if m.name == "pax_global_header":
            continue
        out.append((_member_path(m.name), m.isdir(), lambda m=m: tf.extractfile(m)))
    return out, tf


def safe_extract(archive, target, *, keep=(), strip: bool | None = None) -> list:
    """Extract ``archive`` into ``target`` and return the top-level entries placed there.

    Every member is checked first (no absolute path, no '..', no link). A single top-level
    folder (GitHub's ``repo-<commit>/``) is stripped when ``strip`` is None. ``keep`` limits
    the top-level entries kept. Files are written to ``target/.fetch/staging`` and moved
    into place only when all are out."""
    archive, target = Path(archive), Path(target)
    members, handle = _members(archive)
    with handle:
        paths = [p for p, _, _ in members if p.parts]
        tops = {p.parts[0] for p in paths}
        if strip is None:
            strip = len(tops) == 1 and any(len(p.parts) > 1 for p in paths)
        staging = target / ".fetch" / "staging"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        placed = set()
        for path, is_dir, opener in members:
            parts = path.parts[1:] if strip else path.parts
            if not parts or (keep and parts[0] not in keep):
                continue
            out = staging.joinpath(*parts)
            if not out.resolve().is_relative_to(staging.resolve()):  # belt and braces
                raise FetchError(f"archive member {path} would land outside {target}")
            placed.add(parts[0])
            if is_dir:
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with opener() as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    missing = [k for k in keep if k not in placed]
    if missing:
        shutil.rmtree(staging)
        raise FetchError(f"{archive.name} has no {', '.join(missing)} at its top level: "
                         "is this the right archive?")
    for top in sorted(placed):
        final = target / top
        if final.exists():
            old = target / ".fetch" / f"replaced-{top}"
            _remove(old)
            os.replace(final, old)
            os.replace(staging / top, final)
            _remove(old)
        else:
            os.replace(staging / top, final)
    shutil.rmtree(staging)
    return sorted(placed)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def verify_files(root, files: dict) -> None:
    """Check pinned sha256s: ``path`` for one file, ``folder/`` for a :func:`tree_digest`."""
    root = Path(root)
    for rel, expected in files.items():
        p = root / rel
        if not p.exists():
            raise FetchError(f"{p} is missing after the fetch: the source does not have the "
                             "expected layout")
        actual = tree_digest(p) if rel.endswith("/") else sha256_file(p)
        if actual != expected:
            raise FetchError(f"{p}: sha256 mismatch (expected {expected}, got {actual}): the "
                             "files differ from the pinned public copy")


# ------------------------------------------------------------------ Pascal page

class _PascalPage(html.parser.HTMLParser):
    """The UIUC page is one table; each row holds an <img src="category/file.jpg"> and a
    nested table whose cells are that image's sentences."""

    def __init__(self):
        super().__init__()
        self.entries, self.current, self.depth, self.cell = {}, None, 0, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.depth += 1
        elif tag == "img":
            src = dict(attrs).get("src", "")
            self.current = src
            self.entries[src] = []
        elif tag == "td" and self.depth >= 2 and self.current is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth -= 1
        elif tag == "td" and self.cell is not None:
            text = " ".join("".join(self.cell).split())
            if text:
                self.entries[self.current].append(text)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parse_pascal_page(text: str) -> dict:
    """{file name: {"category", "captions", "src"}} from the page's HTML."""
    parser = _PascalPage()
    parser.feed(text)
    out = {}
    for src, captions in parser.entries.items():
        parts = src.split("/")
        if len(parts) < 2 or not captions:
            continue
        out[parts[-1]] = {"category": parts[-2], "captions": captions, "src": src}
    if not out:
        raise FetchError("the Pascal Sentence page has no image rows in the expected layout "
                         "(<img src='category/file.jpg'> with a table of sentences)")
    return out


def _fetch_pascal(url: str, root: Path, progress: bool, retries: int = 3):
    from tqdm.auto import tqdm
    page = download(url, root / ".fetch" / "pascal-sentences.html", progress=progress)
    entries = parse_pascal_page(page.read_text(errors="replace"))
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, e in tqdm(sorted(entries.items()), desc="pascal images",
                        disable=None if progress else True):
        dest = images / name
        if dest.exists() and dest.stat().st_size > 0:
            continue
        for attempt in range(retries):
            try:
                download(urllib.parse.urljoin(url, e["src"]), dest, progress=False)
                break
            except FetchError as err:
                if attempt == retries - 1:
                    failed.append(f"{name}: {err}")
                time.sleep(0.2 * (attempt + 1))
    meta = {k: {"category": e["category"], "captions": e["captions"]}
            for k, e in sorted(entries.items())}
    write_json(root / "pascal_sentences.json", meta)
    if failed:
        raise FetchError(f"{len(failed)} of {len(entries)} Pascal images could not be "
                         f"downloaded (first: {failed[0]}); run the same command again to "
                         "fetch the rest")
    return {"page_sha256": sha256_file(page), "images": len(entries)}


# ------------------------------------------------------------------ entry point

def fetch(name: str, root, *, url: str | None = None, force: bool = False,
          progress: bool = True, verify: bool = True) -> dict:
    """Fetch dataset ``name`` into ``root``, check it, and return what FETCHED.json says."""
    from .corpora import load_corpus
    if name not in SOURCES:
        raise HAANInputError(f"unknown dataset {name!r}: choose one of {sorted(SOURCES)}")
    source = SOURCES[name]
    root = Path(root)
    manifest_path = root / "FETCHED.json"
    if manifest_path.exists() and not force:
        manifest = json.loads(manifest_path.read_text())
        manifest["note"] = "already fetched; pass --force to fetch again"
        return manifest
    root.mkdir(parents=True, exist_ok=True)
    url = url or source.url
    started = time.time()
    if source.kind == "archive":
        file_name = Path(urllib.parse.urlparse(url).path).name or f"{name}.archive"
        archive = download(url, root / ".fetch" / file_name, sha256=source.archive_sha256,
                           progress=progress)
        placed = safe_extract(archive, root, keep=source.keep)
        details = {"archive": file_name, "archive_sha256": sha256_file(archive),
                   "extracted": placed}
    elif source.kind == "pascal_page":
        details = _fetch_pascal(url, root, progress)
    else:
        raise HAANInputError(f"unknown source kind {source.kind!r}")
    checked = []
    if verify and source.files:
        verify_files(root, source.files)
        checked = sorted(source.files)
    corpus = load_corpus(name, root)
    manifest = {"dataset": name, "url": url, "home": source.home,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seconds": round(time.time() - started, 1), **details,
                "pinned_files_checked": checked, "summary": {
                    "pairs": len(corpus.ids), "classes": len(corpus.class_names),
                    "splits": {k: len(v) for k, v in corpus.splits.items()}}}
    write_json(manifest_path, manifest)
    shutil.rmtree(root / ".fetch", ignore_errors=True)
    return manifest
