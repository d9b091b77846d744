#!/usr/bin/env python3
"""End-to-end referee for tickvault's performance targets (issue 4).

Generates realistic Tardis day files once (``fake-tardis generate``), serves them like the
datasets API (``fake-tardis serve``), and times, in alternating rounds within one invocation:

- tickvault cold (empty caches), warm (local tier populated, fresh output path), the identical
  command again (output present and up to date), cold and warm with ``--order time`` (the
  interleaved order: its cost, and the memory tier's hits), and L3-only (fresh local cache dir,
  the remote cache populated beforehand, served by a real nginx with WebDAV);
- two peers, alternating, from a virtualenv this script creates: the official Python client
  ``tardis-dev==5.0.4`` ``download_datasets(endpoint=...)`` followed per file by either pyarrow
  ``read_csv`` (timestamps cast to ``timestamp[us, UTC]``) and ``write_table(compression="zstd")``,
  or polars ``read_csv`` with an explicit schema and ``write_parquet(compression="zstd")``;
- ``zcat`` of the same ``.csv.gz`` files to /dev/null, the physical reference.

With ``--baseline PATH`` the comparison, l2 and rss scenarios also run a second tickvault binary,
alternating with the current one on identical inputs, and report both medians and their ratio.

Every command runs under GNU ``/usr/bin/time -v`` (peak RSS); wall time is measured here.
Prints Markdown tables and a PASS/FAIL checklist and writes them to WORK/results.md. Exits
non-zero only when something could not be run (a missed target is a FAIL line, not an error).

Standard library only. Usage::

    python3 benches/e2e.py [--work DIR] [--rows 1000000] [--runs 3]
                           [--scenarios comparison,l2,rss,book,latency,tiers] [--skip-build]
                           [--tickvault PATH] [--fake-tardis PATH] [--baseline PATH]

``--rows`` sets the rows of a trades day; the other scenarios scale with it (incremental_book_L2
days have rows*3/2, book_snapshot_25 days rows/5, latency-scenario days rows/10), so
``--rows 20000 --runs 1`` is a smoke run.
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
PEER_REQUIREMENTS = ["tardis-dev==5.0.4", "pyarrow==26.0.1", "polars==2.1.0"]
# The peers: the same tardis-dev download, then a per-file conversion with one of these.
PEERS = {"pyarrow": "tardis-dev + pyarrow", "polars": "tardis-dev + polars"}
TIME = "/usr/bin/time"

# Fixed date ranges (`to` exclusive), one month per scenario so their files never collide.
COMPARISON_RANGE = ("2024-01-02", "2024-01-05")  # 3 days, not the free first of a month
L2_RANGE = ("2024-07-02", "2024-07-04")  # incremental_book_L2, 2 days
RSS_RANGES = {"10 days": ("2024-03-01", "2024-03-11"), "30 days": ("2024-03-01", "2024-03-31")}
BOOK_RANGES = {"10 days": ("2024-04-01", "2024-04-11"), "30 days": ("2024-04-01", "2024-05-01")}
LATENCY_RANGE = ("2024-06-01", "2024-06-21")  # 20 days x 2 symbols = 40 chunks
LATENCY_MS = 150
TIERS_RANGE = ("2024-03-01", "2024-03-06")  # 5 days x 2 symbols = 10 chunks, inside RSS_RANGES
SCENARIOS = ("comparison", "l2", "rss", "book", "latency", "tiers")

# Targets from issue 4 (the pyarrow peer, zcat, identical and RSS ones are also in the
# comparison/l2 target set below).
TARGET_PEER_RATIO = 2.0  # cold rows/s over the pyarrow peer's
TARGET_WARM_SPEEDUP = 3.0
TARGET_IDENTICAL_SPEEDUP = 20.0
TARGET_RSS_MB = 300.0
# Targets of the comparison (trades) and l2 scenarios, on top of the above.
TARGET_POLARS_RATIO = 1.3  # cold rows/s over the polars peer's
TARGET_ZCAT_RATIO = 1.0  # cold wall over zcat's
TARGET_WARM_VS_POLARS = 5.0  # warm (fresh output) rows/s over the polars peer's
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


def build(skip: bool, tickvault_bin: Path | None = None, fake_tardis_bin: Path | None = None) -> Bins:
    """The binaries to run: the given paths, else the release builds of this checkout (built here
    unless `skip` or a path was given)."""
    if tickvault_bin and fake_tardis_bin:
        bins = Bins(tickvault_bin.resolve(), fake_tardis_bin.resolve())
    else:
        if not (skip or tickvault_bin or fake_tardis_bin):
            log("building tickvault and fake-tardis (release)...")
            run(["cargo", "build", "--release", "-p", "tickvault", "-p", "fake-tardis"], cwd=REPO)
        meta = json.loads(run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO, quiet=True))
        release = Path(meta["target_directory"]) / "release"
        bins = Bins(
            (tickvault_bin or release / "tickvault").resolve(), (fake_tardis_bin or release / "fake-tardis").resolve()
        )
    for b in (bins.tickvault, bins.fake_tardis):
        if not (b.is_file() and os.access(b, os.X_OK)):
            raise ExecError(
                f"{b} not found or not executable (build with cargo build --release, drop --skip-build, "
                "or pass --tickvault and --fake-tardis)"
            )
    return bins


def describe_binary(path: Path) -> str:
    """`path (its --version)`, for the report header."""
    proc = subprocess.run(
        [str(path), "--version"], check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    version = proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else ""
    return f"{path}" + (f" ({version})" if version else "")


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
        t = f"{c.get('memory', 0)}/{c.get('local', 0)}/{c.get('remote', 0)}/{c.get('tardis', 0)}"
        merged = sum(int(o.get("chunks_from_memory", 0)) for o in self.summary.get("outputs", []))
        return f"{t} (merge: {merged} from memory)" if merged else t

    @property
    def output_bytes(self) -> int:
        return sum(int(o.get("bytes", 0)) for o in self.summary.get("outputs", []))

    @property
    def output_status(self) -> str:
        return ",".join(sorted({o.get("status", "?") for o in self.summary.get("outputs", [])}))


def tiers_of(runs: list[TvRun]) -> str:
    """Chunks per tier (memory/local/remote/tardis) of some runs: one value, or each distinct one."""
    return ", ".join(dict.fromkeys(x.tiers for x in runs))


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
"""A peer: the official client's download_datasets, then CSV -> zstd Parquet per file with
pyarrow or polars (argv[1]); each imports only its own library."""
import glob, gzip, json, os, sys, time
converter = sys.argv[1]
t0 = time.perf_counter()
if converter == "pyarrow":
    import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pv, pyarrow.parquet as pq
elif converter == "polars":
    import polars as pl
else:
    sys.exit(f"unknown converter {converter!r}")
from tardis_dev import download_datasets
t_import = time.perf_counter() - t0

endpoint, exchange, data_type, symbols, frm, to, download_dir, parquet_dir = sys.argv[2:10]
TIMESTAMPS = ("timestamp", "local_timestamp", "funding_timestamp", "expiration")
STRINGS = ("exchange", "symbol", "id", "side", "type", "underlying_index")
BOOLEANS = ("is_snapshot",)


def convert_pyarrow(src, dst):
    types = {c: pa.int64() for c in TIMESTAMPS}
    types.update({c: pa.string() for c in STRINGS})
    table = pv.read_csv(src, convert_options=pv.ConvertOptions(column_types=types))
    for name in TIMESTAMPS:
        i = table.schema.get_field_index(name)
        if i >= 0:
            table = table.set_column(i, name, pc.cast(table[name], pa.timestamp("us", tz="UTC")))
    pq.write_table(table, dst, compression="zstd")
    return table.num_rows


def convert_polars(src, dst):
    # An explicit schema from the header: timestamps Int64 (then Datetime us UTC), strings Utf8,
    # is_snapshot Boolean, everything else Float64. Empty cells are read as nulls.
    with gzip.open(src, "rt") as f:
        columns = f.readline().rstrip("\n").split(",")
    schema = {
        c: pl.Int64 if c in TIMESTAMPS else pl.Utf8 if c in STRINGS else pl.Boolean if c in BOOLEANS else pl.Float64
        for c in columns
    }
    df = pl.read_csv(src, schema=schema)
    df = df.with_columns([pl.col(c).cast(pl.Datetime("us", "UTC")) for c in columns if c in TIMESTAMPS])
    df.write_parquet(dst, compression="zstd")
    return df.height


convert = convert_pyarrow if converter == "pyarrow" else convert_polars
t1 = time.perf_counter()
download_datasets(exchange=exchange, data_types=[data_type], symbols=symbols.split(","), from_date=frm,
                  to_date=to, api_key=os.environ["TARDIS_API_KEY"], download_dir=download_dir, endpoint=endpoint)
t2 = time.perf_counter()

rows, out_bytes, files = 0, 0, sorted(glob.glob(os.path.join(download_dir, "*.csv.gz")))
os.makedirs(parquet_dir, exist_ok=True)
for f in files:
    out = os.path.join(parquet_dir, os.path.basename(f)[: -len(".csv.gz")] + ".parquet")
    rows += convert(f, out)
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
        "import inspect, tardis_dev, pyarrow, polars; from tardis_dev import download_datasets; "
        "assert 'endpoint' in inspect.signature(download_datasets).parameters, 'no endpoint parameter'; "
        "print(f'tardis-dev {tardis_dev.__version__}, pyarrow {pyarrow.__version__}, polars {polars.__version__}')"
    )
    versions = run([str(python), "-c", check], quiet=True).strip()
    script = work / "peer.py"
    script.write_text(PEER_SCRIPT)
    return Peer(python, script, versions)


@dataclass
class PeerRun:
    m: Measured
    report: dict


def peer(
    p: Peer, converter: str, server, data_type: str, rng: tuple[str, str], download_dir: Path, parquet_dir: Path
) -> PeerRun:
    cmd = [
        str(p.python),
        str(p.script),
        converter,
        server.datasets_url,
        EXCHANGE,
        data_type,
        ",".join(SYMBOLS),
        rng[0],
        rng[1],
        str(download_dir),
        str(parquet_dir),
    ]
    m = measure(cmd, env=clean_env({"TARDIS_API_KEY": API_KEY}), what=f"peer ({PEERS[converter]})")
    try:
        return PeerRun(m, json.loads(m.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError) as e:
        raise ExecError(f"peer ({PEERS[converter]}) printed no report: {m.stdout[-500:]!r} {m.stderr[-1500:]}") from e


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


KINDS = ("cold", "warm", "identical")
TV_LABELS = {
    "cold": "tickvault cold",
    "warm": "tickvault warm (fresh output)",
    "identical": "tickvault identical command",
    "l3": "tickvault L3-only (nginx WebDAV)",
    "time-cold": "tickvault cold, --order time",
    "time-warm": "tickvault warm (fresh output), --order time",
}
# The interleaved order re-encodes the merged file; run with the current binary only, to show its
# cost and the memory tier's hits (decoded batches of the chunks the run fetched).
TIME_KINDS = ("time-cold", "time-warm")


def variants(bins: Bins, baseline: Path | None) -> list[tuple[str, Bins]]:
    """The tickvault binaries a scenario alternates: the baseline first, then the current one."""
    current = ("current", bins)
    return [("baseline", Bins(baseline, bins.fake_tardis)), current] if baseline else [current]


def ratio_table(first_col: str, rows: list[tuple[str, list[TvRun], list[TvRun]]], extra_tiers: bool) -> str:
    """Baseline vs current, per figure: median wall, median peak RSS and current/baseline."""
    out = []
    for label, base, cur in rows:
        bw, cw = med([x.m.wall for x in base]), med([x.m.wall for x in cur])
        br, cr = med([x.m.rss_mb for x in base]), med([x.m.rss_mb for x in cur])
        row = [label, fmt_s(bw), fmt_s(cw), f"**{cw / bw:.3f}**", f"{br:.0f}", f"{cr:.0f}", f"**{cr / br:.3f}**"]
        if extra_tiers:
            row.append(f"{tiers_of(base)} / {tiers_of(cur)}")
        out.append(row)
    header = [
        first_col,
        "baseline median s",
        "current median s",
        "current/baseline s",
        "baseline median peak RSS MB",
        "current median peak RSS MB",
        "current/baseline RSS",
    ]
    if extra_tiers:
        header.append("chunks mem/local/remote/tardis baseline / current")
    return table(header, out)


def scenario_download(
    args,
    bins: Bins,
    data: Path,
    work: Path,
    report: Report,
    *,
    name: str,
    data_type: str,
    rng: tuple[str, str],
    rows_per_day: int,
    seed: int,
    full: bool,
) -> None:
    """tickvault cold / warm (fresh output) / identical (each binary alternating with the baseline,
    if any), both peers and zcat, in alternating rounds. `full` (the trades comparison) adds the
    L3-only runs, the server-side zero-request check and issue 4's other targets."""
    days = (date_of(rng[1]) - date_of(rng[0])).days
    log(f"[{name}] {data_type}, {len(SYMBOLS)} symbols x {days} days of {rows_per_day} rows")
    files = generate(bins, data, data_type, *rng, rows_per_day, seed=seed)
    gz_bytes = sum(f.stat().st_size for f in files)
    expected_rows = rows_per_day * len(files)
    peer_env = setup_peer(work)
    vs = variants(bins, args.baseline)
    runs = Runs(work, name)
    server = FakeTardis(bins, data, work / "logs")
    nginx = Nginx(work / "runs") if full else None
    tv: dict[tuple[str, str], list[TvRun]] = {(v, k): [] for v, _ in vs for k in KINDS}
    l3: list[TvRun] = []
    tv_time: dict[str, list[TvRun]] = {k: [] for k in TIME_KINDS}
    peers: dict[str, list[PeerRun]] = {c: [] for c in PEERS}
    zc: list[Measured] = []
    server_side = 0
    try:
        if nginx:
            # Populate the remote tier once, with a cold pull that uploads every chunk.
            d = runs.fresh("populate-l3")
            pop = tickvault(
                bins, server, data_type, rng, d / "out", d / "cache", remote=nginx.url, what="tickvault populate L3"
            )
            uploaded = pop.summary.get("uploads", {}).get("uploaded", 0)
            if uploaded != len(files):
                raise ExecError(f"populating the remote cache uploaded {uploaded} of {len(files)} chunks")
            runs.remove(d)

        last_cold_cache: Path | None = None
        for r in range(args.runs):
            d = runs.fresh(f"round{r + 1}")
            # Each binary has its own cache and output dirs; for each figure the binaries alternate.
            for kind in KINDS:
                for v, b in vs:
                    pre = "" if v == "current" else f"{v}-"
                    out = d / f"{pre}out-{'cold' if kind == 'cold' else 'warm'}"
                    x = tickvault(b, server, data_type, rng, out, d / f"{pre}cache", what=f"tickvault {kind} ({v})")
                    tv[(v, kind)].append(x)
                    log(f"  round {r + 1}/{args.runs}: {f'{kind} ({v})':<21} {x.m.wall:7.3f} s")
            for kind in TIME_KINDS:
                out = d / f"out-{kind}"
                order = ("--order", "time")
                x = tickvault(bins, server, data_type, rng, out, d / "cache-time", extra=order, what=f"tickvault {kind}")
                tv_time[kind].append(x)
                log(f"  round {r + 1}/{args.runs}: {kind:<21} {x.m.wall:7.3f} s")
            runs.remove(d / "cache-time")
            if nginx:
                x = tickvault(
                    bins,
                    server,
                    data_type,
                    rng,
                    d / "out-l3",
                    d / "cache-l3",
                    remote=nginx.url,
                    what="tickvault L3-only",
                )
                l3.append(x)
                log(f"  round {r + 1}/{args.runs}: {'L3-only':<21} {x.m.wall:7.3f} s")
            for conv in PEERS:
                dl, pq = d / f"peer-{conv}-download", d / f"peer-{conv}-parquet"
                pr = peer(peer_env, conv, server, data_type, rng, dl, pq)
                runs.remove(dl)
                runs.remove(pq)
                peers[conv].append(pr)
                log(f"  round {r + 1}/{args.runs}: {f'peer ({conv})':<21} {pr.m.wall:7.3f} s")
            z = zcat(files)
            zc.append(z)
            log(f"  round {r + 1}/{args.runs}: {'zcat':<21} {z.wall:7.3f} s")
            if last_cold_cache:
                runs.remove(last_cold_cache.parent)
            last_cold_cache = d / "cache"

        if nginx:
            # Independent check, untimed: the same warm / identical / L3-only commands against a
            # server that counts every request (and fails it).
            counter = CountingServer()
            try:
                d = runs.fresh("request-check")
                no_retry = ("--max-retries", "0")
                # A fresh cache dir has no copy of Tardis's metadata: the L3-only run's validation
                # would ask the metadata API once (README, "Checked before anything is fetched").
                # What is checked here is that no dataset is fetched, so it skips validation.
                for what, out, cache, remote, extra in (
                    ("warm", d / "out", last_cold_cache, None, no_retry),
                    ("identical", d / "out", last_cold_cache, None, no_retry),
                    ("L3-only", d / "out-l3", d / "cache-l3", nginx.url, (*no_retry, "--no-validate")),
                ):
                    tickvault(
                        bins,
                        counter,
                        data_type,
                        rng,
                        out,
                        cache,
                        remote=remote,
                        extra=extra,
                        what=f"tickvault {what} (request check)",
                    )
                server_side = counter.count
            except ExecError as e:
                log(f"  request check failed: {e}")
                server_side = max(counter.count, 1)
            finally:
                counter.stop()
    finally:
        server.stop()
        if nginx:
            nginx.remove()
        runs.close()

    cur: dict[str, list[TvRun]] = {k: tv[("current", k)] for k in KINDS}
    if l3:
        cur["l3"] = l3
    cur.update(tv_time)
    walls = {k: [x.m.wall for x in v] for k, v in cur.items()}
    walls.update({f"peer-{c}": [x.m.wall for x in v] for c, v in peers.items()})
    walls["zcat"] = [x.wall for x in zc]
    m = {k: med(v) for k, v in walls.items()}
    rss = {k: max(x.m.rss_mb for x in v) for k, v in cur.items()}
    tv_rows = cur["cold"][0].rows
    peer_rows = {c: v[0].report["rows"] for c, v in peers.items()}
    out_bytes = cur["cold"][0].output_bytes

    def span(k: str) -> str:
        return f"{fmt_s(min(walls[k]))}–{fmt_s(max(walls[k]))}"

    rows = [
        [
            TV_LABELS[k],
            fmt_s(m[k]),
            span(k),
            fmt_rate(tv_rows / m[k]),
            f"{rss[k]:.0f}",
            tiers_of(v),
            ",".join(str(x.requests) for x in v),
            v[-1].output_status,
        ]
        for k, v in cur.items()
    ]
    peer_steps: dict[str, tuple[float, float]] = {}
    for c, v in peers.items():
        k = f"peer-{c}"
        dl = med([x.report["download_s"] for x in v])
        cv = med([x.report["convert_s"] for x in v])
        peer_steps[c] = (dl, cv)
        rows += [
            [
                f"peer total ({PEERS[c]})",
                fmt_s(m[k]),
                span(k),
                fmt_rate(peer_rows[c] / m[k]),
                f"{max(x.m.rss_mb for x in v):.0f}",
                "",
                "",
                "",
            ],
            ["  download step (tardis-dev)", fmt_s(dl), "", fmt_rate(peer_rows[c] / dl), "", "", "", ""],
            [f"  conversion step ({c})", fmt_s(cv), "", fmt_rate(peer_rows[c] / cv), "", "", "", ""],
        ]
    rows.append(
        [
            "zcat (physical reference)",
            fmt_s(m["zcat"]),
            span("zcat"),
            fmt_rate(expected_rows / m["zcat"]),
            f"{max(x.rss_mb for x in zc):.0f}",
            "",
            "",
            "",
        ]
    )
    # Speed-ups as rows/s ratios (the same as wall ratios when the rows agree, as checked below).
    tv_rate = {k: tv_rows / m[k] for k in cur}
    vs_peer = {c: tv_rate["cold"] / (peer_rows[c] / m[f"peer-{c}"]) for c in PEERS}
    warm_vs_polars = tv_rate["warm"] / (peer_rows["polars"] / m["peer-polars"])
    warm_x, same_x = m["cold"] / m["warm"], m["cold"] / m["identical"]
    zcat_ratio = m["cold"] / m["zcat"]
    parquet_ratio = out_bytes / gz_bytes
    peak_kind = max(rss, key=rss.get)
    warm_reqs = [x.requests for k in ("warm", "identical", "l3") if k in cur for x in cur[k]]
    peer_parquet = {c: v[0].report["parquet_bytes"] for c, v in peers.items()}
    steps = "; ".join(f"{c}: download {dl:.3f} s + conversion {cv:.3f} s" for c, (dl, cv) in peer_steps.items())
    text = [
        (
            f"## {name}: {EXCHANGE} {data_type}, {len(SYMBOLS)} symbols x {days} days x {rows_per_day:,} rows "
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
            f"- tickvault cold rows/s ÷ peer rows/s: pyarrow **{vs_peer['pyarrow']:.2f}×**, polars "
            f"**{vs_peer['polars']:.2f}×**; warm ÷ polars peer: **{warm_vs_polars:.1f}×** ({peer_env.versions}; "
            f"{steps}; the rest is interpreter start-up and imports)"
        ),
        f"- tickvault cold ÷ zcat wall: **{zcat_ratio:.2f}**",
        (
            f"- warm speed-up over cold: **{warm_x:.1f}×**; identical command: **{same_x:.1f}×**"
            + (f"; L3-only: {m['cold'] / m['l3']:.1f}×" if "l3" in m else "")
        ),
        (
            f"- `--order time` (interleaved, re-encoded) ÷ symbol-major: cold **{m['time-cold'] / m['cold']:.2f}×** "
            f"the wall, warm **{m['time-warm'] / m['warm']:.2f}×**; its output "
            f"{cur['time-cold'][0].output_bytes / 1e6:.1f} MB, {cur['time-cold'][0].rows:,} rows"
        ),
    ]
    if full:
        text.append(
            f"- requests to Tardis reported by warm / identical / L3-only runs: {warm_reqs}; counted server-side "
            f"in an extra untimed warm + identical + L3-only (`--no-validate`) pass: {server_side}"
        )
    text += [
        (
            f"- Parquet output {out_bytes / 1e6:.1f} MB = **{parquet_ratio:.0%}** of the gzip CSV (peers' per-file "
            + ", ".join(f"{c} {b / 1e6:.1f} MB = {b / gz_bytes:.0%}" for c, b in peer_parquet.items())
            + ")"
        ),
        f"- rows: tickvault {tv_rows:,}, peers "
        + ", ".join(f"{c} {n:,}" for c, n in peer_rows.items())
        + f", expected {expected_rows:,}",
    ]
    if args.baseline:
        base = {k: tv[("baseline", k)] for k in KINDS}
        b_rows, b_bytes = base["cold"][0].rows, base["cold"][0].output_bytes
        text += [
            "",
            f"### {name}: baseline {args.baseline} vs current {bins.tickvault}, alternating on identical inputs",
            "",
            ratio_table("run", [(TV_LABELS[k], base[k], cur[k]) for k in KINDS], extra_tiers=True),
            "",
            f"- cold rows baseline {b_rows:,}, current {tv_rows:,}; cold Parquet output baseline {b_bytes:,} bytes, "
            f"current {out_bytes:,} bytes ({'same' if b_rows == tv_rows and b_bytes == out_bytes else 'DIFFERENT'})",
        ]
    report.section("\n".join(text))

    ok_rows = tv_rows == expected_rows and all(n == expected_rows for n in peer_rows.values())
    report.check(
        ok_rows,
        f"{name}: same rows from tickvault ({tv_rows:,}) and the peers ("
        + ", ".join(f"{c} {n:,}" for c, n in peer_rows.items())
        + f"), as generated ({expected_rows:,})",
    )

    def rate_check(target: float, ratio: float, what: str, a: str, b: str, note: str = "") -> None:
        report.check(
            ratio >= target,
            f"{name}: {what} ≥ {target}× faster{note}: **{ratio:.2f}×** ({fmt_rate(tv_rate[a])} vs "
            f"{fmt_rate(peer_rows[b] / m[f'peer-{b}'])} rows/s)",
        )

    rate_check(TARGET_POLARS_RATIO, vs_peer["polars"], "cold vs the polars peer", "cold", "polars")
    rate_check(TARGET_PEER_RATIO, vs_peer["pyarrow"], "cold vs the pyarrow peer", "cold", "pyarrow", " (issue 4)")
    report.check(
        zcat_ratio <= TARGET_ZCAT_RATIO,
        f"{name}: cold wall ≤ {TARGET_ZCAT_RATIO}× zcat's of the same files (issue 4): **{zcat_ratio:.2f}×** "
        f"({m['cold']:.3f} s vs {m['zcat']:.3f} s)",
    )
    rate_check(TARGET_WARM_VS_POLARS, warm_vs_polars, "warm (fresh output) vs the polars peer", "warm", "polars")
    if full:
        zero = all(x == 0 for x in warm_reqs) and server_side == 0
        report.check(
            warm_x >= TARGET_WARM_SPEEDUP and zero,
            f"{name}: warm (fresh output) ≥ {TARGET_WARM_SPEEDUP:.0f}× faster than cold with zero requests "
            f"(issue 4): {warm_x:.1f}×, requests {warm_reqs[: args.runs]} (server-side check: {server_side})",
        )
    report.check(
        same_x >= TARGET_IDENTICAL_SPEEDUP,
        f"{name}: identical re-run ≥ {TARGET_IDENTICAL_SPEEDUP:.0f}× faster than cold (issue 4): **{same_x:.1f}×** "
        f"({m['identical']:.3f} s; output {cur['identical'][-1].output_status})",
    )
    report.check(
        rss[peak_kind] <= TARGET_RSS_MB,
        f"{name}: peak RSS ≤ {TARGET_RSS_MB:.0f} MB in every tickvault run: **{rss[peak_kind]:.0f} MB** "
        f"(highest: {TV_LABELS[peak_kind].removeprefix('tickvault ')})",
    )
    if full:
        report.check(
            parquet_ratio <= TARGET_PARQUET_RATIO,
            f"{name}: Parquet output ≤ {TARGET_PARQUET_RATIO:.0%} of the gzip CSV bytes (issue 4): {parquet_ratio:.0%}",
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
    baseline: Path | None = None,
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
    vs = variants(bins, baseline)
    base: dict[str, list[TvRun]] = {label: [] for label in ranges}
    try:
        # Alternating rounds: a single run's peak RSS moves by several percent with thread timing.
        # With a baseline, the two binaries alternate for each range.
        for r in range(args.runs):
            for label, rng in ranges.items():
                for v, b in vs:
                    d = runs.fresh(f"{label.replace(' ', '')}-{v}")
                    tv = tickvault(
                        b, server, data_type, rng, d / "out", d / "cache", what=f"tickvault cold {label} ({v})"
                    )
                    (results[label][1] if v == "current" else base[label]).append(tv)
                    log(
                        f"  round {r + 1}/{args.runs}: {label}: {v:<8} {tv.m.wall:.2f} s, peak RSS {tv.m.rss_mb:.0f} MB"
                    )
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
                tiers_of(tvs),
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
    if baseline:
        notes += [
            "",
            f"### {name}: baseline {baseline} vs current {bins.tickvault}, alternating on identical inputs",
            "",
            ratio_table("range", [(label, base[label], results[label][1]) for label in ranges], extra_tiers=True),
        ]
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
                        "chunks mem/local/remote/tardis",
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
            tiers_of(v),
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
                table(
                    [
                        "first-byte latency",
                        "median s",
                        "runs s",
                        "rows/s",
                        "peak RSS MB",
                        "chunks mem/local/remote/tardis",
                        "requests",
                    ],
                    rows,
                ),
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


def machine(bins: Bins, baseline: Path | None, given: bool) -> str:
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
    checkout = f"{rev or '?'}{' (modified)' if dirty else ''}"
    # A binary given with --tickvault need not be this checkout's: name it and its --version.
    current = f"tickvault {describe_binary(bins.tickvault)}" if given else f"tickvault {checkout}"
    return (
        f"{os.cpu_count()} CPUs ({cpu or platform.machine()}), {platform.system()} {platform.release()}, "
        f"{current}"
        + (f", harness {checkout}" if given else "")
        + (f", baseline tickvault {describe_binary(baseline)}" if baseline else "")
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
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    ap.add_argument("--skip-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument(
        "--tickvault", type=Path, metavar="PATH", help="the tickvault binary to measure (implies --skip-build)"
    )
    ap.add_argument(
        "--fake-tardis", type=Path, metavar="PATH", help="the fake-tardis binary to use (implies --skip-build)"
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        metavar="PATH",
        help="a second tickvault binary (e.g. the previous commit's), alternated with the current one in the "
        "comparison, l2 and rss scenarios",
    )
    args = ap.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown or not scenarios or args.rows < 100 or args.runs < 1:
        ap.error(f"bad arguments: unknown scenarios {sorted(unknown)}" if unknown else "need --rows ≥ 100, --runs ≥ 1")
    if not os.access(TIME, os.X_OK):
        raise ExecError(f"{TIME} (GNU time) is required")
    if args.baseline:
        args.baseline = args.baseline.resolve()
        if not (args.baseline.is_file() and os.access(args.baseline, os.X_OK)):
            raise ExecError(f"--baseline {args.baseline}: not an executable file")

    work = args.work.resolve()
    data = work / "data" / f"rows-{args.rows}"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "runs", ignore_errors=True)
    (work / "runs").mkdir()
    bins = build(args.skip_build, args.tickvault, args.fake_tardis)
    report = Report()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    book_rows = max(args.rows // 5, 100)
    for s in scenarios:
        if s == "comparison":
            scenario_download(
                args,
                bins,
                data,
                work,
                report,
                name="comparison",
                data_type="trades",
                rng=COMPARISON_RANGE,
                rows_per_day=args.rows,
                seed=1,
                full=True,
            )
        elif s == "l2":
            scenario_download(
                args,
                bins,
                data,
                work,
                report,
                name="l2",
                data_type="incremental_book_L2",
                rng=L2_RANGE,
                rows_per_day=args.rows * 3 // 2,
                seed=5,
                full=False,
            )
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
                baseline=args.baseline,
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

    given = bool(args.tickvault)
    head = (
        f"# tickvault end-to-end benchmark\n\n{started}; {machine(bins, args.baseline, given)}; --rows {args.rows} --runs {args.runs} "
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
