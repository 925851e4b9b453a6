"""The page under load: photos/s and latency at 1, 4 and 16 concurrent clients, today's server beside the new one.

    python experiments/serve_load/bench.py [--baseline fd373d8] [--clients 1 4 16] [--uploads 30 80 160]
                                           [--memory-uploads 1000] [--baseline-override KEY=VALUE ...]
                                           [--new-override KEY=VALUE ...]
                                           [serve.yaml overrides, e.g. tag_mel_ckpt=...]

Both servers are started as `python serve.py` processes on 127.0.0.1 from their own source trees (the
baseline: `git archive <rev>` into a temporary folder), on the same trained models (the latest runs under
logs/, or the overrides given; --baseline-override replaces an override for the baseline alone, e.g. the
checkpoint before `python -m mri.checkpoints upgrade` and its own index). Each load level runs on the two
servers in turn (baseline, then new), with the same photos; a client is a thread with its own httpx connection
that posts its share of uploads one after the other (bounded: the loop stops by itself). Printed per server
and level: photos/s (answers / wall time), p50 and p99 latency, errors; the server's resident memory (VmRSS)
before and after; the answers of both servers to the same photos compared; the two one-pixel-high and
one-pixel-wide PNGs (20000 x 1, 1 x 20000): latency and peak memory (VmHWM, reset before each); then memory
of the new server after 100 and after --memory-uploads uploads.

Photos: real ones under experiments/real_photos/ when there are any, else generated scenes of every theme at
camera size (--size 1600 1200, JPEG quality 90).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
REAL_PHOTOS = ROOT / "experiments" / "real_photos"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="fd373d8", help="git revision of today's server; 'none': new one only")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--uploads", type=int, nargs="+", default=[30, 80, 160], help="uploads per level, in all")
    parser.add_argument("--memory-uploads", type=int, default=1000, help="uploads of the memory run (0: none)")
    parser.add_argument("--size", type=int, nargs=2, default=[1600, 1200], help="generated photos' width, height")
    parser.add_argument("--photos", type=int, default=16, help="distinct generated photos")
    parser.add_argument("--baseline-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a serve.yaml override for the baseline only (replaces the same key of the others)")
    parser.add_argument("--new-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a serve.yaml override for the new server only, e.g. tagger.enabled=false (the "
                             "baseline has no tagger: the same image models on both)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("overrides", nargs="*", help="serve.yaml overrides for both servers")
    args = parser.parse_args()
    if len(args.uploads) != len(args.clients):
        parser.error("give one --uploads figure per --clients figure")

    photos, kind = load_photos(args.size, args.photos)
    print(f"{len(photos)} photos ({kind}); load average {load_average()}; {os.cpu_count()} CPUs", flush=True)
    with ExitStack() as stack:
        trees = {"new": ROOT}
        if args.baseline != "none":
            trees[args.baseline] = stack.enter_context(source_tree(args.baseline))
        overrides = {"new": merged(args.overrides, args.new_override),
                     args.baseline: merged(args.overrides, args.baseline_override)}
        servers = {name: stack.enter_context(Server(tree, overrides[name])) for name, tree in trees.items()}
        report = {"load_average_start": load_average(), "photos": kind, "levels": [], "servers": {}}
        for server in servers.values():
            warm_up(server, photos)
        for name, server in servers.items():
            report["servers"][name] = {"rss_mb_start": server.rss_mb()}
        if len(servers) == 2:
            report["same_answers"] = same_answers(*servers.values(), photos[:4])
            print(f"same answers from both servers for 4 photos: {report['same_answers']}", flush=True)
        for clients, uploads in zip(args.clients, args.uploads, strict=True):
            for name, server in servers.items():
                level = {"server": name, "clients": clients, **run_load(server.url, photos, clients, uploads)}
                report["levels"].append(level)
                print(format_level(level), flush=True)
        for name, server in servers.items():
            report["servers"][name]["rss_mb_after_load"] = server.rss_mb()
            report["servers"][name]["lines"] = extreme_lines(server)
            print(f"{name}: RSS {report['servers'][name]['rss_mb_start']:.0f} -> "
                  f"{report['servers'][name]['rss_mb_after_load']:.0f} MB; lines: "
                  + "; ".join(f"{k} {v['status']} in {v['ms']:.0f} ms, peak +{v['peak_mb']:.0f} MB"
                              for k, v in report["servers"][name]["lines"].items()), flush=True)
        if args.memory_uploads:
            report["memory"] = memory_run(servers["new"], photos, args.memory_uploads)
            print("new: RSS after {first} uploads {after_first_mb:.0f} MB, after {total} {after_all_mb:.0f} MB "
                  "(+{growth_mb:.1f} MB), errors {errors}".format(**report["memory"]), flush=True)
        report["load_average_end"] = load_average()
    print(summary_table(report))
    print(f"load average at the end: {report['load_average_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")


# --------------------------------------------------------------------------------------------- photos


def load_photos(size: list[int], count: int) -> tuple[list[bytes], str]:
    """The real photos under experiments/real_photos/, or generated scenes at camera size as JPEG; what they are."""
    real = sorted(p for p in REAL_PHOTOS.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES) if REAL_PHOTOS.is_dir() \
        else []
    if real:
        photos = [p.read_bytes() for p in real]
    else:
        from mri.data.synthetic.scenes import plan_scene, render_scene
        from mri.data.synthetic.themes import THEME_NAMES

        rng = np.random.default_rng(0)
        photos = []
        for i in range(count):
            buffer = io.BytesIO()
            scene = plan_scene(THEME_NAMES[i % len(THEME_NAMES)], rng)
            render_scene(scene, tuple(size)).save(buffer, "JPEG", quality=90)
            photos.append(buffer.getvalue())
    first = Image.open(io.BytesIO(photos[0]))
    kind = (f"{'real photos' if real else 'generated scenes'}, the first {first.format} {first.width}x{first.height}, "
            f"{statistics.mean(len(p) for p in photos) / 1e3:.0f} kB on average")
    return photos, kind


def line_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- servers


@contextmanager
def source_tree(revision: str):
    """The repository at `revision` in a temporary folder (git archive), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"mri-{revision}-") as folder:
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)


def merged(overrides: list[str], replacing: list[str]) -> list[str]:
    """overrides with the keys of `replacing` replaced (or added)."""
    keys = {o.split("=", 1)[0] for o in replacing}
    return [o for o in overrides if o.split("=", 1)[0] not in keys] + replacing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python serve.py` of a source tree on a free localhost port, stopped on exit."""

    def __init__(self, tree: Path, overrides: list[str], start_timeout: float = 600):
        self.tree, self.overrides, self.start_timeout = tree, overrides, start_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.run_dir = tempfile.TemporaryDirectory(prefix="mri-serve-load-")
        env = {**os.environ, "PYTHONPATH": str(self.tree), "PROJECT_ROOT": str(ROOT)}  # data and logs: ours
        command = [sys.executable, "serve.py", f"port={self.port}", f"hydra.run.dir={self.run_dir.name}",
                   *self.overrides]
        self.log = open(Path(self.run_dir.name) / "server.log", "w+b")  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(command, cwd=self.tree, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"the server of {self.tree} stopped:\n{self.log.read().decode()[-3000:]}")
            try:
                if httpx.get(self.url + "/api/info", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server of {self.tree} did not start in {self.start_timeout:.0f} s")
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.run_dir.cleanup()

    def _status(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
        raise KeyError(key)

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def peak_mb(self) -> float:
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


# --------------------------------------------------------------------------------------------- load


def post(http: httpx.Client, photo: bytes, name: str = "photo.jpg") -> httpx.Response:
    return http.post("/api/recommend", files={"photo": (name, photo, "application/octet-stream")})


def warm_up(server: Server, photos: list[bytes]) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as http:
        for photo in photos[:3]:
            post(http, photo).raise_for_status()


def same_answers(a: Server, b: Server, photos: list[bytes]) -> str:
    """'yes', or where the first differing answer differs: the fields both servers send, scores to 1e-4."""
    with httpx.Client(base_url=a.url, timeout=120) as ha, httpx.Client(base_url=b.url, timeout=120) as hb:
        for i, photo in enumerate(photos):
            where = difference(post(ha, photo).json(), post(hb, photo).json(), f"photo {i}")
            if where:
                return f"no: {where}"
    return "yes"


def difference(x, y, where: str) -> str | None:
    """The path of the first difference of two JSON values (floats within 1e-4), or None."""
    if isinstance(x, dict) and isinstance(y, dict):  # the fields both send (a newer server may send more)
        return next((d for k in x if k in y and (d := difference(x[k], y[k], f"{where}.{k}"))), None)
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return f"{where}: {len(x)} vs {len(y)} items"
        return next((d for i, (u, v) in enumerate(zip(x, y, strict=True)) if (d := difference(u, v, f"{where}[{i}]"))),
                    None)
    if isinstance(x, float) and isinstance(y, float | int):
        return None if abs(x - y) <= 1e-4 else f"{where}: {x} vs {y}"
    return None if x == y else f"{where}: {str(x)[:60]!r} vs {str(y)[:60]!r}"


def run_load(url: str, photos: list[bytes], clients: int, uploads: int) -> dict:
    """`clients` threads, each posting uploads // clients photos one after the other: throughput and latency."""
    per_client = max(uploads // clients, 1)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in range(per_client):
                photo = photos[(c * per_client + i) % len(photos)]
                start = time.perf_counter()
                try:
                    response = post(http, photo)
                    ok = response.status_code == 200
                    problem = f"{response.status_code} {response.text[:80]}"
                except httpx.HTTPError as err:
                    ok, problem = False, f"{type(err).__name__}: {err}"
                with lock:
                    (latencies.append(time.perf_counter() - start) if ok else errors.append(problem))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    return {"uploads": per_client * clients, "answered": len(latencies), "errors": len(errors),
            "error_examples": errors[:3], "photos_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None, "load_average": load_average()}


def extreme_lines(server: Server) -> dict:
    """The 20000 x 1 and 1 x 20000 PNGs: HTTP status, latency and peak memory above the memory before it."""
    out = {}
    with httpx.Client(base_url=server.url, timeout=300) as http:
        for size in ((20000, 1), (1, 20000)):
            server.reset_peak()
            before = server.rss_mb()
            start = time.perf_counter()
            response = post(http, line_png(size), "line.png")
            out[f"{size[0]}x{size[1]}"] = {"status": response.status_code, "ms": (time.perf_counter() - start) * 1e3,
                                           "peak_mb": server.peak_mb() - before}
    return out


def memory_run(server: Server, photos: list[bytes], total: int, clients: int = 16) -> dict:
    """RSS after the first 100 uploads and after `total`, at `clients` concurrent clients."""
    first = min(100, total)
    head = run_load(server.url, photos, clients, first)
    after_first = server.rss_mb()
    tail = run_load(server.url, photos, clients, total - first) if total > first else {"errors": 0}
    after_all = server.rss_mb()
    return {"first": first, "total": total, "after_first_mb": after_first, "after_all_mb": after_all,
            "growth_mb": after_all - after_first, "errors": head["errors"] + tail["errors"]}


# --------------------------------------------------------------------------------------------- report


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def format_level(level: dict) -> str:
    p50, p99 = (f"{level[k]:.0f}" if level[k] is not None else "-" for k in ("p50_ms", "p99_ms"))
    return (f"{level['server']:>8}  {level['clients']:>2} clients  {level['photos_per_s']:6.1f} photos/s  "
            f"p50 {p50:>5} ms  p99 {p99:>5} ms  errors {level['errors']}/{level['uploads']}  "
            f"(load {level['load_average']})" + (f"  {level['error_examples']}" if level["errors"] else ""))


def summary_table(report: dict) -> str:
    """A markdown table: per level, each server's photos/s, p50, p99, errors, and new / baseline photos/s."""
    names = list(report["servers"])
    rows = ["| clients | " + " | ".join(f"{n}: photos/s, p50 / p99 ms, errors" for n in names)
            + (" | new / baseline photos/s |" if len(names) == 2 else " |"),
            "| ---: |" + " ---: |" * (len(names) + (len(names) == 2))]
    by_level: dict[int, dict[str, dict]] = {}
    for level in report["levels"]:
        by_level.setdefault(level["clients"], {})[level["server"]] = level
    for clients, levels in by_level.items():
        cells = [f"{levels[n]['photos_per_s']:.1f}, {levels[n]['p50_ms']:.0f} / {levels[n]['p99_ms']:.0f}, "
                 f"{levels[n]['errors']}" for n in names]
        if len(names) == 2:
            cells.append(f"**{levels['new']['photos_per_s'] / levels[names[1]]['photos_per_s']:.2f}x**")
        rows.append(f"| {clients} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
