#!/usr/bin/env python3
"""End-to-end referee for tickvault's performance targets (issue 4).

Generates realistic Tardis day files once (``fake-tardis generate``), serves them like the
datasets API (``fake-tardis serve``), and times, in alternating rounds within one invocation:

- tickvault cold (empty caches), warm (local tier populated, fresh output path), the identical
  command again (output present and up to date), and L3-only (fresh local cache dir, the remote
  cache populated beforehand, served by a real nginx with WebDAV);
- the peer: the official Python client ``tardis-dev==5.0.4`` ``download_datasets(endpoint=...)``
  followed by pyarrow ``read_csv`` (timestamps cast to ``timestamp[us, UTC]``) and
  ``write_table(compression="zstd")`` per file, from a virtualenv this script creates;
- ``zcat`` of the same ``.csv.gz`` files to /dev/null, the physical reference.

Every command runs under GNU ``/usr/bin/time -v`` (peak RSS); wall time is measured here.
Prints Markdown tables and a PASS/FAIL checklist and writes them to WORK/results.md. Exits
non-zero only when something could not be run (a missed target is a FAIL line, not an error).

Standard library only. Usage::

    python3 benches/e2e.py [--work DIR] [--rows 1000000] [--runs 3]
                           [--scenarios comparison,rss,book,latency,tiers] [--skip-build]

``--rows`` sets the rows of a trades day; the other scenarios scale with it (book_snapshot_25
days have rows/5, latency-scenario days rows/10), so ``--rows 20000 --runs 1`` is a smoke run.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXCHANGE = "binance-futures"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
API_KEY = "tickvault-bench-key"
PEER_REQUIREMENTS = ["tardis-dev==5.0.4", "pyarrow==26.0.1"]
TIME = "/usr/bin/time"

# Fixed date ranges (`to` exclusive), one month per scenario so their files never collide.
COMPARISON_RANGE = ("2024-01-02", "2024-01-05")  # 3 days, not the free first of a month
RSS_RANGES = {"10 days": ("2024-03-01", "2024-03-11"), "30 days": ("2024-03-01", "2024-03-31")}
BOOK_RANGES = {"10 days": ("2024-04-01", "2024-04-11"), "30 days": ("2024-04-01", "2024-05-01")}
LATENCY_RANGE = ("2024-06-01", "2024-06-21")  # 20 days x 2 symbols = 40 chunks
LATENCY_MS = 150
TIERS_RANGE = ("2024-03-01", "2024-03-06")  # 5 days x 2 symbols = 10 chunks, inside RSS_RANGES

# Targets from issue 4.
TARGET_PEER_RATIO = 2.0
TARGET_WARM_SPEEDUP = 3.0
TARGET_IDENTICAL_SPEEDUP = 20.0
TARGET_RSS_MB = 300.0
TARGET_RSS_GROWTH = 1.10
TARGET_PARQUET_RATIO = 0.60
TARGET_LATENCY_RATIO = 1.25

# Servers started by this script: stopped on exit, on errors and on Ctrl-C / SIGTERM.
_CHILDREN: list[subprocess.Popen] = []


class ExecError(RuntimeError):
    """Something could not be run: the only reason this script exits non-zero."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


def stop_children() -> None:
    while _CHILDREN:
        p = _CHILDREN.pop()
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """In a server child: get SIGTERM if this script dies without cleaning up (e.g. SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Measured:
    wall: float  # seconds, measured here
    rss_kb: int  # "Maximum resident set size" from /usr/bin/time -v
    stdout: str
    stderr: str

    @property
    def rss_mb(self) -> float:
        return self.rss_kb * 1024 / 1e6


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without anything that would reconfigure tickvault."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TICKVAULT_") and k not in ("TARDIS_API_KEY", "RUST_LOG")
    }
    env.update(extra or {})
    return env


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    stdout_devnull: bool = False,
    check: bool = True,
    what: str = "",
) -> Measured:
    """Runs `cmd` under /usr/bin/time -v; wall time from here, peak RSS from time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        time_file = tf.name
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-v", "-o", time_file, *cmd],
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if stdout_devnull else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wall = time.perf_counter() - start
        report = Path(time_file).read_text(errors="replace")
    finally:
        os.unlink(time_file)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
        raise ExecError(f"{what or cmd[0]} exited with {proc.returncode}:\n  {' '.join(cmd)}\n{tail}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    if not m:
        raise ExecError(f"no peak RSS in /usr/bin/time output for {cmd[0]}:\n{report}")
    return Measured(wall, int(m.group(1)), proc.stdout or "", proc.stderr or "")


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, quiet: bool = False) -> str:
    proc = subprocess.run(
        cmd,
        check=False,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
    )
    if proc.returncode != 0:
        raise ExecError(f"{' '.join(map(str, cmd))} exited with {proc.returncode}\n{(proc.stderr or '')[-3000:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


# ---------------------------------------------------------------------------------------------
# Binaries, data, servers


@dataclass
class Bins:
    tickvault: Path
    fake_tardis: Path


def build(skip: bool) -> Bins:
    if not skip:
        log("building tickvault and fake-tardis (release)...")
        run(["cargo", "build", "--release", "-p", "tickvault", "-p", "fake-tardis"], cwd=REPO)
    meta = json.loads(run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO, quiet=True))
    release = Path(meta["target_directory"]) / "release"
    bins = Bins(release / "tickvault", release / "fake-tardis")
    for b in (bins.tickvault, bins.fake_tardis):
        if not b.is_file():
            raise ExecError(f"{b} not found (build with cargo build --release, or drop --skip-build)")
    return bins


def generate(bins: Bins, root: Path, data_type: str, frm: str, to: str, rows: int, seed: int) -> list[Path]:
    """Writes the day files once (fake-tardis keeps files made with the same parameters)."""
    days = (date_of(to) - date_of(frm)).days
    out = run(
        [
            str(bins.fake_tardis),
            "generate",
            "--root",
            str(root),
            "--exchange",
            EXCHANGE,
            "--data-type",
            data_type,
            "--symbols",
            ",".join(SYMBOLS),
            "--from",
            frm,
            "--days",
            str(days),
            "--rows",
            str(rows),
            "--seed",
            str(seed),
        ],
        quiet=True,
    )
    wrote = sum(1 for line in out.splitlines() if line.startswith("wrote"))
    if wrote:
        log(f"  generated {wrote} {data_type} files ({rows} rows each)")
    return day_files(root, data_type, frm, to)


def date_of(s: str) -> datetime.date:
    return datetime.date.fromisoformat(s)


def day_files(root: Path, data_type: str, frm: str, to: str) -> list[Path]:
    d, end, files = date_of(frm), date_of(to), []
    while d < end:
        for s in SYMBOLS:
            f = root / EXCHANGE / data_type / f"{d:%Y}" / f"{d:%m}" / f"{d:%d}" / f"{s}.csv.gz"
            if not f.is_file():
                raise ExecError(f"missing generated file {f}")
            files.append(f)
        d += datetime.timedelta(days=1)
    return files


class FakeTardis:
    def __init__(self, bins: Bins, root: Path, logdir: Path, latency_ms: int = 0):
        self.log = open(logdir / f"fake-tardis-{latency_ms}ms.log", "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [
                str(bins.fake_tardis),
                "serve",
                "--root",
                str(root),
                "--api-key",
                API_KEY,
                "--latency-ms",
                str(latency_ms),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (servers start while no other thread runs)
        )
        _CHILDREN.append(self.proc)
        line = self.proc.stdout.readline()  # "datasets_url=... api_url=..."
        fields = dict(kv.split("=", 1) for kv in line.split())
        if "datasets_url" not in fields:
            raise ExecError(f"fake-tardis serve did not start: {line!r} (see {self.log.name})")
        self.datasets_url, self.api_url = fields["datasets_url"], fields["api_url"]

    def stop(self):
        if self.proc in _CHILDREN:
            _CHILDREN.remove(self.proc)
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


class Nginx:
    """nginx with WebDAV from a temporary prefix, like tests/it/support/nginx.rs."""

    def __init__(self, workdir: Path):
        binary = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.isfile(p)), None
        )
        if not binary:
            raise ExecError("nginx is required for the L3 runs (Debian: apt-get install nginx)")
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
        for d in ("root/cache", "body", "logs"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        p = self.dir
        for _ in range(20):
            self.port = free_port()
            conf = f"""daemon off;
master_process off;
worker_processes 1;
error_log {p}/logs/error.log warn;
pid {p}/logs/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/body;
    fastcgi_temp_path {p}/body;
    uwsgi_temp_path {p}/body;
    scgi_temp_path {p}/body;
    server {{
        listen 127.0.0.1:{self.port};
        root {p}/root;
        client_max_body_size 0;
        location / {{
            dav_methods PUT DELETE MKCOL COPY MOVE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"""
            (p / "nginx.conf").write_text(conf)
            self.proc = subprocess.Popen(
                [binary, "-p", str(p), "-c", str(p / "nginx.conf"), "-e", str(p / "logs/error.log")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (as above)
            )
            _CHILDREN.append(self.proc)
            if wait_for_port(self.port, self.proc):
                return
            self.stop()
        err = (p / "logs/error.log").read_text(errors="replace") if (p / "logs/error.log").exists() else ""
        raise ExecError(f"nginx did not start: {err[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cache/"

    def stop(self):
        if self.proc in _CHILDREN:
            _CHILDREN.remove(self.proc)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CountingServer:
    """Answers every request with 500 and counts them: an independent check that a run makes
    no request at all to the datasets or metadata API."""

    def __init__(self):
        counter = self
        self.count = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                with counter.lock:
                    counter.count += 1
                    counter.paths.append(f"{self.command} {self.path}")
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_PUT = do_POST = _any

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.datasets_url, self.api_url = f"{base}/datasets/v1", f"{base}/api/v1"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------
# tickvault, the peer, zcat


@dataclass
class TvRun:
    m: Measured
    summary: dict

    @property
    def rows(self) -> int:
        return int(self.summary.get("rows", 0))

    @property
    def requests(self) -> int:
        return int(self.summary.get("tardis", {}).get("requests", -1))

    @property
    def tiers(self) -> str:
        c = self.summary.get("chunks", {})
        return f"{c.get('memory', 0)}/{c.get('local', 0)}/{c.get('remote', 0)}/{c.get('tardis', 0)}"

    @property
    def output_bytes(self) -> int:
        return sum(int(o.get("bytes", 0)) for o in self.summary.get("outputs", []))

    @property
    def output_status(self) -> str:
        return ",".join(sorted({o.get("status", "?") for o in self.summary.get("outputs", [])}))


def tickvault(
    bins: Bins,
    server,
    data_type: str,
    rng: tuple[str, str],
    out: Path,
    cache: Path,
    *,
    remote: str | None = None,
    extra: tuple[str, ...] = (),
    what: str = "tickvault",
) -> TvRun:
    cmd = [
        str(bins.tickvault),
        "download",
        "-e",
        EXCHANGE,
        "-s",
        ",".join(SYMBOLS),
        "-t",
        data_type,
        "--from",
        rng[0],
        "--to",
        rng[1],
        "-o",
        str(out),
        "--cache-dir",
        str(cache),
        "--datasets-url",
        server.datasets_url,
        "--api-url",
        server.api_url,
        "--json",
        "--no-progress",
        *extra,
    ]
    if remote:
        cmd += ["--remote-cache", remote]
    m = measure(cmd, env=clean_env({"TARDIS_API_KEY": API_KEY}), what=what)
    try:
        summary = json.loads(m.stdout)
    except json.JSONDecodeError as e:
        raise ExecError(f"{what}: --json printed no JSON ({e}): {m.stdout[:500]!r}") from e
    if summary.get("status") != "ok" or summary.get("chunks", {}).get("failed", 0):
        raise ExecError(f"{what}: run not ok: {json.dumps(summary)[:1500]}")
    return TvRun(m, summary)


PEER_SCRIPT = r'''
"""The peer: the official client's download_datasets, then pyarrow CSV -> zstd Parquet per file."""
import glob, json, os, sys, time
t0 = time.perf_counter()
import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pv, pyarrow.parquet as pq
from tardis_dev import download_datasets
t_import = time.perf_counter() - t0

endpoint, exchange, data_type, symbols, frm, to, download_dir, parquet_dir = sys.argv[1:9]
TIMESTAMPS = ("timestamp", "local_timestamp", "funding_timestamp", "expiration")
STRINGS = ("exchange", "symbol", "id", "side", "type", "underlying_index")

t1 = time.perf_counter()
download_datasets(exchange=exchange, data_types=[data_type], symbols=symbols.split(","), from_date=frm,
                  to_date=to, api_key=os.environ["TARDIS_API_KEY"], download_dir=download_dir, endpoint=endpoint)
t2 = time.perf_counter()

rows, out_bytes, files = 0, 0, sorted(glob.glob(os.path.join(download_dir, "*.csv.gz")))
os.makedirs(parquet_dir, exist_ok=True)
types = {c: pa.int64() for c in TIMESTAMPS}
types.update({c: pa.string() for c in STRINGS})
for f in files:
    table = pv.read_csv(f, convert_options=pv.ConvertOptions(column_types=types))
    for name in TIMESTAMPS:
        i = table.schema.get_field_index(name)
        if i >= 0:
            table = table.set_column(i, name, pc.cast(table[name], pa.timestamp("us", tz="UTC")))
    out = os.path.join(parquet_dir, os.path.basename(f)[: -len(".csv.gz")] + ".parquet")
    pq.write_table(table, out, compression="zstd")
    rows += table.num_rows
    out_bytes += os.path.getsize(out)
t3 = time.perf_counter()
print(json.dumps({"import_s": t_import, "download_s": t2 - t1, "convert_s": t3 - t2, "rows": rows,
                  "files": len(files), "parquet_bytes": out_bytes}))
'''


@dataclass
class Peer:
    python: Path
    script: Path
    versions: str


def setup_peer(work: Path) -> Peer:
    venv = work / "venv"
    marker = venv / ".tickvault-peer"
    want = " ".join(PEER_REQUIREMENTS)
    python = venv / "bin" / "python"
    if not (marker.is_file() and marker.read_text() == want and python.is_file()):
        log(f"creating the peer virtualenv in {venv} ({want})...")
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_REQUIREMENTS])
        marker.write_text(want)
    check = (
        "import inspect, tardis_dev, pyarrow; from tardis_dev import download_datasets; "
        "assert 'endpoint' in inspect.signature(download_datasets).parameters, 'no endpoint parameter'; "
        "print(f'tardis-dev {tardis_dev.__version__}, pyarrow {pyarrow.__version__}')"
    )
    versions = run([str(python), "-c", check], quiet=True).strip()
    script = work / "peer.py"
    script.write_text(PEER_SCRIPT)
    return Peer(python, script, versions)


@dataclass
class PeerRun:
    m: Measured
    report: dict


def peer(p: Peer, server, data_type: str, rng: tuple[str, str], download_dir: Path, parquet_dir: Path) -> PeerRun:
    cmd = [
        str(p.python),
        str(p.script),
        server.datasets_url,
        EXCHANGE,
        data_type,
        ",".join(SYMBOLS),
        rng[0],
        rng[1],
        str(download_dir),
        str(parquet_dir),
    ]
    m = measure(cmd, env=clean_env({"TARDIS_API_KEY": API_KEY}), what="peer (tardis-dev + pyarrow)")
    try:
        return PeerRun(m, json.loads(m.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError) as e:
        raise ExecError(f"peer printed no report: {m.stdout[-500:]!r} {m.stderr[-1500:]}") from e


def zcat(files: list[Path]) -> Measured:
    return measure(["zcat", *map(str, files)], stdout_devnull=True, what="zcat")


# ---------------------------------------------------------------------------------------------
# Reporting


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.2f}"


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class Report:
    sections: list[str] = field(default_factory=list)
    checks: list[tuple[bool, str]] = field(default_factory=list)

    def section(self, text: str) -> None:
        self.sections.append(text)
        print(text + "\n", flush=True)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))

    def checklist(self) -> str:
        return "\n".join(f"- {'PASS' if ok else 'FAIL'}: {text}" for ok, text in self.checks)


class Runs:
    """Fresh cache and output directories per run, removed when the scenario is done."""

    def __init__(self, work: Path, name: str):
        self.root = work / "runs" / name
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self.n = 0

    def fresh(self, label: str) -> Path:
        self.n += 1
        d = self.root / f"{self.n:03d}-{label}"
        d.mkdir()
        return d

    def remove(self, d: Path) -> None:
        shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Scenarios


def scenario_comparison(args, bins: Bins, data: Path, work: Path, report: Report) -> None:
    rows_per_day = args.rows
    log(f"[comparison] trades, {len(SYMBOLS)} symbols x 3 days of {rows_per_day} rows")
    files = generate(bins, data, "trades", *COMPARISON_RANGE, rows_per_day, seed=1)
    gz_bytes = sum(f.stat().st_size for f in files)
    expected_rows = rows_per_day * len(files)
    peer_env = setup_peer(work)
    runs = Runs(work, "comparison")
    server = FakeTardis(bins, data, work / "logs")
    nginx = Nginx(work / "runs")
    try:
        # Populate the remote tier once, with a cold pull that uploads every chunk.
        d = runs.fresh("populate-l3")
        pop = tickvault(
            bins,
            server,
            "trades",
            COMPARISON_RANGE,
            d / "out",
            d / "cache",
            remote=nginx.url,
            what="tickvault populate L3",
        )
        uploaded = pop.summary.get("uploads", {}).get("uploaded", 0)
        if uploaded != len(files):
            raise ExecError(f"populating the remote cache uploaded {uploaded} of {len(files)} chunks")
        runs.remove(d)

        res: dict[str, list] = {k: [] for k in ("cold", "warm", "identical", "l3", "peer", "zcat")}
        last_cold_cache: Path | None = None
        for r in range(args.runs):
            d = runs.fresh(f"round{r + 1}")
            cold = tickvault(
                bins, server, "trades", COMPARISON_RANGE, d / "out-cold", d / "cache", what="tickvault cold"
            )
            warm = tickvault(
                bins, server, "trades", COMPARISON_RANGE, d / "out-warm", d / "cache", what="tickvault warm"
            )
            same = tickvault(
                bins, server, "trades", COMPARISON_RANGE, d / "out-warm", d / "cache", what="tickvault identical"
            )
            l3 = tickvault(
                bins,
                server,
                "trades",
                COMPARISON_RANGE,
                d / "out-l3",
                d / "cache-l3",
                remote=nginx.url,
                what="tickvault L3-only",
            )
            pr = peer(peer_env, server, "trades", COMPARISON_RANGE, d / "peer-download", d / "peer-parquet")
            z = zcat(files)
            for k, v in zip(res, (cold, warm, same, l3, pr, z)):
                v_wall = v.wall if isinstance(v, Measured) else v.m.wall
                res[k].append(v)
                log(f"  round {r + 1}/{args.runs}: {k:<9} {v_wall:7.3f} s")
            if last_cold_cache:
                runs.remove(last_cold_cache.parent)
            last_cold_cache = d / "cache"

        # Independent check, untimed: the same warm / identical / L3-only commands against a
        # server that counts every request (and fails it).
        counter = CountingServer()
        try:
            d = runs.fresh("request-check")
            no_retry = ("--max-retries", "0")
            tickvault(
                bins,
                counter,
                "trades",
                COMPARISON_RANGE,
                d / "out",
                last_cold_cache,
                extra=no_retry,
                what="tickvault warm (request check)",
            )
            tickvault(
                bins,
                counter,
                "trades",
                COMPARISON_RANGE,
                d / "out",
                last_cold_cache,
                extra=no_retry,
                what="tickvault identical (request check)",
            )
            tickvault(
                bins,
                counter,
                "trades",
                COMPARISON_RANGE,
                d / "out-l3",
                d / "cache-l3",
                remote=nginx.url,
                extra=no_retry,
                what="tickvault L3-only (request check)",
            )
            server_side = counter.count
        except ExecError as e:
            log(f"  request check failed: {e}")
            server_side = max(counter.count, 1)
        finally:
            counter.stop()
    finally:
        server.stop()
        nginx.remove()
        runs.close()

    walls = {k: [x.wall if isinstance(x, Measured) else x.m.wall for x in v] for k, v in res.items()}
    rss = {k: max(x.rss_mb if isinstance(x, Measured) else x.m.rss_mb for x in v) for k, v in res.items()}
    m = {k: med(v) for k, v in walls.items()}
    tv_rows = res["cold"][0].rows
    peer_rows = res["peer"][0].report["rows"]
    peer_dl = med([x.report["download_s"] for x in res["peer"]])
    peer_cv = med([x.report["convert_s"] for x in res["peer"]])
    peer_parquet = res["peer"][0].report["parquet_bytes"]
    out_bytes = res["cold"][0].output_bytes

    def tv_row(label, k, note=""):
        runs_ = res[k]
        reqs = ",".join(str(x.requests) for x in runs_)
        return [
            label,
            fmt_s(m[k]),
            f"{fmt_s(min(walls[k]))}–{fmt_s(max(walls[k]))}",
            fmt_rate(tv_rows / m[k]),
            f"{rss[k]:.0f}",
            runs_[0].tiers,
            reqs,
            runs_[-1].output_status + note,
        ]

    rows = [
        tv_row("tickvault cold", "cold"),
        tv_row("tickvault warm (fresh output)", "warm"),
        tv_row("tickvault identical command", "identical"),
        tv_row("tickvault L3-only (nginx WebDAV)", "l3"),
        [
            "peer total (tardis-dev + pyarrow)",
            fmt_s(m["peer"]),
            f"{fmt_s(min(walls['peer']))}–{fmt_s(max(walls['peer']))}",
            fmt_rate(peer_rows / m["peer"]),
            f"{rss['peer']:.0f}",
            "",
            "",
            "",
        ],
        ["  peer download step", fmt_s(peer_dl), "", fmt_rate(peer_rows / peer_dl), "", "", "", ""],
        ["  peer conversion step", fmt_s(peer_cv), "", fmt_rate(peer_rows / peer_cv), "", "", "", ""],
        [
            "zcat (physical reference)",
            fmt_s(m["zcat"]),
            f"{fmt_s(min(walls['zcat']))}–{fmt_s(max(walls['zcat']))}",
            fmt_rate(expected_rows / m["zcat"]),
            f"{rss['zcat']:.0f}",
            "",
            "",
            "",
        ],
    ]
    peer_ratio = (tv_rows / m["cold"]) / (peer_rows / m["peer"])
    warm_x, same_x = m["cold"] / m["warm"], m["cold"] / m["identical"]
    zcat_ratio = m["cold"] / m["zcat"]
    parquet_ratio = out_bytes / gz_bytes
    warm_reqs = [x.requests for k in ("warm", "identical", "l3") for x in res[k]]
    text = [
        (
            f"## comparison: {EXCHANGE} trades, {len(SYMBOLS)} symbols x 3 days x {rows_per_day:,} rows "
            f"({len(files)} files, {gz_bytes / 1e6:.1f} MB gzip, {expected_rows:,} rows), {args.runs} rounds"
        ),
        "",
        table(
            [
                "run",
                "median s",
                "range s",
                "rows/s",
                "peak RSS MB",
                "chunks mem/local/remote/tardis",
                "tardis.requests",
                "output",
            ],
            rows,
        ),
        "",
        (
            f"- tickvault cold rows/s ÷ peer rows/s: **{peer_ratio:.2f}×** (peer: {peer_env.versions}; "
            f"peer download {peer_dl:.3f} s + conversion {peer_cv:.3f} s, rest is interpreter start-up and imports)"
        ),
        f"- tickvault cold ÷ zcat wall: **{zcat_ratio:.2f}**",
        (
            f"- warm speed-up over cold: **{warm_x:.1f}×**; identical command: **{same_x:.1f}×**; "
            f"L3-only: {m['cold'] / m['l3']:.1f}×"
        ),
        (
            f"- requests to Tardis reported by warm / identical / L3-only runs: {warm_reqs}; counted server-side "
            f"in an extra untimed warm + identical + L3-only pass: {server_side}"
        ),
        (
            f"- Parquet output {out_bytes / 1e6:.1f} MB = **{parquet_ratio:.0%}** of the gzip CSV "
            f"(peer's per-file zstd Parquet: {peer_parquet / 1e6:.1f} MB = {peer_parquet / gz_bytes:.0%})"
        ),
        f"- rows: tickvault {tv_rows:,}, peer {peer_rows:,}, expected {expected_rows:,}",
    ]
    report.section("\n".join(text))
    report.check(
        tv_rows == expected_rows == peer_rows,
        f"same rows from tickvault ({tv_rows:,}) and the peer ({peer_rows:,}), as generated ({expected_rows:,})",
    )
    report.check(
        peer_ratio >= TARGET_PEER_RATIO,
        f"cold tickvault rows/s ≥ {TARGET_PEER_RATIO}× the peer's: {peer_ratio:.2f}× "
        f"({fmt_rate(tv_rows / m['cold'])} vs {fmt_rate(peer_rows / m['peer'])} rows/s)",
    )
    report.check(
        m["cold"] <= m["zcat"], f"cold tickvault wall ≤ zcat of the same files: {m['cold']:.3f} s vs {m['zcat']:.3f} s"
    )
    zero = all(x == 0 for x in warm_reqs) and server_side == 0
    report.check(
        warm_x >= TARGET_WARM_SPEEDUP and zero,
        f"warm (fresh output) ≥ {TARGET_WARM_SPEEDUP:.0f}× faster than cold with zero requests: {warm_x:.1f}×, "
        f"requests {warm_reqs[: args.runs]} (server-side check: {server_side})",
    )
    report.check(
        same_x >= TARGET_IDENTICAL_SPEEDUP,
        f"identical command again ≥ {TARGET_IDENTICAL_SPEEDUP:.0f}× faster than cold: {same_x:.1f}× "
        f"({m['identical']:.3f} s; output {res['identical'][-1].output_status})",
    )
    report.check(
        parquet_ratio <= TARGET_PARQUET_RATIO,
        f"Parquet output ≤ {TARGET_PARQUET_RATIO:.0%} of the gzip CSV bytes: {parquet_ratio:.0%}",
    )


def scenario_rss(
    args,
    bins: Bins,
    data: Path,
    work: Path,
    report: Report,
    *,
    data_type: str,
    ranges: dict,
    rows_per_day: int,
    seed: int,
    name: str,
) -> None:
    log(
        f"[{name}] {data_type}, {len(SYMBOLS)} symbols, {rows_per_day} rows per day, cold pulls of "
        + " and ".join(ranges)
    )
    longest = max(ranges.values(), key=lambda r: r[1])
    generate(bins, data, data_type, *longest, rows_per_day, seed=seed)
    runs = Runs(work, name)
    server = FakeTardis(bins, data, work / "logs")
    results: dict[str, tuple[list[Path], list[TvRun]]] = {
        label: (day_files(data, data_type, *rng), []) for label, rng in ranges.items()
    }
    try:
        # Alternating rounds: a single run's peak RSS moves by several percent with thread timing.
        for r in range(args.runs):
            for label, rng in ranges.items():
                d = runs.fresh(label.replace(" ", ""))
                tv = tickvault(bins, server, data_type, rng, d / "out", d / "cache", what=f"tickvault cold {label}")
                results[label][1].append(tv)
                log(f"  round {r + 1}/{args.runs}: {label}: {tv.m.wall:.2f} s, peak RSS {tv.m.rss_mb:.0f} MB")
                runs.remove(d)
    finally:
        server.stop()
        runs.close()
    rows = []
    peak: dict[str, float] = {}
    for label, (files, tvs) in results.items():
        gz = sum(f.stat().st_size for f in files)
        wall = med([tv.m.wall for tv in tvs])
        peak[label] = med([tv.m.rss_mb for tv in tvs])
        rows.append(
            [
                label,
                str(len(files)),
                f"{gz / 1e6:.0f}",
                f"{tvs[0].rows:,}",
                fmt_s(wall),
                fmt_rate(tvs[0].rows / wall),
                f"{peak[label]:.0f}",
                ", ".join(f"{tv.m.rss_mb:.0f}" for tv in tvs),
                f"{tvs[0].output_bytes / gz:.0%}",
            ]
        )
    l_small, l_big = sorted(results, key=lambda label: results[label][1][0].rows)
    small, big = peak[l_small], peak[l_big]
    growth = big / small
    notes = [f"- median peak RSS {l_big} ÷ {l_small}: **{growth:.2f}**"]
    if data_type != "trades":
        notes.append(
            "- Parquet/gzip is not meaningful here: generated book snapshots gzip about 20:1, far better than "
            "real ones (pyarrow's zstd Parquet of the same files is also 2–3× the gzip)"
        )
    report.section(
        "\n".join(
            [
                (
                    f"## {name}: cold tickvault pulls of {data_type}, {len(SYMBOLS)} symbols, {rows_per_day:,} rows per day, "
                    f"{args.runs} rounds"
                ),
                "",
                table(
                    [
                        "range",
                        "files",
                        "gzip MB",
                        "rows",
                        "median s",
                        "rows/s",
                        "median peak RSS MB",
                        "runs MB",
                        "Parquet/gzip",
                    ],
                    rows,
                ),
                "",
                *notes,
            ]
        )
    )
    report.check(
        max(tv.m.rss_mb for tv in results[l_big][1]) <= TARGET_RSS_MB and growth <= TARGET_RSS_GROWTH,
        f"{name}: peak RSS ≤ {TARGET_RSS_MB:.0f} MB for {l_big} × {len(SYMBOLS)} symbols of {data_type} (every run) "
        f"and within {TARGET_RSS_GROWTH - 1:.0%} of {l_small} (medians): {big:.0f} MB vs {small:.0f} MB ({growth:.2f})",
    )


def scenario_latency(args, bins: Bins, data: Path, work: Path, report: Report) -> None:
    rows_per_day = max(args.rows // 10, 1000)
    files = generate(bins, data, "trades", *LATENCY_RANGE, rows_per_day, seed=3)
    log(f"[latency] {len(files)} chunks of {rows_per_day} trades rows, first-byte latency 0 vs {LATENCY_MS} ms")
    runs = Runs(work, "latency")
    fast = FakeTardis(bins, data, work / "logs", latency_ms=0)
    slow = FakeTardis(bins, data, work / "logs", latency_ms=LATENCY_MS)
    res: dict[int, list[TvRun]] = {0: [], LATENCY_MS: []}
    try:
        for r in range(args.runs):
            for ms, server in ((0, fast), (LATENCY_MS, slow)):
                d = runs.fresh(f"{ms}ms")
                tv = tickvault(
                    bins, server, "trades", LATENCY_RANGE, d / "out", d / "cache", what=f"tickvault cold {ms} ms"
                )
                res[ms].append(tv)
                log(f"  round {r + 1}/{args.runs}: {ms:>3} ms latency {tv.m.wall:7.3f} s")
                runs.remove(d)
    finally:
        fast.stop()
        slow.stop()
        runs.close()
    m = {ms: med([x.m.wall for x in v]) for ms, v in res.items()}
    ratio = m[LATENCY_MS] / m[0]
    rows = [
        [
            f"{ms} ms",
            fmt_s(m[ms]),
            ", ".join(fmt_s(x.m.wall) for x in v),
            fmt_rate(v[0].rows / m[ms]),
            f"{max(x.m.rss_mb for x in v):.0f}",
            str(v[0].summary["tardis"]["requests"]),
        ]
        for ms, v in res.items()
    ]
    report.section(
        "\n".join(
            [
                (
                    f"## latency: cold pulls of {len(files)} chunks ({rows_per_day:,}-row trades days), added first-byte latency "
                    f"per request, {args.runs} rounds"
                ),
                "",
                table(["first-byte latency", "median s", "runs s", "rows/s", "peak RSS MB", "requests"], rows),
                "",
                f"- {LATENCY_MS} ms ÷ 0 ms: **{ratio:.2f}**",
            ]
        )
    )
    report.check(
        ratio <= TARGET_LATENCY_RATIO,
        f"with {LATENCY_MS} ms first-byte latency a {len(files)}-chunk pull is at most "
        f"{TARGET_LATENCY_RATIO - 1:.0%} slower: {ratio:.2f} ({m[LATENCY_MS]:.3f} s vs {m[0]:.3f} s)",
    )


def scenario_tiers(args, bins: Bins, data: Path, work: Path, report: Report) -> None:
    """Issue 3's figure: the same 10-chunk download cold, warm from L2 (fresh output) and from L3
    only (fresh cache dir, nginx WebDAV populated), alternating, as ratios to cold."""
    rows_per_day = args.rows
    generate(bins, data, "trades", *RSS_RANGES["30 days"], rows_per_day, seed=2)
    files = day_files(data, "trades", *TIERS_RANGE)
    log(f"[tiers] {len(files)} chunks of {rows_per_day} trades rows: cold vs warm L2 vs L3-only")
    runs = Runs(work, "tiers")
    server = FakeTardis(bins, data, work / "logs")
    nginx = Nginx(work / "runs")
    res: dict[str, list[TvRun]] = {"cold": [], "l2": [], "l3": []}
    try:
        d = runs.fresh("populate-l3")
        pop = tickvault(
            bins, server, "trades", TIERS_RANGE, d / "out", d / "cache", remote=nginx.url, what="tickvault populate L3"
        )
        uploaded = pop.summary.get("uploads", {}).get("uploaded", 0)
        if uploaded != len(files):
            raise ExecError(f"populating the remote cache uploaded {uploaded} of {len(files)} chunks")
        runs.remove(d)
        for r in range(args.runs):
            d = runs.fresh(f"round{r + 1}")
            cold = tickvault(bins, server, "trades", TIERS_RANGE, d / "out-cold", d / "cache", what="tickvault cold")
            l2 = tickvault(bins, server, "trades", TIERS_RANGE, d / "out-l2", d / "cache", what="tickvault warm L2")
            l3 = tickvault(
                bins,
                server,
                "trades",
                TIERS_RANGE,
                d / "out-l3",
                d / "cache-l3",
                remote=nginx.url,
                what="tickvault L3-only",
            )
            for k, v in zip(res, (cold, l2, l3)):
                res[k].append(v)
                log(f"  round {r + 1}/{args.runs}: {k:<4} {v.m.wall:7.3f} s")
            runs.remove(d)
    finally:
        server.stop()
        nginx.remove()
        runs.close()
    m = {k: med([x.m.wall for x in v]) for k, v in res.items()}
    labels = {"cold": "cold (Tardis)", "l2": "warm L2 (fresh output)", "l3": "L3-only (fresh cache dir, nginx WebDAV)"}
    rows = [
        [
            labels[k],
            fmt_s(m[k]),
            ", ".join(fmt_s(x.m.wall) for x in v),
            f"{m['cold'] / m[k]:.2f}×",
            f"{max(x.m.rss_mb for x in v):.0f}",
            v[0].tiers,
            ",".join(str(x.requests) for x in v),
        ]
        for k, v in res.items()
    ]
    report.section(
        "\n".join(
            [
                f"## tiers: the same {len(files)}-chunk trades download ({rows_per_day:,}-row days) from each tier, {args.runs} rounds",
                "",
                table(
                    [
                        "run",
                        "median s",
                        "runs s",
                        "speed-up over cold",
                        "peak RSS MB",
                        "chunks mem/local/remote/tardis",
                        "tardis.requests",
                    ],
                    rows,
                ),
            ]
        )
    )
    zero = all(x.requests == 0 for k in ("l2", "l3") for x in res[k])
    report.check(zero, f"tiers: warm L2 and L3-only runs make zero requests to Tardis ({len(files)} chunks)")


# ---------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Allocator settings change peak RSS a lot (glibc arenas): say when the caller set any.
    alloc = sorted(k for k in os.environ if k.startswith(("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")))
    return (
        f"{os.cpu_count()} CPUs ({cpu or platform.machine()}), {platform.system()} {platform.release()}, "
        f"tickvault {rev or '?'}{' (modified)' if dirty else ''}"
        + (f", allocator environment: {', '.join(f'{k}={os.environ[k]}' for k in alloc)}" if alloc else "")
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work",
        type=Path,
        default=REPO / "benches" / "out",
        help="work dir: data, venv, results.md (default benches/out)",
    )
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per trades day (default 1000000)")
    ap.add_argument("--runs", type=int, default=3, help="alternating rounds per scenario (default 3)")
    ap.add_argument(
        "--scenarios",
        default="comparison,rss,book,latency,tiers",
        help="comma-separated subset of comparison,rss,book,latency,tiers",
    )
    ap.add_argument("--skip-build", action="store_true", help="use the release binaries as they are")
    args = ap.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - {"comparison", "rss", "book", "latency", "tiers"}
    if unknown or not scenarios or args.rows < 100 or args.runs < 1:
        ap.error(f"bad arguments: unknown scenarios {sorted(unknown)}" if unknown else "need --rows ≥ 100, --runs ≥ 1")
    if not os.access(TIME, os.X_OK):
        raise ExecError(f"{TIME} (GNU time) is required")

    work = args.work.resolve()
    data = work / "data" / f"rows-{args.rows}"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "runs", ignore_errors=True)
    (work / "runs").mkdir()
    bins = build(args.skip_build)
    report = Report()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    book_rows = max(args.rows // 5, 100)
    for s in scenarios:
        if s == "comparison":
            scenario_comparison(args, bins, data, work, report)
        elif s == "rss":
            scenario_rss(
                args,
                bins,
                data,
                work,
                report,
                data_type="trades",
                ranges=RSS_RANGES,
                rows_per_day=args.rows,
                seed=2,
                name="rss",
            )
        elif s == "book":
            scenario_rss(
                args,
                bins,
                data,
                work,
                report,
                data_type="book_snapshot_25",
                ranges=BOOK_RANGES,
                rows_per_day=book_rows,
                seed=4,
                name="book",
            )
        elif s == "latency":
            scenario_latency(args, bins, data, work, report)
        elif s == "tiers":
            scenario_tiers(args, bins, data, work, report)
    shutil.rmtree(work / "runs", ignore_errors=True)

    head = (
        f"# tickvault end-to-end benchmark\n\n{started}; {machine()}; --rows {args.rows} --runs {args.runs} "
        f"--scenarios {','.join(scenarios)}. Wall times are medians over the rounds; peak RSS is the "
        f"maximum over them where no column says median (GNU time, MB = 10^6 bytes).\n"
    )
    checklist = "## targets\n\n" + report.checklist()
    print(checklist, flush=True)
    (work / "results.md").write_text("\n\n".join([head, *report.sections, checklist]) + "\n")
    log(f"\nwritten to {work / 'results.md'}")
    return 0


if __name__ == "__main__":
    atexit.register(stop_children)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        sys.exit(main())
    except ExecError as e:
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        stop_children()
