"""The bubblewrap jail of an isolated local sandbox: an allow-listed file system, no privilege, its own network.

What a command in the jail has (docs/security.md):

- **No privilege.** Its own user namespace, uid/gid 65534 (nobody) inside, every capability dropped, no
  further user namespaces, no new privileges (bubblewrap sets no_new_privs), its own session, PID, IPC,
  UTS and cgroup namespaces; it dies with the harness. On the host its processes are the harness's own
  user holding no capability: no mount, umount or remount, nothing signalled or traced outside.
- **An allow-listed file system**, not the host minus a deny list: the toolchain read-only (/usr and the
  /bin, /sbin, /lib* links or folders, /etc less every entry others may not read: /etc/shadow, private
  keys), the harness's interpreter and the folders on the command's PATH read-only (a virtualenv with its
  base interpreter), what the run's or the agent's configuration names (`readable`) read-only, the
  writable paths read-write, and fresh /dev, /proc, a sized /tmp and /dev/shm. Nothing else of the host:
  no home, no caches or mirrors, no checkout, no /run (no host sockets), no /var. The hidden paths are
  masked where they fall inside something allowed.
- **Limits.** A pids cgroup per launch (limits.py) or, for a non-root harness without one, RLIMIT_NPROC
  inside its user namespace; /tmp and /dev/shm are tmpfs of a fixed size; the rest of the root is read-only.
- **Network.** Always a namespace of the sandbox's own, shared by its launches (a server and its client
  talk over its loopback): only that loopback without network, egress through slirp4netns without the
  host with it (netns.py).

The limits hold per sandbox (one cgroup for all its launches, as one container's). A launch blocks inside
bubblewrap until the harness has put it in the cgroup (`--info-fd`, `--block-fd`), so the command never
runs a moment outside it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from isobench_ray.sandbox import limits
from isobench_ray.sandbox.base import LINGER_S, WATCH_MARK, SandboxUnavailable
from isobench_ray.sandbox.netns import RESOLV, Namespace

NOBODY = "65534"
TOOLCHAIN = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_INFO = ("/sys/devices/system",)  # CPUs and NUMA nodes: what thread pools size themselves by


@lru_cache(maxsize=1)
def etc_masks() -> tuple[tuple[str, bool], ...]:
    """(path, is a folder) of every entry of /etc that others may not read: the secrets (shadow files, private
    keys, database passwords), hidden in the jail's /etc."""
    found: list[tuple[str, bool]] = []
    for top, dirs, files in os.walk("/etc"):
        for name in sorted(dirs):
            path = os.path.join(top, name)
            if not os.path.islink(path) and os.stat(path).st_mode & 0o005 != 0o005:
                found.append((path, True))
        dirs[:] = [d for d in dirs if (os.path.join(top, d), True) not in found and not os.path.islink(os.path.join(top, d))]
        for name in files:
            path = os.path.join(top, name)
            try:
                if not os.path.islink(path) and not os.stat(path).st_mode & 0o004:
                    found.append((path, False))
            except OSError:
                continue
    return tuple(found)


def _toolchain() -> list[str]:
    args: list[str] = []
    for root in TOOLCHAIN:
        if os.path.islink(root):
            args += ["--symlink", os.readlink(root), root]
        elif os.path.isdir(root):
            args += ["--ro-bind", root, root]
    args += ["--ro-bind", "/etc", "/etc"]
    for path, is_dir in etc_masks():
        args += ["--size", "4096", "--tmpfs", path, "--remount-ro", path] if is_dir else ["--ro-bind", "/dev/null", path]
    for path in SYSTEM_INFO:
        args += ["--ro-bind-try", path, path]
    return args


def _in_toolchain(path: Path) -> bool:
    real = path.resolve()
    return any(real == Path(r).resolve() or real.is_relative_to(Path(r).resolve()) for r in (*TOOLCHAIN, "/etc"))


def _venv_roots(folder: Path) -> list[Path]:
    """A virtualenv's bin folder brings the virtualenv and its base interpreter's prefix."""
    cfg = folder.parent / "pyvenv.cfg"
    if folder.name != "bin" or not cfg.is_file():
        return []
    roots = [folder.parent]
    for line in cfg.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            roots.append(Path(value.strip()).parent)
    return roots


def install_root(program: str | Path) -> list[Path]:
    """What a program needs to run, read-only: a name is looked up on PATH; a program in a virtualenv brings
    the virtualenv (and its base interpreter), one under node_modules the npm prefix that holds it, any
    other its own folder (and its link target's)."""
    import shutil

    found = shutil.which(str(program)) if os.sep not in str(program) else str(program)
    if not found:
        return []
    path = Path(found).absolute()
    for candidate in dict.fromkeys([path, path.resolve()]):
        for parent in candidate.parents:
            if (parent / "pyvenv.cfg").is_file():
                return _venv_roots(parent / "bin")
            if parent.name == "node_modules":
                return [parent.parent]
    return list(dict.fromkeys([path.parent, path.resolve().parent]))


@dataclass
class Jail:
    """How one isolated sandbox wraps its commands in bubblewrap; holds the sandbox's network namespace and
    its pids cgroup (made at the first launch, released by `close()`)."""

    bwrap: str
    tag: str
    writable: Sequence[Path] = ()
    readable: Sequence[str | Path] = ()  # what the run's or the agent's configuration names: read-only
    hidden: Sequence[Path] = ()  # masked wherever they fall inside an allowed path
    network: bool = False
    host_ports: Sequence[int] = ()  # the host's loopback ports the agent's configuration names (its endpoint)
    tmp_bytes: int = 2 << 30
    pids_limit: int = 4096
    _home: Path = field(default_factory=Path.home)
    _ns: Namespace | None = None
    _cgroup: limits.PidsCgroup | None = None

    def check(self) -> None:
        """SandboxUnavailable, with what to do, when a promise cannot be kept here."""
        if not limits.can_limit():
            raise SandboxUnavailable("bubblewrap sandboxes need a pids cgroup to limit their processes: this root "
                                     "process can make none (mount the pids controller, cgroup v1 or v2)")
        if self.network:
            from isobench_ray.sandbox.netns import missing

            if missing():
                raise SandboxUnavailable(missing())

    def _readable(self, path_env: str) -> list[Path]:
        """The read-only folders beyond the toolchain: interpreters, the PATH's folders, the configured ones."""
        found: list[Path] = []
        prefixes = dict.fromkeys(map(Path, (sys.prefix, sys.base_prefix, sys.exec_prefix)))
        on_path = [Path(p) for p in path_env.split(os.pathsep) if p and os.path.isabs(p) and os.path.isdir(p)]
        named = [r for p in self.readable for r in (install_root(p) if not os.path.isdir(p) else [Path(p)])]
        for path in [*prefixes, *on_path, *(r for p in on_path for r in _venv_roots(p)), *named]:
            if not path.exists() or _in_toolchain(path):
                continue
            if path == Path("/") or path == self._home or any(h == path or h.is_relative_to(path) for h in self.hidden):
                continue  # never a folder that holds the user's home or what is hidden
            found.append(path)
        return list(dict.fromkeys(found))

    def argv(self, cwd: Path, path_env: str) -> list[str]:
        ns = ["--unshare-user", "--uid", NOBODY, "--gid", NOBODY, "--disable-userns", "--unshare-pid", "--unshare-ipc",
              "--unshare-uts", "--hostname", "sandbox", "--unshare-cgroup-try", "--cap-drop", "ALL",
              "--die-with-parent", "--new-session"]  # the network namespace is the sandbox's (enter())
        size = str(self.tmp_bytes)
        fs = [*_toolchain(), "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--proc", "/proc",
              "--size", size, "--tmpfs", "/tmp"]
        mounts: list[tuple[Path, list[str]]] = [(p, ["--ro-bind", str(p), str(p)]) for p in self._readable(path_env)]
        bound = [p for p, _ in mounts] + [Path(p) for p in self.writable]
        mounts += [(Path(p), ["--size", "4096", "--tmpfs", str(p)]) for p in self.hidden
                   if any(Path(p) != b and Path(p).is_relative_to(b) for b in bound)]
        mounts += [(Path(p), ["--bind", str(p), str(p)]) for p in dict.fromkeys([cwd, *self.writable])]
        for _, args in sorted(mounts, key=lambda m: len(m[0].parts)):  # a folder before what is mounted inside it
            fs += args
        return [self.bwrap, *ns, *fs, "--remount-ro", "/", "--chdir", str(cwd)]

    def _setup(self, env: dict[str, str]) -> None:
        """The sandbox's network namespace and pids cgroup, at its first launch."""
        if self._ns is None:
            self._ns = Namespace(self.bwrap, self.network, {"PATH": os.environ.get("PATH", os.defpath)}, list(self.host_ports))
        if self._cgroup is None:
            self._cgroup = limits.PidsCgroup.make(self.tag, self.pids_limit)

    def launch(self, command: list[str], cwd: Path, env: dict[str, str], log, pinned, watch: str = "") -> "Launch":
        """Start `command` in the jail (`pinned`: wraps an argv to run on the launch's cores), held until it is
        in the sandbox's cgroup. `watch` (a launch's marker): when the command ends, what it left running in
        the jail is named in the log (base.read_watch) before the jail's end kills it."""
        self._setup(env)
        if watch:
            command = [sys.executable, "-I", "-c", _WATCH, f"{WATCH_MARK} {watch}", str(LINGER_S), *command]
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        fds = [info_w, block_r]
        argv = self.argv(cwd, env.get("PATH", os.defpath))
        if self.network:  # slirp4netns's DNS, whatever the host's resolver (127.0.0.53 is the sandbox's own)
            resolv_r, resolv_w = os.pipe()
            os.write(resolv_w, RESOLV)
            os.close(resolv_w)
            fds.append(resolv_r)
            argv += ["--ro-bind-data", str(resolv_r), os.path.realpath("/etc/resolv.conf")]
        if self._cgroup is None:  # a non-root harness: RLIMIT_NPROC, counted in the jail's own user namespace
            command = [sys.executable, "-I", "-c", _NPROC, str(self.pids_limit), *command]
        argv = pinned([*self._ns.enter(), *argv, "--info-fd", str(info_w), "--block-fd", str(block_r), "--", *command])
        try:
            popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        return Launch.hold(popen, info_r, block_w, self._cgroup)

    def close(self) -> None:
        """The namespace and the cgroup go (once the sandbox's processes are gone)."""
        if self._ns is not None:
            self._ns.close()
            self._ns = None
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None


# The jail's first command when a finished command's leftovers are wanted: the jail's PID namespace ends with
# it (and kills them), so what is left is looked for here, in the jail's own /proc, before it goes. It also
# says the CPU time the command's tree used, which no longer reaches the harness through bubblewrap.
_WATCH = r"""
import os, resource, subprocess, sys, time
mark, linger, me = sys.argv[1], float(sys.argv[2]), os.getpid()
try:
    rc = subprocess.call(sys.argv[3:])
except OSError as exc:
    print(exc, file=sys.stderr, flush=True)
    rc = 127
used = resource.getrusage(resource.RUSAGE_CHILDREN)
def others():
    # every process of the jail but its init, this watcher and zombies, by its state: a process in the middle
    # of an exec can show an empty command line for a moment, and must not be missed for that
    found = []
    for pid in os.listdir('/proc'):
        if pid.isdigit() and int(pid) not in (1, me):
            try:
                with open(f'/proc/{pid}/stat', 'rb') as fh:
                    stat = fh.read().decode(errors='replace')
                with open(f'/proc/{pid}/cmdline', 'rb') as fh:
                    cmd = fh.read().replace(b'\0', b' ').decode(errors='replace').strip()
            except OSError:
                continue
            comm, _, rest = stat.partition('(')[2].rpartition(')')
            if rest.split()[:1] not in (['Z'], ['X']):
                found.append(f'{pid} {(cmd or "[" + comm + "]")[:200]}')
    return found
end, left = time.monotonic() + linger, others()
while left and time.monotonic() < end:
    time.sleep(0.1)
    left = others()
sys.stdout.flush()
print(mark, "cpu", used.ru_utime + used.ru_stime, flush=True)
for line in left:
    print(mark, "left", line, flush=True)
sys.exit(rc if rc >= 0 else 128 - rc)
"""

# RLIMIT_NPROC, then the command (the harness's interpreter, read-only in the jail)
_NPROC = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NPROC, (n, n)); "
          "os.execvp(sys.argv[2], sys.argv[2:])")


@dataclass
class Launch:
    """A started jail's process, let go once it is in the sandbox's cgroup."""

    popen: subprocess.Popen

    @classmethod
    def hold(cls, popen: subprocess.Popen, info_r: int, block_w: int, cgroup: limits.PidsCgroup | None) -> "Launch":
        try:
            child = _child_pid(info_r)
            if child is not None:  # None: bubblewrap itself failed (its log says why)
                if cgroup is not None:
                    cgroup.add([child])
                    cgroup.add(_descendants(child))  # forked before it joined: the rest follow it
                os.write(block_w, b"1")
        except BaseException:
            popen.kill()
            popen.wait()
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        return cls(popen)


def _child_pid(info_r: int, timeout_s: float = 30.0) -> int | None:
    data = b""
    while select.select([info_r], [], [], timeout_s)[0]:
        chunk = os.read(info_r, 4096)
        if not chunk:
            return None
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
    return None


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
