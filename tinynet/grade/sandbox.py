"""Starting, limiting and killing the process that runs a student's code.

The student process:

* is ``python -I`` (no user site-packages, no cwd or script directory on
  sys.path, PYTHON* variables ignored) with a scrubbed environment;
* runs in a fresh private temporary directory holding only a copy of the
  submission and a copy of tinynet without the grader's checks;
* sets its own resource limits before it imports anything: address space,
  CPU seconds, file size, number of processes, no core files;
* is its own session, and is killed as a whole when grading ends: the
  process group, then a sweep of /proc for every descendant (setsid'ed
  ones included -- they stay in the process tree);
* is contained further where the platform allows (``containment()``):

  bwrap     bubblewrap: read-only view of the system, private /tmp, no
            network, the submissions folder, the installed package and the
            teacher's lessons/ hidden, its own PID namespace (it cannot see
            or signal the grader); as root, runs as nobody.
  unshare   util-linux ``unshare``: own PID and mount namespaces -- it cannot
            see or signal any process outside, every process inside dies
            with it, and the same folders are hidden; as root also dropped to
            nobody (so the system is read-only to it).  Network stays.
  nobody    root without either: dropped to the unprivileged user nobody.
  process   none of the above (macOS, Windows, a locked-down Linux):
            process separation, limits and the deadline only.

Nothing here decides points; tinynet.grade.runner talks to the process
through tinynet.grade.wire.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NOBODY = 65534
#: Defaults, overridable per call: bytes of address space, bytes per file.
ADDRESS_SPACE = 3 * 1024 ** 3
FILE_SIZE = 64 * 1024 ** 2
EXTRA_PROCESSES = 32

_BOOT = r"""
import os, sys
try:
    import resource
except ImportError:
    resource = None
cfg = dict(a.split("=", 1) for a in sys.argv[1:])
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
sys.path.insert(0, cfg["lib"])
if resource is not None:
    def limit(which, value):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass
    uid = os.getuid()
    procs = 0
    try:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    procs += os.stat("/proc/" + d).st_uid == uid
                except OSError:
                    pass
    except OSError:
        procs = 0
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_AS, int(cfg["as"]))
    limit(resource.RLIMIT_FSIZE, int(cfg["fsize"]))
    limit(resource.RLIMIT_CPU, int(cfg["cpu"]))
    if hasattr(resource, "RLIMIT_NPROC"):
        limit(resource.RLIMIT_NPROC, procs + int(cfg["nproc"]))
from tinynet.grade._student_main import main
main()
"""


def _works(cmd):
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_CONTAINMENT = {}


def containment(prefer=None):
    """Which containment this machine gives: 'bwrap', 'unshare', 'nobody' or 'process'.

    ``prefer`` (or the environment variable TINYNET_GRADE_SANDBOX) picks a
    weaker one on purpose, e.g. to test each path; a stronger one than the
    machine supports is never claimed.
    """
    prefer = prefer or os.environ.get("TINYNET_GRADE_SANDBOX") or None
    if prefer in _CONTAINMENT:
        return _CONTAINMENT[prefer]
    order = ["bwrap", "unshare", "nobody", "process"]
    start = order.index(prefer) if prefer in order else 0
    result = "process"
    for kind in order[start:]:
        if _available(kind):
            result = kind
            break
    _CONTAINMENT[prefer] = result
    return result


def _available(kind):
    if kind == "process":
        return True
    if os.name != "posix" or not sys.platform.startswith("linux"):
        return False
    root = os.geteuid() == 0
    if kind == "nobody":
        return root and _works([shutil.which("setpriv") or "/bin/false", f"--reuid={NOBODY}",
                                f"--regid={NOBODY}", "--clear-groups", "--", sys.executable,
                                "-I", "-c", "pass"])
    probe = tempfile.mkdtemp(prefix="tinynet-grade-probe-")
    try:
        if kind == "bwrap":
            exe = shutil.which("bwrap")
            # the probe runs this Python, as the student process will: a bwrap that
            # cannot reach the interpreter (e.g. a venv under /tmp) is no use
            return bool(exe) and _works(_bwrap_prefix(exe, probe, [probe + "/x"], root)
                                        + [sys.executable, "-I", "-c", "pass"]) \
                if _mkdir(probe + "/x") else False
        if kind == "unshare":
            exe = shutil.which("unshare")
            return bool(exe) and _works(_unshare_prefix(exe, [probe], root) + ["/bin/true"])
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return False


def _mkdir(path):
    os.makedirs(path, exist_ok=True)
    return True


#: Mount an empty tmpfs over each directory given before "--", then exec the rest.
_HIDE = ('while [ "$1" != "--" ]; do mount -t tmpfs -o size=64k,mode=755 tinynet-hidden "$1" '
         '|| exit 97; shift; done; shift; exec "$@"')


def _unshare_prefix(exe, hidden, root):
    """util-linux unshare: own PID and mount namespaces, `hidden` directories emptied."""
    cmd = [exe]
    if not root:
        cmd += ["--user", "--map-root-user"]
    cmd += ["--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
            "/bin/sh", "-c", _HIDE, "sh", *hidden, "--"]
    if root:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            return ["/bin/false"]
        cmd += [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    return cmd


def _python_dirs():
    """Where this Python and its packages live (the student process runs it too)."""
    dirs = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent,
            Path(os.path.realpath(sys.executable)).parent]
    out = []
    for d in dirs:
        d = d.resolve()
        if d not in out:
            out.append(d)
    return out


def _bwrap_prefix(exe, tmp, hidden, root):
    cmd = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--tmpfs", "/tmp", "--unshare-pid", "--unshare-net", "--unshare-ipc",
           "--unshare-uts", "--new-session", "--die-with-parent"]
    # a private /tmp hides everything under it: give back, read-only, the Python the
    # student process runs when it lives there (a venv made under /tmp, as CI may do)
    for d in _python_dirs():
        if Path("/tmp") in d.parents:
            cmd += ["--ro-bind", str(d), str(d)]
    if root:
        cmd += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    for h in hidden:
        cmd += ["--tmpfs", h]
    return cmd + ["--bind", tmp, tmp, "--chdir", tmp, "--"]


def package_dir():
    import tinynet
    return Path(tinynet.__file__).resolve().parent


#: The only files of tinynet/grade the student process gets: no checks, no registry.
STUDENT_SIDE = ("__init__.py", "student.py", "wire.py", "_student_main.py")


def _copy_package(dst):
    """A private copy of tinynet for the student process, without the grader's checks.

    A copy, not a link: nothing the student does reaches the installed
    package, and ``tinynet.__file__`` does not lead to the teacher's files.
    """
    pkg = package_dir()

    def ignore(folder, names):
        if Path(folder) == pkg / "grade":
            return [n for n in names if n not in STUDENT_SIDE and n != "__pycache__"]
        if Path(folder) == pkg / "grade" / "__pycache__":
            keep = {f"{Path(n).stem}" for n in STUDENT_SIDE}
            return [n for n in names if n.split(".")[0] not in keep]
        return [n for n in names if n.endswith(".ipynb")]
    shutil.copytree(pkg, dst, ignore=ignore)          # copy2 keeps mtimes: .pyc stay valid


def _hidden_dirs(submission, extra, keep):
    """Directories the student must not see: the submissions folder, the teacher's
    lessons/ next to the package, the installed package itself, and ``extra``."""
    pkg = package_dir()
    cands = [Path(submission).resolve().parent, pkg]
    if (pkg.parent / "lessons").is_dir():
        cands.append(pkg.parent / "lessons")
    cands += [Path(e).resolve() for e in extra or ()]
    out = []
    for c in cands:
        # never hide what the student process needs (its own directory, Python itself)
        if not c.is_dir() or any(k == c or c in k.parents for k in keep):
            continue
        if str(c) not in out:
            out.append(str(c))
    return out


class StudentProcess:
    """One sandboxed student process, talked to through its stdin/stdout; ``kill`` ends it.

    submission    -- path of the file to copy into the private directory
    cpu           -- CPU seconds allowed (RLIMIT_CPU)
    address_space -- bytes (RLIMIT_AS);  file_size -- bytes (RLIMIT_FSIZE)
    hide          -- more directories to hide (e.g. where the gradebook goes)
    """

    def __init__(self, submission, cpu=600, address_space=ADDRESS_SPACE,
                 file_size=FILE_SIZE, sandbox=None, hide=()):
        self.kind = containment(sandbox)
        self.tmp = tempfile.mkdtemp(prefix="tinynet-grade-")
        work = os.path.join(self.tmp, "work")
        lib = os.path.join(self.tmp, "lib")
        os.makedirs(work)
        os.makedirs(lib)
        _copy_package(os.path.join(lib, "tinynet"))
        self.copy = os.path.join(work, Path(submission).name)
        shutil.copyfile(submission, self.copy)
        root = os.name == "posix" and os.geteuid() == 0
        if root and self.kind in ("nobody", "unshare", "bwrap"):
            os.chown(work, NOBODY, NOBODY)
            os.chown(self.copy, NOBODY, NOBODY)
        os.chmod(self.tmp, 0o755)
        keep = [Path(self.tmp).resolve()] + _python_dirs()
        hidden = _hidden_dirs(submission, hide, keep) \
            if self.kind in ("bwrap", "unshare") else []
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": work,
               # one BLAS thread per student process: a class is graded in parallel
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if os.name == "nt":
            env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
        args = [f"lib={lib}", f"as={int(address_space)}", f"fsize={int(file_size)}",
                f"cpu={int(cpu)}", f"nproc={EXTRA_PROCESSES}"]
        cmd = [sys.executable, "-I", "-c", _BOOT] + args
        popen = {}
        if self.kind == "bwrap":
            cmd = _bwrap_prefix(shutil.which("bwrap"), self.tmp, hidden, root) + cmd
        elif self.kind == "unshare":
            cmd = _unshare_prefix(shutil.which("unshare"), hidden, root) + cmd
        elif self.kind == "nobody":
            setpriv = shutil.which("setpriv")
            if setpriv:
                cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                       "--"] + cmd
            else:
                popen = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=work, env=env, start_new_session=(os.name == "posix"), **popen)
        self.stderr_tail = b""
        self._err = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err.start()

    def _drain_stderr(self):
        try:
            while True:
                chunk = self.proc.stderr.read(4096)
                if not chunk:
                    return
                self.stderr_tail = (self.stderr_tail + chunk)[-4000:]
        except (OSError, ValueError):
            return

    def kill(self):
        """Kill the student process and every process it started; remove its directory."""
        pid = self.proc.pid
        victims = descendants(pid) if self.proc.poll() is None else set()
        if os.name == "posix":
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        try:
            self.proc.kill()
        except OSError:
            pass
        # Anything still running that descended from it, or that shares its session.
        for _ in range(3):
            victims |= descendants(pid) | session_members(pid)
            victims.discard(os.getpid())
            for v in victims:
                try:
                    os.kill(v, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, OSError):
                    pass
            if not victims:
                break
            time.sleep(0.02)
            victims = set()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def _proc_table():
    """{pid: (ppid, session id)} from /proc (empty where there is no /proc)."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for d in names:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        try:
            table[int(d)] = (int(rest[1]), int(rest[3]))
        except (IndexError, ValueError):
            continue
    return table


def descendants(pid):
    table = _proc_table()
    children = {}
    for p, (pp, _) in table.items():
        children.setdefault(pp, []).append(p)
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def session_members(sid):
    return {p for p, (_, s) in _proc_table().items() if s == sid}
