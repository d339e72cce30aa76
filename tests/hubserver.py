"""A Hugging Face Hub-compatible HTTP server for loopback tests (stdlib + the `git` CLI).

Every push and pull in the tests goes through the real huggingface_hub client and LeRobot against this server.
Storage is the Hub's own model:
  <root>/repos/<type>s/<ns>/<name>.git   one bare git repo per Hub repo (real commits, branches, tags)
  <root>/repos/<type>s/<ns>/<name>.json  repo metadata (private, createdAt)
  <root>/lfs/<oid[:2]>/<oid[2:4]>/<oid>  LFS objects by sha256; the tree holds git-lfs pointer files
A commit is written to a temporary index and published with one compare-and-swap `update-ref`, so a commit is
either wholly visible or not at all (what the "server dies mid-push" test relies on).

Not implemented: Xet (clients run with HF_HUB_DISABLE_XET=1), pagination, LFS multipart, discussions.

Test controls (command-line flags):
  --token T      requests carrying another bearer token get 401, as the Hub answers a bad token; writes need T.
  --die-on TEXT  the process exits abruptly (no response) on the first request whose path contains TEXT,
                 e.g. "/commit/" to kill the server after the files were uploaded but before the commit.

Usage: python tests/hubserver.py --root DIR [--port 0] [--token T] [--die-on TEXT]   (prints "LISTENING <port>")
Or from Python: `with start(root) as hub: hub.url` (see `HubProcess`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

USER = "test-user"
LFS_POINTER_RE = re.compile(rb"^version https://git-lfs.github.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
DEFAULT_GITATTRIBUTES = (
    "\n".join(
        f"{p} filter=lfs diff=lfs merge=lfs -text"
        for p in [
            "*.7z",
            "*.arrow",
            "*.bin",
            "*.bz2",
            "*.ckpt",
            "*.ftz",
            "*.gz",
            "*.h5",
            "*.joblib",
            "*.lfs.*",
            "*.lz4",
            "*.mds",
            "*.mlmodel",
            "*.model",
            "*.msgpack",
            "*.npy",
            "*.npz",
            "*.onnx",
            "*.ot",
            "*.parquet",
            "*.pb",
            "*.pickle",
            "*.pkl",
            "*.pt",
            "*.pth",
            "*.rar",
            "*.safetensors",
            "saved_model/**/*",
            "*.tar.*",
            "*.tar",
            "*.tf",
            "*.tflite",
            "*.tgz",
            "*.wasm",
            "*.xz",
            "*.zip",
            "*.zst",
            "*tfevents*",
            "*.mp3",
            "*.ogg",
            "*.wav",
            "*.flac",
            "*.jpg",
            "*.jpeg",
            "*.png",
            "*.webp",
            "*.gif",
            "*.mp4",
            "*.webm",
            "*.avi",
            "*.mkv",
        ]
    )
    + "\n"
)
REGULAR_MAX = 10 * 1024 * 1024


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Store:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "repos"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "lfs"), exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._glock = threading.Lock()

    # ---------- helpers ----------
    def lock(self, key: str) -> threading.Lock:
        with self._glock:
            return self._locks.setdefault(key, threading.Lock())

    def gitdir(self, rtype: str, rid: str) -> str:
        return os.path.join(self.root, "repos", rtype + "s", rid + ".git")

    def git(self, gd: str, *args: str, input: bytes | None = None, env: dict | None = None, check=True) -> bytes:
        e = dict(
            os.environ,
            GIT_DIR=gd,
            GIT_AUTHOR_NAME=USER,
            GIT_AUTHOR_EMAIL=f"{USER}@localhost",
            GIT_COMMITTER_NAME=USER,
            GIT_COMMITTER_EMAIL=f"{USER}@localhost",
            LC_ALL="C",
        )
        e.pop("GIT_INDEX_FILE", None)
        if env:
            e.update(env)
        p = subprocess.run(["git", *args], input=input, env=e, capture_output=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
        return p.stdout

    def lfs_path(self, oid: str) -> str:
        return os.path.join(self.root, "lfs", oid[:2], oid[2:4], oid)

    def has_lfs(self, oid: str, size: int | None = None) -> bool:
        p = self.lfs_path(oid)
        return os.path.isfile(p) and (size is None or os.path.getsize(p) == size)

    def require_repo(self, rtype: str, rid: str) -> str:
        gd = self.gitdir(rtype, rid)
        if not os.path.isdir(gd):
            raise HubError(404, f"Repository {rid} not found", "RepoNotFound")
        return gd

    def meta(self, rtype: str, rid: str) -> dict:
        with open(self.gitdir(rtype, rid)[: -len(".git")] + ".json") as f:
            return json.load(f)

    # ---------- repos ----------
    def create_repo(self, rtype: str, rid: str, private: bool) -> bool:
        gd = self.gitdir(rtype, rid)
        with self.lock(gd):
            if os.path.isdir(gd):
                return False
            os.makedirs(os.path.dirname(gd), exist_ok=True)
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", gd], check=True)
            with open(gd[: -len(".git")] + ".json", "w") as f:
                json.dump({"private": bool(private), "createdAt": now_iso()}, f)
            # The Hub creates repos with an initial commit holding .gitattributes
            blob = self.git(gd, "hash-object", "-w", "--stdin", input=DEFAULT_GITATTRIBUTES.encode()).decode().strip()
            tree = self.git(gd, "mktree", input=f"100644 blob {blob}\t.gitattributes\n".encode()).decode().strip()
            c = self.git(gd, "commit-tree", tree, "-m", "initial commit").decode().strip()
            self.git(gd, "update-ref", "refs/heads/main", c)
            return True

    def delete_repo(self, rtype: str, rid: str) -> None:
        gd = self.require_repo(rtype, rid)
        shutil.rmtree(gd)
        os.remove(gd[: -len(".git")] + ".json")

    # ---------- refs ----------
    def resolve(self, gd: str, rev: str) -> str:
        cands = [f"refs/heads/{rev}", f"refs/tags/{rev}"] if not rev.startswith("refs/") else [rev]
        if SHA1_RE.match(rev):
            cands.append(rev)
        for c in cands:
            out = self.git(gd, "rev-parse", "--verify", "-q", c + "^{commit}", check=False).decode().strip()
            if out:
                return out
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def refs(self, gd: str) -> dict:
        out = self.git(gd, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)").decode()
        res = {"branches": [], "tags": [], "converts": [], "pullRequests": []}
        for line in out.splitlines():
            ref, oid, peeled = line.split("\0")
            target = peeled or oid
            if ref.startswith("refs/heads/"):
                res["branches"].append({"name": ref[11:], "ref": ref, "targetCommit": target})
            elif ref.startswith("refs/tags/"):
                res["tags"].append({"name": ref[10:], "ref": ref, "targetCommit": target})
            elif ref.startswith("refs/pr/"):
                res["pullRequests"].append({"name": ref[5:], "ref": ref, "targetCommit": target})
            elif ref.startswith("refs/convert/"):
                res["converts"].append({"name": ref[13:], "ref": ref, "targetCommit": target})
        return res

    # ---------- trees ----------
    def entries(self, gd: str, commit: str, path: str = "", recursive: bool = True) -> list[dict]:
        """Return Hub-style tree entries under `path` (a folder)."""
        args = ["ls-tree", "-l", "-z"]
        if recursive:
            args += ["-r", "-t"]
        spec = f"{commit}:{path}" if path else commit
        if path:
            t = self.git(gd, "cat-file", "-t", spec, check=False).decode().strip()
            if t != "tree":
                raise HubError(404, f"Entry {path} not found", "EntryNotFound")
        out = self.git(gd, *args, spec)
        res = []
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            mode, typ, oid, size = meta.decode().split()
            full = f"{path}/{name.decode()}" if path else name.decode()
            res.append(self._entry(gd, typ, oid, size, full))
        return res

    def _entry(self, gd: str, typ: str, oid: str, size: str, full: str) -> dict:
        if typ == "tree":
            return {"type": "directory", "oid": oid, "size": 0, "path": full}
        e = {"type": "file", "oid": oid, "size": int(size), "path": full}
        if int(size) < 200:
            m = LFS_POINTER_RE.match(self.git(gd, "cat-file", "blob", oid))
            if m:
                e["size"] = int(m.group(2))
                e["lfs"] = {"oid": m.group(1).decode(), "size": int(m.group(2)), "pointerSize": int(size)}
        return e

    def path_info(self, gd: str, commit: str, path: str) -> dict | None:
        path = path.strip("/")
        if not path:
            return None
        out = self.git(gd, "ls-tree", "-l", "-z", commit, "--", path, check=False)
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            if name.decode() != path:
                continue
            mode, typ, oid, size = meta.decode().split()
            return self._entry(gd, typ, oid, size, path)
        return None

    def read_blob(self, gd: str, oid: str) -> bytes:
        return self.git(gd, "cat-file", "blob", oid)

    def commit_meta(self, gd: str, commit: str) -> dict:
        out = self.git(gd, "show", "-s", "--format=%H%x00%s%x00%B%x00%ct%x00%an", commit).decode()
        h, title, body, ts, author = out.split("\0")[:5]
        date = _dt.datetime.fromtimestamp(int(ts), _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {"id": h, "title": title, "message": body.strip(), "date": date, "authors": [{"user": author}]}

    def log(self, gd: str, commit: str) -> list[dict]:
        out = self.git(gd, "rev-list", commit).decode().split()
        return [self.commit_meta(gd, c) for c in out]

    # ---------- commits ----------
    def gitattributes_lfs(self, gd: str, commit: str) -> list[str]:
        info = self.path_info(gd, commit, ".gitattributes")
        if info is None or "lfs" in info:
            return []
        pats = []
        for line in self.read_blob(gd, info["oid"]).decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                pats.append(parts[0])
        return pats

    def upload_mode(self, path: str, size: int, sample: bytes, pats: list[str]) -> str:
        name = path.rsplit("/", 1)[-1]
        if size > REGULAR_MAX or b"\0" in sample:
            return "lfs"
        for p in pats:
            if fnmatch.fnmatch(path, p) or ("/" not in p and fnmatch.fnmatch(name, p)):
                return "lfs"
        return "regular"

    def commit(self, gd: str, branch: str, header: dict, ops: list[dict], create_pr: bool) -> tuple[str, str | None]:
        with self.lock(gd):
            ref = branch if branch.startswith("refs/pr/") else f"refs/heads/{branch}"
            if not self.git(gd, "rev-parse", "--verify", "-q", ref, check=False).strip():
                self.resolve(gd, branch)  # 404 RevisionNotFound if it is no ref at all
                raise HubError(400, f"Invalid rev id: {branch} is not a branch")
            base = self.resolve(gd, ref)
            parent = header.get("parentCommit")
            if parent and parent != base:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            with tempfile.TemporaryDirectory() as td:
                env = {"GIT_INDEX_FILE": os.path.join(td, "index")}
                self.git(gd, "read-tree", base, env=env)
                index_lines = []
                for op in ops:
                    key, v = op["key"], op["value"]
                    path = v.get("path", "").strip("/")
                    if key == "file":
                        data = (
                            base64.b64decode(v["content"]) if v.get("encoding") == "base64" else v["content"].encode()
                        )
                        oid = self.git(gd, "hash-object", "-w", "--stdin", input=data).decode().strip()
                        index_lines.append(f"100644 {oid}\t{path}")
                    elif key == "lfsFile":
                        lo = v["oid"]
                        if not self.has_lfs(lo):
                            raise HubError(400, f"LFS object {lo} for {path} was not uploaded")
                        size = v.get("size") or os.path.getsize(self.lfs_path(lo))
                        ptr = f"version https://git-lfs.github.com/spec/v1\noid sha256:{lo}\nsize {size}\n"
                        oid = self.git(gd, "hash-object", "-w", "--stdin", input=ptr.encode()).decode().strip()
                        index_lines.append(f"100644 {oid}\t{path}")
                    elif key in ("deletedFile", "deletedFolder"):
                        if index_lines:
                            self.git(
                                gd,
                                "update-index",
                                "--index-info",
                                input=("\n".join(index_lines) + "\n").encode(),
                                env=env,
                            )
                            index_lines = []
                        listed = self.git(gd, "ls-files", "-z", "--", path, env=env).split(b"\0")
                        listed = [x.decode() for x in listed if x]
                        if key == "deletedFile":
                            listed = [x for x in listed if x == path]
                        if not listed:
                            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                        # mode 0 in --index-info removes the entry (works in a bare repo)
                        rm = "".join(f"0 {'0' * 40}\t{x}\n" for x in listed)
                        self.git(gd, "update-index", "--index-info", input=rm.encode(), env=env)
                    else:
                        raise HubError(400, f"Unknown commit operation {key}")
                if index_lines:
                    self.git(
                        gd, "update-index", "--index-info", input=("\n".join(index_lines) + "\n").encode(), env=env
                    )
                tree = self.git(gd, "write-tree", env=env).decode().strip()
            msg = header.get("summary") or "Commit"
            if header.get("description"):
                msg += "\n\n" + header["description"]
            new = self.git(gd, "commit-tree", tree, "-p", base, "-m", msg).decode().strip()
            pr_ref = None
            if create_pr:
                nums = [int(r["name"].split("/")[-1]) for r in self.refs(gd)["pullRequests"]]
                n = max(nums, default=0) + 1
                pr_ref = f"refs/pr/{n}"
                self.git(gd, "update-ref", pr_ref, new)
                return new, str(n)
            self.git(gd, "update-ref", ref, new, base)  # compare-and-swap
            return new, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MiniHub/0.1"
    store: Store
    token: str | None = None
    die_on: str | None = None

    def log_message(self, fmt, *args):  # quiet unless HUB_LOG=1
        if os.environ.get("HUB_LOG"):
            sys.stderr.write(f"{self.command} {fmt % args}\n")

    # ---------- IO ----------
    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status: int, data: bytes = b"", ctype="application/json", headers: dict | None = None, head=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and not head:
            self.wfile.write(data)

    def js(self, obj, status=200, headers=None):
        self.send(status, json.dumps(obj).encode(), headers=headers)

    def base_url(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    # ---------- auth ----------
    def authorize(self, method: str, seg: list[str]) -> None:
        """With --token: a wrong bearer token is refused everywhere; writes need the right one."""
        if not self.token:
            return
        auth = self.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if given is not None and given != self.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        is_write = method in ("PUT", "DELETE") or (
            method == "POST" and seg[:2] != ["api", "validate-yaml"] and "paths-info" not in seg
        )
        if seg[0] in ("lfs-objects", "lfs-verify"):
            return  # like the Hub's presigned storage URLs: authorised by the LFS batch call that handed them out
        if given is None and (is_write or seg[:2] == ["api", "whoami-v2"]):
            raise HubError(401, "You must be authenticated to access this resource")

    # ---------- dispatch ----------
    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method: str):
        u = urlsplit(self.path)
        self.query = parse_qs(u.query)
        raw = u.path.strip("/").split("/")
        seg = [unquote(s) for s in raw]
        body = self.body() if method in ("POST", "PUT", "DELETE") else b""
        if self.die_on and self.die_on in self.path:
            sys.stderr.write(f"hubserver: dying on {method} {self.path} (--die-on)\n")
            os._exit(3)  # abrupt, like a crashed server: the client sees the connection drop
        try:
            self.authorize(method, seg)
            self.route(method, seg, body)
        except HubError as e:
            h = {"X-Error-Message": e.message}
            if e.code:
                h["X-Error-Code"] = e.code
            self.send(e.status, json.dumps({"error": e.message}).encode(), headers=h, head=(method == "HEAD"))
        except Exception as e:  # pragma: no cover
            import traceback

            traceback.print_exc()
            self.send(500, json.dumps({"error": repr(e)}).encode())

    def route(self, m: str, s: list[str], body: bytes):
        st = self.store
        if s[:2] == ["api", "whoami-v2"]:
            return self.js(
                {
                    "type": "user",
                    "name": USER,
                    "fullname": "Test User",
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                }
            )
        if s[:2] == ["api", "validate-yaml"] and m == "POST":
            return self.js({"errors": [], "warnings": []})
        if s[:3] == ["api", "repos", "create"] and m == "POST":
            p = json.loads(body or b"{}")
            rtype = p.get("type") or "model"
            ns = p.get("organization") or USER
            rid = f"{ns}/{p['name']}"
            prefix = "" if rtype == "model" else rtype + "s/"
            url = f"{self.base_url()}/{prefix}{rid}"
            created = st.create_repo(rtype, rid, p.get("private") or p.get("visibility") == "private")
            if not created:
                return self.js({"error": "You already created this repo", "url": url}, status=409)
            return self.js({"url": url, "name": rid, "id": rid})
        if s[:3] == ["api", "repos", "delete"] and m == "DELETE":
            p = json.loads(body or b"{}")
            rid = f"{p.get('organization') or USER}/{p['name']}"
            st.delete_repo(p.get("type") or "model", rid)
            return self.js({})
        if len(s) >= 4 and s[0] == "api" and s[1] in REPO_TYPES:
            return self.api_repo(m, REPO_TYPES[s[1]], f"{s[2]}/{s[3]}", s[4:], body)
        # LFS batch: /{prefix}{ns}/{name}.git/info/lfs/objects/batch
        if len(s) >= 6 and s[-4:] == ["info", "lfs", "objects", "batch"]:
            parts = s[:-4]
            rtype = "model"
            if parts[0] in REPO_TYPES and len(parts) == 3:
                rtype, parts = REPO_TYPES[parts[0]], parts[1:]
            rid = "/".join(parts)
            if rid.endswith(".git"):
                rid = rid[:-4]
            return self.lfs_batch(rtype, rid, body)
        if s[0] == "lfs-objects" and len(s) == 2:
            oid = s[1]
            if m == "PUT":
                if hashlib.sha256(body).hexdigest() != oid:
                    raise HubError(400, "sha256 mismatch")
                p = st.lfs_path(oid)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                tmp = p + f".{threading.get_ident()}.tmp"
                with open(tmp, "wb") as f:
                    f.write(body)
                os.replace(tmp, p)
                return self.send(200, b"", headers={"ETag": f'"{oid}"'})
            if m in ("GET", "HEAD"):
                if not st.has_lfs(oid):
                    raise HubError(404, "object not found")
                return self.serve_file(st.lfs_path(oid), {}, head=(m == "HEAD"))
        if s[0] == "lfs-verify" and len(s) == 2 and m == "POST":
            p = json.loads(body)
            if not st.has_lfs(p["oid"], p.get("size")):
                raise HubError(404, "object not found")
            return self.js({})
        # resolve: /{datasets|spaces}/{ns}/{name}/resolve/{rev}/{path...} or /{ns}/{name}/resolve/...
        if len(s) >= 5 and m in ("GET", "HEAD"):
            if s[0] in REPO_TYPES and len(s) >= 6 and s[3] == "resolve":
                return self.resolve_file(REPO_TYPES[s[0]], f"{s[1]}/{s[2]}", s[4], "/".join(s[5:]), m == "HEAD")
            if s[2] == "resolve":
                return self.resolve_file("model", f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]), m == "HEAD")
        raise HubError(404, f"Not found: {m} /{'/'.join(s)}")

    # ---------- /api/{type}s/{ns}/{name}/... ----------
    def api_repo(self, m: str, rtype: str, rid: str, rest: list[str], body: bytes):
        st = self.store
        gd = st.require_repo(rtype, rid)
        prefix = "" if rtype == "model" else rtype + "s/"
        if not rest or rest[0] == "revision":
            if m not in ("GET", "HEAD"):
                raise HubError(405, "method not allowed")
            rev = rest[1] if rest else "main"
            commit = st.resolve(gd, rev)
            blobs = self.query.get("blobs", ["false"])[0].lower() in ("1", "true")
            sib = []
            for e in st.entries(gd, commit):
                if e["type"] != "file":
                    continue
                d = {"rfilename": e["path"]}
                if blobs:
                    d.update(size=e["size"], blobId=e["oid"])
                    if "lfs" in e:
                        d["lfs"] = {
                            "sha256": e["lfs"]["oid"],
                            "size": e["lfs"]["size"],
                            "pointerSize": e["lfs"]["pointerSize"],
                        }
                sib.append(d)
            meta = st.meta(rtype, rid)
            cm = st.commit_meta(gd, commit)
            info = {
                "_id": rid,
                "id": rid,
                "author": rid.split("/")[0],
                "sha": commit,
                "private": meta["private"],
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "createdAt": meta["createdAt"],
                "lastModified": cm["date"],
                "siblings": sib,
                "xetEnabled": False,
                "cardData": {},
            }
            if rtype == "model":
                info["modelId"] = rid
            return self.js(info)
        op = rest[0]
        if op == "refs":
            r = st.refs(gd)
            if not self.query.get("include_prs"):
                r.pop("pullRequests")
            return self.js(r)
        if op == "preupload" and m == "POST":
            commit = st.resolve(gd, rest[1])
            pats = st.gitattributes_lfs(gd, commit)
            p = json.loads(body)
            files = []
            for f in p.get("files", []):
                sample = base64.b64decode(f.get("sample", ""))
                mode = st.upload_mode(f["path"], int(f["size"]), sample, pats)
                info = st.path_info(gd, commit, f["path"])
                oid = None
                if info and info["type"] == "file":
                    oid = info["lfs"]["oid"] if "lfs" in info else info["oid"]
                files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return self.js({"files": files, "commitOid": commit})
        if op == "commit" and m == "POST":
            rev = rest[1]
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next((line["value"] for line in lines if line["key"] == "header"), {})
            ops = [line for line in lines if line["key"] != "header"]
            create_pr = self.query.get("create_pr", ["0"])[0] in ("1", "true", "True")
            new, pr = st.commit(gd, rev, header, ops, create_pr)
            res = {
                "success": True,
                "commitOid": new,
                "commitUrl": f"{self.base_url()}/{prefix}{rid}/commit/{new}",
                "hookOutput": "",
            }
            if pr:
                res["pullRequestUrl"] = f"{self.base_url()}/{prefix}{rid}/discussions/{pr}"
            return self.js(res)
        if op == "branch" and len(rest) >= 2:
            branch = "/".join(rest[1:])
            ref = f"refs/heads/{branch}"
            with st.lock(gd):
                exists = st.git(gd, "rev-parse", "--verify", "-q", ref, check=False).strip() != b""
                if m == "POST":
                    if exists:
                        raise HubError(409, f"Reference {ref} already exists")
                    p = json.loads(body or b"{}")
                    start = st.resolve(gd, p.get("startingPoint") or "main")
                    if p.get("emptyBranch"):
                        tree = st.git(gd, "mktree", input=b"").decode().strip()
                        start = st.git(gd, "commit-tree", tree, "-m", "empty branch").decode().strip()
                    st.git(gd, "update-ref", ref, start)
                    return self.js({})
                if m == "DELETE":
                    if not exists:
                        raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                    st.git(gd, "update-ref", "-d", ref)
                    return self.js({})
        if op == "tag" and len(rest) >= 2:
            with st.lock(gd):
                if m == "POST":
                    rev = "/".join(rest[1:])
                    p = json.loads(body or b"{}")
                    tag = p["tag"]
                    target = st.resolve(gd, rev)
                    if st.git(gd, "rev-parse", "--verify", "-q", f"refs/tags/{tag}", check=False).strip():
                        raise HubError(409, f"Tag {tag} already exists")
                    if p.get("message"):
                        st.git(gd, "tag", "-a", tag, target, "-m", p["message"])
                    else:
                        st.git(gd, "update-ref", f"refs/tags/{tag}", target)
                    return self.js({})
                if m == "DELETE":
                    tag = "/".join(rest[1:])
                    if not st.git(gd, "rev-parse", "--verify", "-q", f"refs/tags/{tag}", check=False).strip():
                        raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
                    st.git(gd, "update-ref", "-d", f"refs/tags/{tag}")
                    return self.js({})
        if op == "tree" and len(rest) >= 2 and m == "GET":
            commit = st.resolve(gd, rest[1])
            path = "/".join(rest[2:]).strip("/")
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
            ents = st.entries(gd, commit, path, recursive=recursive)
            expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
            if expand:
                cm = st.commit_meta(gd, commit)  # simplification: head commit, not per-path last commit
                for e in ents:
                    e["lastCommit"] = {"id": cm["id"], "title": cm["title"], "date": cm["date"]}
            return self.js(ents)
        if op == "paths-info" and len(rest) >= 2 and m == "POST":
            commit = st.resolve(gd, rest[1])
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                paths = json.loads(body).get("paths", [])
            else:
                paths = parse_qs(body.decode()).get("paths", [])
            out = [i for i in (st.path_info(gd, commit, p) for p in paths) if i is not None]
            return self.js(out)
        if op == "commits" and len(rest) >= 2 and m == "GET":
            commit = st.resolve(gd, rest[1])
            return self.js(st.log(gd, commit))
        if op in ("xet-write-token", "xet-read-token"):
            raise HubError(501, "Xet is not supported by this server; set HF_HUB_DISABLE_XET=1")
        raise HubError(404, f"Unknown endpoint {op}")

    # ---------- LFS ----------
    def lfs_batch(self, rtype: str, rid: str, body: bytes):
        st = self.store
        st.require_repo(rtype, rid)
        p = json.loads(body)
        objs = []
        for o in p.get("objects", []):
            oid, size = o["oid"], int(o["size"])
            d = {"oid": oid, "size": size, "authenticated": True}
            if p.get("operation") == "upload":
                if not st.has_lfs(oid, size):
                    d["actions"] = {
                        "upload": {"href": f"{self.base_url()}/lfs-objects/{oid}", "header": {}},
                        "verify": {"href": f"{self.base_url()}/lfs-verify/{oid}", "header": {}},
                    }
            else:
                if st.has_lfs(oid, size):
                    d["actions"] = {"download": {"href": f"{self.base_url()}/lfs-objects/{oid}", "header": {}}}
                else:
                    d["error"] = {"code": 404, "message": "Object does not exist"}
            objs.append(d)
        self.send(
            200,
            json.dumps({"transfer": "basic", "objects": objs, "hash_algo": "sha256"}).encode(),
            ctype="application/vnd.git-lfs+json",
        )

    # ---------- downloads ----------
    def resolve_file(self, rtype: str, rid: str, rev: str, path: str, head: bool):
        st = self.store
        gd = st.require_repo(rtype, rid)
        commit = st.resolve(gd, rev)
        info = st.path_info(gd, commit, path)
        if info is None or info["type"] != "file":
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        h = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if "lfs" in info:
            lo = info["lfs"]["oid"]
            h.update({"ETag": f'"{lo}"', "X-Linked-Etag": f'"{lo}"', "X-Linked-Size": str(info["size"])})
            return self.serve_file(st.lfs_path(lo), h, head)
        h["ETag"] = f'"{info["oid"]}"'
        data = st.read_blob(gd, info["oid"])
        return self.serve_bytes(data, h, head)

    def _range(self, total: int):
        r = self.headers.get("Range")
        if not r or not r.startswith("bytes="):
            return None
        a, _, b = r[6:].split(",")[0].partition("-")
        if a == "":
            start, end = max(total - int(b), 0), total - 1
        else:
            start, end = int(a), (int(b) if b else total - 1)
        return start, min(end, total - 1)

    def serve_bytes(self, data: bytes, h: dict, head: bool):
        rg = self._range(len(data))
        if rg:
            s, e = rg
            h["Content-Range"] = f"bytes {s}-{e}/{len(data)}"
            return self.send(206, data[s : e + 1], ctype="application/octet-stream", headers=h, head=head)
        return self.send(200, data, ctype="application/octet-stream", headers=h, head=head)

    def serve_file(self, p: str, h: dict, head: bool):
        total = os.path.getsize(p)
        rg = self._range(total)
        status, s, e = 200, 0, total - 1
        if rg:
            status, (s, e) = 206, rg
            h["Content-Range"] = f"bytes {s}-{e}/{total}"
        h["Content-Length"] = str(max(e - s + 1, 0))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in h.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        with open(p, "rb") as f:
            f.seek(s)
            left = e - s + 1
            while left > 0:
                chunk = f.read(min(1 << 20, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


class HubProcess:
    """This server in a child process: `url`, `port`, `root`, `stop()`, `restart()` (same store, new port)."""

    def __init__(self, root: str, token: str | None = None, die_on: str | None = None, port: int = 0):
        self.root, self.token, self.die_on = os.path.abspath(root), token, die_on
        args = [sys.executable, os.path.abspath(__file__), "--root", self.root, "--port", str(port)]
        if token:
            args += ["--token", token]
        if die_on:
            args += ["--die-on", die_on]
        # stdin is a lifeline: the server exits when it closes, so a crashed test run leaves no server behind
        self.proc = subprocess.Popen(
            args + ["--exit-with-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        if not line.startswith("LISTENING"):
            self.proc.kill()
            raise RuntimeError(f"hub server did not start (said {line!r})")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stdin.close()

    def restart(self, die_on: str | None = None) -> HubProcess:
        """A fresh server on the same store (the way a crashed Hub comes back)."""
        self.stop()
        return HubProcess(self.root, token=self.token, die_on=die_on)

    def __enter__(self) -> HubProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(root: str, token: str | None = None, die_on: str | None = None) -> HubProcess:
    return HubProcess(root, token=token, die_on=die_on)


def main():
    ap = argparse.ArgumentParser(description="Hub-compatible test server")
    ap.add_argument("--root", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None, help="require this bearer token for writes; refuse any other")
    ap.add_argument("--die-on", default=None, help="exit abruptly on the first request whose path contains this")
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes (the parent died)")
    a = ap.parse_args()
    if a.exit_with_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    Handler.store = Store(a.root)
    Handler.token = a.token
    Handler.die_on = a.die_on
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    print(f"LISTENING {srv.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()


if __name__ == "__main__":
    main()
