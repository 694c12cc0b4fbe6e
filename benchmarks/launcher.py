"""The cluster launcher's whole path on this machine: `ray up`, a study by `ray exec`, `ray rsync-down`, a report,
`ray down`, and a check that nothing of that cluster is left.

    python benchmarks/launcher.py [--runs 5] [--no-write] [--keep]

What docs/cluster.md tells a user to do, with Ray's `local` provider in place of AWS: the launcher reaches the
"head" (this machine) over SSH, copies the project there (file_mounts), runs the set-up and `ray start`
commands, and the study runs there with `--address auto` (search and final stage), exactly as on a cloud head.
Everything lives in one fresh folder under /tmp, removed at the end (`--keep` keeps it):

- an SSH server of its own (`sshd -D`, started here, stopped by its pid) that listens on 127.0.0.1 only, on a
  free port, with a throwaway host key and user key; the launcher reaches that port through `ssh_proxy_command`
  (a relay, since Ray's SSH runner has no port option); the machine's own sshd and ~/.ssh are never used;
- the head's HOME (sshd's `SetEnv`), where `ray up` puts `ray_bootstrap_config.yaml` and the project's copy,
  whose `.venv` links to this interpreter's environment (no installs); the launcher side gets a HOME of its own;
- Ray's temp folder (`RAY_TMPDIR` and `--temp-dir`): the head's session, its address file (what `--address auto`
  reads) and the local provider's state; the GCS, dashboard and agent ports are free ports, so any other Ray
  instance of the machine is left alone.

`ray down` runs `ray stop` on the head, which stops every Ray process of that user on the machine, other clusters
included. The head's shell here finds a `ray` whose `stop` (`python benchmarks/launcher.py stop-cluster`) stops
only the processes of this cluster (those whose command line holds its temp folder, and their children); every
other `ray` command is the real one. After `ray down` no process that came in over this SSH server may be left
(sshd's `SetEnv` puts a marker in all of them); then the SSH server is stopped by its pid. Prints a table of
the steps' times and, unless `--no-write`, rewrites the launcher section of BENCHMARKS.md. tests/test_launcher.py
runs one pass.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "launcher"
MARKER = "RNN_STUDY_LAUNCHER"  # set by the SSH server in every process of the head's sessions
LAUNCHER_MARKER = "RNN_STUDY_LAUNCHER_SIDE"  # in the launcher side's processes (`ray up`, its ssh masters)
STUDY = "launcher"
MOUNTED = ("pyproject.toml", "README.md", "study", "trainables", "search_spaces")  # as cluster.yaml's file_mounts
INFEASIBLE = "infeasible resource requests"
STEP_TIMEOUT_S = 600

RELAY = """\
# ProxyCommand of the launcher's ssh: stdin/stdout <-> a TCP connection to the test's sshd (written by launcher.py)
import os, socket, sys, threading
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while data := os.read(0, 65536):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := conn.recv(65536):
    os.write(1, data)
"""


class LauncherError(RuntimeError):
    """A step of the launcher path failed; the message holds its command and the end of its output."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sshd_path() -> str | None:
    """The SSH server's executable (Debian: openssh-server), or None."""
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if Path(p).is_file()), None)


def missing_tools() -> list[str]:
    """What the launcher path needs on this machine and is not there: sshd, ssh, ssh-keygen, rsync."""
    tools = {"sshd": sshd_path(), **{t: shutil.which(t) for t in ("ssh", "ssh-keygen", "rsync")}}
    return sorted(t for t, path in tools.items() if path is None)


@dataclass(frozen=True)
class Workspace:
    """The folder of one pass and what lives in it; ports and names fixed when it is made."""

    root: Path
    token: str  # the marker's value and the cluster name's suffix
    ssh_port: int
    gcs_port: int
    dashboard_port: int
    agent_port: int
    source: Path  # the project tree whose files are copied to the head
    venv: Path  # the environment the head runs (linked as ~/rnn-sentiment-studies/.venv)

    @property
    def cluster_name(self) -> str:
        return f"rnn-launcher-{self.token[:8]}"

    @property
    def home(self) -> Path:  # the head's HOME
        return self.root / "home"

    @property
    def laptop(self) -> Path:  # the launcher side's HOME, where results are fetched to
        return self.root / "laptop"

    @property
    def ray_temp(self) -> Path:  # RAY_TMPDIR/ray: Ray's default temp folder for both sides
        return self.root / "ray"

    @property
    def config(self) -> Path:
        return self.root / "local.yaml"

    @property
    def remote_project(self) -> Path:
        return self.home / "rnn-sentiment-studies"

    @property
    def fetched(self) -> Path:
        return self.laptop / "results" / STUDY

    def control_dir(self) -> Path:
        """The folder of the launcher's SSH control sockets for this cluster (as Ray's SSHCommandRunner names it)."""
        user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
        return Path("/tmp") / f"ray_ssh_{user}" / hashlib.sha256(self.cluster_name.encode()).hexdigest()[:10]


def cluster_config(ws: Workspace) -> str:
    """The `local` provider config of docs/cluster.md, with this workspace's key, relay, ports and folders."""
    relay = f"{sys.executable} {ws.root / 'relay.py'} 127.0.0.1 {ws.ssh_port}"
    mounts = "".join(f'    "~/rnn-sentiment-studies/{m}": "{ws.source / m}"\n' for m in MOUNTED)
    start = (
        f"ray start --head --port={ws.gcs_port} --dashboard-port={ws.dashboard_port} "
        f"--dashboard-agent-listen-port={ws.agent_port} --num-cpus=2 --num-gpus=0 --include-dashboard=false "
        f"--temp-dir={ws.ray_temp} --autoscaling-config=~/ray_bootstrap_config.yaml --disable-usage-stats"
    )
    return (
        f"# written by benchmarks/launcher.py: `ray up` over SSH to this machine, in {ws.root}\n"
        f"cluster_name: {ws.cluster_name}\n"
        "provider:\n    type: local\n    head_ip: 127.0.0.1\n    worker_ips: []\n"
        f"auth:\n    ssh_user: {getpass.getuser()}\n    ssh_private_key: {ws.root / 'key'}\n"
        f"    ssh_proxy_command: {relay}\n"
        f"file_mounts:\n{mounts}"
        'rsync_exclude:\n    - "__pycache__"\n'
        f"setup_commands:\n    - ln -sfn {ws.venv} ~/rnn-sentiment-studies/.venv\n"
        f"head_start_ray_commands:\n    - {start}\n"
    )


def sshd_config(ws: Workspace) -> str:
    """127.0.0.1 only, keys only, everything in the workspace; the head's sessions get its HOME and temp folder."""
    env = f"HOME={ws.home} RAY_TMPDIR={ws.root} {MARKER}={ws.token} RAY_USAGE_STATS_ENABLED=0"
    return (
        f"ListenAddress 127.0.0.1\nPort {ws.ssh_port}\nHostKey {ws.root / 'host_key'}\nPidFile {ws.root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {ws.root / 'authorized_keys'}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        f"X11Forwarding no\nSetEnv {env}\n"
    )


def head_shell(ws: Workspace) -> tuple[str, str]:
    """The head's ~/.bashrc (its PATH) and the `ray` it finds first, whose `stop` stops this cluster only."""
    bashrc = f"# written by benchmarks/launcher.py\nexport PATH={ws.root / 'bin'}:{ws.venv / 'bin'}:$PATH\n"
    shim = (
        "#!/bin/sh\n"
        "# `ray stop` (what `ray down` runs here) would stop every Ray process of this user on the machine\n"
        f'if [ "$1" = stop ]; then exec {sys.executable} {Path(__file__).resolve()} stop-cluster {ws.ray_temp}; fi\n'
        f'exec {ws.venv / "bin" / "ray"} "$@"\n'
    )
    return bashrc, shim


def make_workspace(source: Path = ROOT, venv: Path | None = None) -> Workspace:
    """A fresh folder with keys, the SSH server's config, the relay, the head's shell and the cluster config."""
    root = Path(tempfile.mkdtemp(prefix="rl_", dir="/tmp"))  # short: Ray's socket paths live under it
    ws = Workspace(
        root=root,
        token=secrets.token_hex(8),
        ssh_port=free_port(),
        gcs_port=free_port(),
        dashboard_port=free_port(),
        agent_port=free_port(),
        source=source.resolve(),
        venv=Path(venv or sys.prefix).resolve(),
    )
    for folder in (ws.home, ws.laptop, ws.ray_temp, root / "bin", root / "tmp"):
        folder.mkdir(parents=True)
    for key in ("host_key", "key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    shutil.copy(root / "key.pub", root / "authorized_keys")
    (root / "sshd_config").write_text(sshd_config(ws))
    (root / "relay.py").write_text(RELAY)
    bashrc, shim = head_shell(ws)
    (ws.home / ".bashrc").write_text(bashrc)
    (root / "bin" / "ray").write_text(shim)
    (root / "bin" / "ray").chmod(0o755)
    ws.config.write_text(cluster_config(ws))
    return ws


# ----------------------------------------------------------------------------------------------- processes
def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return seen


def processes(marker: str | None = None, in_cmdline: str | None = None) -> list[int]:
    """Live processes of this user (not this one or its parents) with `marker` in their environment, or
    `in_cmdline` in their command line."""
    mine, own = os.getuid(), _ancestors(os.getpid())
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        try:
            if pid in own or proc.stat().st_uid != mine or not _alive(pid):
                continue
        except OSError:
            continue
        if (marker and marker.encode() in _environ(pid)) or (in_cmdline and in_cmdline in _cmdline(pid)):
            found.append(pid)
    return found


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    parents = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def cluster_processes(temp: Path) -> list[int]:
    """The processes of the Ray cluster whose temp folder is `temp`: those whose command line names it (GCS,
    raylet, monitor, dashboard, log monitor) and all their descendants, whose titles Ray rewrites
    (`ray::DashboardAgent`, `ray::IDLE`, ...)."""
    found = set(processes(in_cmdline=f"{temp}/"))
    parents, own = _parents(), _ancestors(os.getpid())
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found and pid not in own}
        grew = not children <= found
        found |= children
    return sorted(pid for pid in found if _alive(pid))


def stop(pids: list[int], grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL to what is still alive after `grace_s` (Ray's GCS and raylet outlive a SIGTERM)."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return


def describe(pids: list[int]) -> list[str]:
    return [f"{pid} {_cmdline(pid)[:160]}" for pid in pids]


# ------------------------------------------------------------------------------------------------ one pass
@dataclass
class Pass:
    """One run of the launcher path in a workspace; `steps` holds each step's wall time in seconds."""

    ws: Workspace
    steps: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    sshd: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """The launcher side's environment: its own HOME and temp folders, no RAY_ADDRESS, the venv first."""
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        env.update(
            HOME=str(self.ws.laptop),
            RAY_TMPDIR=str(self.ws.root),
            TMPDIR=str(self.ws.root / "tmp"),
            RAY_USAGE_STATS_ENABLED="0",
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            **{LAUNCHER_MARKER: self.ws.token},
        )
        return env

    def start_sshd(self, timeout_s: float = 20) -> None:
        exe = sshd_path()
        if exe is None:
            raise LauncherError("no SSH server: install openssh-server (and rsync) first")
        if os.geteuid() == 0:  # sshd run by root wants its privilege separation folder
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        cmd = [exe, "-D", "-f", str(self.ws.root / "sshd_config"), "-E", str(self.ws.root / "sshd.log")]
        self.sshd = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.ws.ssh_port), timeout=1):
                return
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                log = (self.ws.root / "sshd.log").read_text(errors="replace")[-2000:]
                raise LauncherError(f"sshd did not start (exit {self.sshd.poll()}):\n{log}")
            time.sleep(0.1)

    def run(self, step: str, args: list[str], timeout_s: float = STEP_TIMEOUT_S) -> str:
        """Run a command of the path as a user would (cwd: the project), timed; its output, or LauncherError."""
        started = time.monotonic()
        try:
            out = subprocess.run(
                args, cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise LauncherError(f"{step}: `{' '.join(args)}` ran past {timeout_s:g} s") from e
        self.steps[step] = time.monotonic() - started
        self.outputs[step] = out.stdout + out.stderr
        if out.returncode != 0:
            raise LauncherError(f"{step}: `{' '.join(args)}` exited {out.returncode}:\n{self.outputs[step][-4000:]}")
        return self.outputs[step]

    def ray(self, step: str, *args: str) -> str:
        return self.run(step, [str(Path(sys.executable).parent / "ray"), *args])

    def up(self) -> None:
        self.ray("ray up", "up", "-y", "--no-config-cache", str(self.ws.config))

    def study(self) -> None:
        cmd = f"cd ~/rnn-sentiment-studies && .venv/bin/python -m study.run --address auto --smoke --name {STUDY}"
        self.ray("ray exec: study", "exec", "--no-config-cache", str(self.ws.config), cmd)

    def fetch(self) -> None:
        self.ws.fetched.parent.mkdir(parents=True, exist_ok=True)  # as docs/cluster.md: into an existing results/
        remote = str(self.ws.remote_project / "results" / STUDY)
        self.ray("ray rsync-down", "rsync-down", str(self.ws.config), remote, f"{self.ws.fetched.parent}/")

    def report(self) -> None:
        self.run("study.report", [sys.executable, "-m", "study.report", str(self.ws.fetched)])

    def down(self) -> None:
        self.ray("ray down", "down", "-y", str(self.ws.config))

    def head_processes(self) -> list[int]:
        """Processes that came in over this pass's SSH server (its marker), or that run in its Ray temp folder."""
        return sorted(set(processes(f"{MARKER}={self.ws.token}", f"{self.ws.ray_temp}/")))

    def wait_until_gone(self, timeout_s: float = 20) -> list[int]:
        """The head's processes still alive after `timeout_s` (the sessions of `ray down` end meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while (left := self.head_processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def close(self, keep: bool = False) -> list[str]:
        """Stop whatever of this pass is still running, by pid; remove its folders. Returns what had to be stopped."""
        left = self.head_processes()
        stop(left)
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait(10)
        launcher = processes(f"{LAUNCHER_MARKER}={self.ws.token}")  # ssh masters kept by ControlPersist, relays
        stop(launcher, grace_s=2)
        shutil.rmtree(self.ws.control_dir(), ignore_errors=True)
        with contextlib.suppress(OSError):  # Ray's folder of the user's control sockets, if nothing else is in it
            self.ws.control_dir().parent.rmdir()
        if not keep:
            shutil.rmtree(self.ws.root, ignore_errors=True)
        return describe(left)


@contextlib.contextmanager
def launcher_pass(source: Path = ROOT, keep: bool = False) -> Iterator[Pass]:
    """A workspace and its SSH server; on leaving, every process of the pass is stopped and the folder removed."""
    one = Pass(make_workspace(source))
    try:
        one.start_sshd()
        yield one
    finally:
        one.close(keep)


@dataclass(frozen=True)
class Outcome:
    """What one whole pass measured."""

    steps: dict[str, float]
    total_s: float
    left_after_down: int  # head processes alive 20 s after `ray down` (then stopped by pid)
    infeasible_warnings: int  # "infeasible resource requests" lines in the study's output
    report: bool  # report.html written from the fetched copy


def run_pass(source: Path = ROOT, keep: bool = False) -> Outcome:
    """The whole path once: up, the study, rsync-down, the report, down, and the check."""
    started = time.monotonic()
    with launcher_pass(source, keep) as one:
        one.up()
        one.study()
        one.fetch()
        one.report()
        one.down()
        left = one.wait_until_gone()
        return Outcome(
            steps=dict(one.steps),
            total_s=time.monotonic() - started,
            left_after_down=len(left),
            infeasible_warnings=one.outputs["ray exec: study"].count(INFEASIBLE),
            report=(one.ws.fetched / "report.html").is_file(),
        )


# ------------------------------------------------------------------------------------------------ the CLI
def stop_cluster(temp: Path) -> int:
    """`ray stop` for one cluster: the processes whose command line holds its temp folder, and their children."""
    pids = cluster_processes(temp)
    stop(pids)
    print(f"Stopped {len(pids)} Ray processes of the cluster in {temp}")
    return 0


def section(outcomes: list[Outcome], notes: str) -> str:
    from sections import machine_line, markdown_table  # benchmarks/ is on sys.path when run as a script

    names = list(outcomes[0].steps)
    header = ("run", *names, "whole pass", "left after `ray down`", "infeasible warnings", "report")
    rows = [
        (str(i), *(f"{o.steps[n]:.1f}" for n in names), f"{o.total_s:.1f}", str(o.left_after_down))
        + (str(o.infeasible_warnings), "yes" if o.report else "no")
        for i, o in enumerate(outcomes, start=1)
    ]
    totals = [o.total_s for o in outcomes]
    left = sum(o.left_after_down > 0 for o in outcomes)
    ending = "every run ended with no process of its cluster left" if not left else f"{left} run(s) left processes"
    lines = [
        "## The cluster launcher on one machine (`python benchmarks/launcher.py`)",
        "",
        "`ray up` of a `local`-provider cluster over SSH to this machine, a `--smoke` study by `ray exec` with "
        "`--address auto` (search and final stage), `ray rsync-down` of its results, `python -m study.report` on "
        "the copy, `ray down`; seconds per step (tests/test_launcher.py runs the same pass).",
        "",
        *markdown_table(header, rows),
        "",
        f"Whole pass: median {statistics.median(totals):.1f} s, {min(totals):.1f}-{max(totals):.1f} s over "
        f"{len(totals)} runs in a row; {ending} after `ray down`.",
        "",
        f"Machine: {machine_line(1)}.",
    ]
    return "\n".join(lines + (["", notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    p.add_argument("--runs", type=int, default=1, help="passes in a row (default 1)")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    p.add_argument("--keep", action="store_true", help="keep each pass's folder under /tmp (for a look at the logs)")
    p.add_argument("--notes", default="", help="a paragraph added below the table")
    stopper = sub.add_parser("stop-cluster", help="stop the Ray processes of one cluster (the head's `ray stop`)")
    stopper.add_argument("temp", type=Path, help="the cluster's Ray temp folder (`--temp-dir`)")
    args = p.parse_args(argv)
    if args.command == "stop-cluster":
        return stop_cluster(args.temp)
    missing = missing_tools()
    if missing:
        print(f"error: the launcher needs {', '.join(missing)}; Debian: apt-get install openssh-server rsync")
        return 2
    outcomes = []
    for i in range(1, args.runs + 1):
        outcome = run_pass(keep=args.keep)
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.steps.items())
        print(f"run {i}: {outcome.total_s:.1f} s ({steps}); left after down: {outcome.left_after_down}", flush=True)
        outcomes.append(outcome)
    text = section(outcomes, args.notes)
    print(text)
    if not args.no_write:
        from sections import BENCHMARKS, write_section

        write_section(SECTION, text, BENCHMARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
