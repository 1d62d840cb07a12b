"""``dse search``: mine the accelerator that maximizes training throughput (or throughput
per TDP watt) within an area (and power) budget (design brief §4, issue 5).

::

    dse search --workload WORKLOAD[,WORKLOAD...] --area MM2 [--power W]
               [--objective throughput|perf_per_tdp] [--devices N]
               [--searcher wham|optuna|random|exhaustive] [--budget N] [--top-k K]
               [--seed S] [--storage URL] [--study NAME] [--out DIR] [--jobs N]
               [--batch B] [--seq S] [--multi-objective] [--no-report]

* Run directory ``--out`` (default ``results/<YYYYmmdd-HHMMSS>-<workload>/``):
  ``summary.json`` (the ``--json`` object), ``best.json``, ``designs.csv`` (every
  evaluated design), ``study.db`` (the Optuna study, default ``--storage``) and, unless
  ``--no-report``, ``report.html`` (:func:`dse.report.write_report`; a failure there is a
  warning, the run is kept).
* Rerunning with the same ``--storage``/``--study`` resumes the study: its trials count
  against ``--budget`` and are not evaluated again.
* ``--jobs N > 1`` (or a PostgreSQL/MySQL ``--storage``) runs the search as a shared
  study that workers fill (:mod:`search.distributed`; searchers optuna, random and
  exhaustive; ``dse worker`` joins from other machines).
* No feasible design → exit 3, naming the smallest area that would work.
* Progress: a bar on stderr (off with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dse.errors import ConfigError


def _workloads(arg: str) -> tuple[str, ...]:
    if "," in arg and Path(arg.strip()).is_file():  # a file whose name has a comma
        return (arg.strip(),)
    items = tuple(w.strip() for w in arg.split(","))
    if not items or any(not w for w in items):
        raise ConfigError(f"--workload {arg!r} has an empty entry; give NAME[,NAME...]")
    return items


def default_out_dir(workloads: tuple[str, ...], root: Path = Path("results")) -> Path:
    """``results/<YYYYmmdd-HHMMSS>-<workload>`` (``-2``, ``-3`` … if it exists)."""
    tag = "+".join(Path(w).stem if ("/" in w or w.endswith((".json", ".onnx", ".yaml")))
                   else w for w in workloads)
    base = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _is_run_dir(out: Path) -> bool:
    """``out`` holds a dse run (its study or lock, or a summary.json that dse wrote)."""
    from search.runlock import LOCK_NAME
    from search.storage_url import JOURNAL_FILE, STUDY_DB

    if any((out / m).exists() for m in (STUDY_DB, JOURNAL_FILE, LOCK_NAME)):
        return True
    try:
        d = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(d, dict) and {"best", "searcher", "evaluations"} <= d.keys()


def _check_out(out: Path) -> None:
    """``out`` is a new or empty directory, or one a dse run made (a rerun resumes it):
    a directory of other files is refused before anything in it is overwritten."""
    if out.is_dir():
        try:
            busy = next(out.iterdir(), None) is not None
        except OSError as e:
            raise ConfigError(f"--out {out}: cannot read the directory "
                              f"({e.strerror or e})") from None
        if busy and not _is_run_dir(out):
            raise ConfigError(f"--out {out}: the directory holds other files and no dse "
                              "run; give a new or empty directory (a run directory "
                              "resumes)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the directory "
                          f"({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: directory is not writable")


def _lock_paths(out: Path, storage: str | None) -> list[tuple[Path, Any]]:
    """Lock files of a run: the run directory's, and one beside a SQLite or journal
    storage file that lives elsewhere (a server storage is shared by design)."""
    from search.runlock import LOCK_NAME

    paths: list[tuple[Path, Any]] = [(out / LOCK_NAME, f"--out {out}")]
    if storage is not None:
        from search.distributed import parse_storage

        spec = parse_storage(storage, run_dir=out)
        if spec.path:
            f = Path(spec.path)
            if f.parent.resolve() != out.resolve():
                paths.append((f.parent / f".{f.name}.dse-lock", f"--storage {spec.display}"))
    return paths


def _distributed(args: argparse.Namespace, storage: str | None) -> bool:
    """Whether the search runs as slots in a shared study (``--jobs`` > 1, or a server
    storage that ``dse worker`` processes may join); wham is sequential by nature and
    runs in this process on any storage."""
    if args.jobs > 1:
        return True
    server = bool(storage and storage.split(":", 1)[0].split("+")[0] in
                  ("postgresql", "postgres", "mysql"))
    return server and args.searcher != "wham"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from search.runner import SearchConfig

    workloads = _workloads(args.workload)
    out = Path(args.out) if args.out else default_out_dir(workloads)
    cfg = SearchConfig(workloads=workloads, area_mm2=args.area, power_w=args.power,
                       objective=args.objective, devices=args.devices,
                       searcher=args.searcher, budget=args.budget, top_k=args.top_k,
                       seed=args.seed, storage=args.storage, study=args.study,
                       out_dir=str(out), batch=args.batch, seq=args.seq,
                       multi_objective=args.multi_objective, guidance=args.guidance,
                       heterogeneous=args.heterogeneous,
                       attention=getattr(args, "attention", None),
                       dtype=getattr(args, "dtype", "bf16"))
    if args.storage is not None:  # a bad URL or driver is named before anything else
        from search.distributed import parse_storage

        parse_storage(args.storage)
    existed = out.exists()
    _check_out(out)
    try:
        return _run(args, cfg, out)
    except BaseException:
        if not existed:
            _remove_if_empty(out)  # a failed run leaves no empty directory behind
        raise


def _remove_if_empty(out: Path) -> None:
    """Remove ``out`` when the run wrote nothing of value into it (only the lock file or
    an empty study); a run that scored designs keeps them."""
    import shutil

    from search.runlock import LOCK_NAME

    try:
        names = {p.name for p in out.iterdir()}
    except OSError:
        return
    keep = names - {LOCK_NAME}
    if keep and not _only_empty_study(out, keep):
        return
    shutil.rmtree(out, ignore_errors=True)


def _only_empty_study(out: Path, names: set[str]) -> bool:
    """Whether ``names`` are just a SQLite study without a finished trial."""
    if not names <= {"study.db", "study.db-wal", "study.db-shm", "study.db-journal"}:
        return False
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{out / 'study.db'}?mode=ro", uri=True, timeout=1)
        try:
            n = con.execute("select count(*) from trials").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return "study.db" not in names
    return int(n) == 0


def _run(args: argparse.Namespace, cfg: Any, out: Path) -> dict[str, Any]:
    from search.runlock import run_lock, sigterm_stops
    from search.runner import run_search

    # one search per run directory and storage file; SIGTERM stops like Ctrl-C (what
    # was evaluated is flushed to the study first)
    with run_lock(_lock_paths(out, args.storage)), sigterm_stops():
        if _distributed(args, args.storage):
            from search.distributed_search import run_distributed

            summary, ev = run_distributed(cfg, jobs=args.jobs, quiet=args.json)
            _write(summary, ev, out, args, None)
        else:
            bar = _Progress(enabled=not args.json)
            try:
                summary, ev = run_search(cfg, on_progress=bar.update, on_message=bar.message,
                                         progress_total=bar.total)
                _write(summary, ev, out, args, bar)
            finally:
                bar.close()
    if getattr(args, "json", False):  # the human output prints them with the result
        for w in summary.get("warnings") or []:
            sys.stderr.write(f"dse search: warning: {w}\n")
    return summary


def _write(summary: dict[str, Any], ev: Any, out: Path, args: argparse.Namespace,
           bar: _Progress | None) -> None:
    from search.runner import write_run_dir

    text = (f"writing {out}" + ("" if args.no_report else " (summary, designs, report.html)"))
    if bar is not None:
        bar.message(text)
    elif not args.json:
        sys.stderr.write(f"dse search: {text}\n")
    write_run_dir(summary, ev, out)
    if not args.no_report:
        text = f"writing {out / 'report.html'} (reading designs.csv, drawing the figures)"
        if bar is not None:
            bar.message(text)
        elif not args.json:
            sys.stderr.write(f"dse search: {text}\n")
        _report(out)


def _report(out: Path) -> None:
    """Write report.html if the report module exists; never lose the run over it."""
    try:
        from dse import report
    except ImportError:
        return
    fn = getattr(report, "write_report", None)
    if fn is None:
        return
    try:
        fn(out)
    except Exception as e:  # noqa: BLE001 - the run is saved; the report is optional
        msg = " ".join(str(e).split())[:200]
        sys.stderr.write(f"dse search: warning: report.html not written "
                         f"({e.__class__.__name__}: {msg}); run `dse report {out}`\n")


class _Progress:
    """Progress on stderr: a line when a phase starts and, on a terminal, a tqdm bar
    counting evaluated designs below it. A heartbeat thread refreshes the bar every
    second (its clock moves), so no phase is silent, even one that scores nothing for a
    while. When stderr is not a terminal (a log file, a pipe) there is no bar and no
    carriage return: the phase lines, and every ``LOG_EVERY_S`` a line with the count
    of designs scored when it has moved."""

    HEARTBEAT_S = 1.0
    LOG_EVERY_S = 30.0

    def __init__(self, enabled: bool, tty: bool | None = None) -> None:
        self.enabled = enabled
        self.tty = _isatty(sys.stderr) if tty is None else tty
        self.bar: Any = None
        self._stop: Any = None
        self._thread: Any = None
        self._count = 0
        self._logged = 0
        self._lock: Any = None

    def _open(self, n: int | None) -> None:
        import threading

        self._stop = threading.Event()
        self._lock = threading.Lock()
        if self.tty:
            from tqdm import tqdm

            # with a known budget tqdm shows the total and an ETA; without (the
            # heuristic runs until it converges) the count and the rate
            self.bar = tqdm(total=n, file=sys.stderr, unit="design", dynamic_ncols=True,
                            desc="search", leave=False, mininterval=0.5)
        self._thread = threading.Thread(target=self._beat, name="dse-progress", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        if not self.tty:
            while not self._stop.wait(self.LOG_EVERY_S):
                self._log_count()
            return
        while not self._stop.wait(self.HEARTBEAT_S):
            bar = self.bar
            if bar is not None:
                with bar.get_lock():
                    bar.refresh(nolock=True)

    def _log_count(self) -> None:
        with self._lock:
            n = self._count
            if n != self._logged:
                self._logged = n
                sys.stderr.write(f"dse search: {n} design(s) scored\n")
                sys.stderr.flush()

    def total(self, n: int | None) -> None:
        if not self.enabled:
            return
        if self._stop is None:
            self._open(n)
        elif self.bar is not None:
            self.bar.total = n
            self.bar.refresh()

    def update(self, n: int) -> None:
        self._count += n
        if self.bar is not None:
            self.bar.update(n)

    def message(self, text: str) -> None:
        """A phase starts: a line on stderr (above the bar, which keeps counting)."""
        if not self.enabled:
            return
        if self._stop is None:
            self._open(None)
        if self.bar is None:
            with self._lock:
                sys.stderr.write(f"dse search: {text}\n")
                sys.stderr.flush()
            return
        self.bar.write(f"dse search: {text}", file=sys.stderr)
        if not text.startswith("note:"):
            self.bar.set_description(text.split(":")[0][:40])

    def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _fmt(x: float, unit: str = "") -> str:
    for div, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {p}{unit}".strip()
    return f"{x:.4g} {unit}".strip()


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    r = result
    b = r["best"]
    hw = b["hardware"]
    obj = "samples/s" if r["objective"] == "throughput" else "samples/s/W"
    lines = [
        f"dse search: {', '.join(r['workloads'])} within {r['area_mm2']:g} mm²"
        + (f" and {r['power_w']:g} W" if r.get("power_w") else "")
        + f", {r['devices']} device(s), searcher {r['searcher']}, seed {r['seed']}",
        "",
        f"best  {b['design']}",
        (f"      {hw['tensor_cores']} tensor cores of {hw['array_rows']}x{hw['array_cols']} "
         f"({hw['dataflow']}, {hw.get('dtype', 'bf16')}), {hw['vector_cores']} vector cores x "
         f"{hw['vector_lanes']} "
         f"lanes, SRAM {_fmt(hw['sram_bytes'], 'B')}, HBM {_fmt(hw['hbm_bytes'], 'B')} at "
         f"{_fmt(hw['hbm_bw_bytes_per_s'], 'B/s')}"),
        (f"      {_fmt(hw['peak_flop_per_s'], 'FLOP/s')} peak, {hw['area_mm2']:.1f} mm², "
         f"{hw['tdp_w']:.1f} W TDP"),
        f"      objective {b['objective_value']:.4g} {obj}",
    ]
    for name, w in b["workloads"].items():
        ev = w["evaluation"]
        if ev is None:
            lines.append(f"      {name}: no plan fits in memory")
            continue
        p = w["plan"]
        lines.append(f"      {name}: {ev['samples_per_s']:.4g} samples/s, step "
                     f"{ev['step_time_s']:.4g} s (tp={p['tp']}"
                     + "".join(f" {k}={p[k]}" for k in ("cp", "ep") if p.get(k, 1) > 1)
                     + f" pp={p['pp']} dp={p['dp']}, "
                     f"micro-batch {p['micro_batch']}, recompute {p['recompute']})")
        comm = ((ev.get("breakdown") or {}).get("comm_s") or {})
        for key, what in (("ep_s", "expert-parallel all-to-all"),
                          ("embedding_s", "embedding all-to-all")):
            if comm.get(key) and ev.get("step_time_s"):
                lines.append(f"      {name}: {what} {_fmt(comm[key], 's')} per step "
                             f"({100 * comm[key] / ev['step_time_s']:.1f}% of the step, over "
                             f"{hw['link_count']} links of "
                             f"{_fmt(hw['link_bw_bytes_per_s'], 'B/s')})")
    if len(r["workloads"]) > 1 and r.get("mean"):
        m = r["mean"]
        strongest = r.get("best_baseline")
        over = (m.get("geomean_over_baselines") or {}).get(strongest) if strongest else None
        lines.append(f"      mean: geomean {m['geomean_samples_per_s']:.4g} samples/s"
                     + (f", {over:.2f}x {strongest} (geomean over workloads)" if over else ""))
    shares = b.get("critical_path_shares") or {}
    if shares:
        lines.append("      critical path: " + ", ".join(
            f"{k} {100 * v:.0f}%" for k, v in shares.items()))
    trade = [t for t in r.get("link_tradeoff") or () if t.get("feasible")]
    # percentages against the mined design's own links, refilled like every cell (the
    # report's reference too)
    ref = next((t["objective_value"] for t in trade if t.get("is_best")),
               b["objective_value"])
    if trade and ref > 0:
        def cell(t: dict) -> str:
            return (f"{t['link_count']} x {_fmt(t['link_bw_bytes_per_s'], 'B/s')} with "
                    f"{t['tensor_cores']} tensor cores {t['objective_value']:.4g} "
                    f"({100 * (t['objective_value'] / ref - 1):+.1f}%)")
        hi = max(trade, key=lambda t: t["objective_value"])
        lo = min(trade, key=lambda t: t["objective_value"])
        lines.append(f"      links vs tensor cores (same budget, report section 'links'): "
                     f"best {cell(hi)}, worst {cell(lo)}")
    lines += ["", "baselines (same budget, same model):"]
    for base in r["baselines"]:
        if base.get("hardware") is None:
            lines.append(f"  {base['name']:<11} infeasible: {base.get('note', '')}")
            continue
        ratio = base.get("best_over_baseline")
        lines.append(f"  {base['name']:<11} {base['objective_value']:.4g} {obj} "
                     f"({base['hardware']['tensor_cores']} x {base['hardware']['array_rows']}x"
                     f"{base['hardware']['array_cols']}, {base['hardware']['area_mm2']:.1f} mm²)"
                     + (f"  best is {ratio:.2f}x" if ratio else ""))
    if r.get("best_baseline") and r.get("margin_over_best_baseline"):
        lines.append(f"  margin over the best baseline ({r['best_baseline']}): "
                     f"{r['margin_over_best_baseline']:.3f}x")
    for w in r.get("warnings") or []:
        lines.append(f"  warning: {w}")
    het = r.get("heterogeneous")
    if het and het.get("chips"):
        lines += ["", "a chip per pipeline stage (--heterogeneous):"]
        for chip in het["chips"]:
            ranks = chip["ranks"]
            where = (f"rank {ranks[0]}" if len(ranks) == 1
                     else f"ranks {ranks[0]}–{ranks[-1]}" if ranks == list(
                         range(ranks[0], ranks[-1] + 1)) else f"ranks {ranks}")
            lines.append(f"  {where:<14} {chip['design']}  {chip['area_mm2']:.1f} mm²")
        gain = het.get("gain_over_common")
        lines.append(f"  {het['objective_value']:.4g} {obj}"
                     + (f", {gain:.3f}x the common chip" if gain else ""))
    elif het and het.get("note"):
        lines += ["", f"--heterogeneous: {het['note']}"]
    lines += ["", f"top {len(r['top_k'])}:"]
    for k, t in enumerate(r["top_k"], 1):
        lines.append(f"  {k}. {t['design']:<44} {t['objective_value']:.4g} {obj}  "
                     f"{t['hardware']['area_mm2']:.1f} mm²  {t['hardware']['tdp_w']:.1f} W")
    lines += ["", f"{r['evaluations']} designs evaluated in {r['wall_s']:.1f} s"
              + (f" ({r['evaluations_resumed']} from the resumed study)"
                 if r.get("evaluations_resumed") else ""),
              f"run directory: {r['out_dir']}"]
    return "\n".join(lines)
