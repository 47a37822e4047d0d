"""A private podman for tests: its own store, configuration and API
socket in a temporary directory, removed afterwards.

    from podmanlab import PodmanLab

    with PodmanLab() as lab:
        image = lab.build_image()            # contrib/image/build.sh
        cid = lab.podman("run", "-d", image).stdout.strip()
        sock = lab.service()                 # Docker-compatible API
        ...                                  # DOCKER_HOST=lab.docker_host

Everything podman does goes through the environment in ``lab.env``
(CONTAINERS_CONF and CONTAINERS_STORAGE_CONF name files in the lab's
directory), so the containers, images, pods and networks a test makes
live in a store nobody else uses, and cleaning up removes exactly those:
``podman pod rm -f -a`` and ``podman rm -f -a -t 0`` in the private store,
the API service killed by its PID, whatever is still mounted under the
directory unmounted, then the directory removed. Nothing is pulled from a
registry: images are built from the tree (build_image) or from Debian's
static busybox (busybox_image).

The settings are those ../shared/CONTAINERS.md found necessary on a
Debian 12 machine without systemd as PID 1: nofile ulimits no higher
than the hard limit (podman's default 1048576 makes runc fail), runc,
cgroupfs and file events, and tmp_dir and network_config_dir inside the
lab. If podman cannot run at all, entering the lab raises AssertionError
saying why and what to install: the tests fail, never skip.

Several labs may run at once (other tests, other users of podman on the
machine): ports are picked free at random (free_port), and the netavark
state outside the lab (/run/containers/networks, iptables chains) is
shared and left alone.
"""

import http.client
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
SLOW = float(os.environ.get("TARDY_TEST_SLOW", "1"))
INSTALL = "apt-get install -y podman runc catatonit busybox-static"
BUSYBOX = "/bin/busybox"        # Debian's busybox-static


class PodmanLab:
    """A private podman store and configuration; see the module's doc.

    Attributes: dir (the lab's directory), env (the environment every
    podman command gets), docker_host (unix://DIR/api.sock, once service()
    has started it).
    """

    def __init__(self, prefix="tardypodman."):
        self.dir = None
        self.env = None
        self.docker_host = None
        self.service_proc = None
        self.prefix = prefix

    # --- set-up and tear-down --------------------------------------------

    def __enter__(self):
        if shutil.which("podman") is None:
            raise AssertionError("podman is not installed: " + INSTALL)
        # A short path: the API socket's must fit a sockaddr_un.
        self.dir = tempfile.mkdtemp(prefix=self.prefix,
                                    dir="/tmp" if os.path.isdir("/tmp")
                                    else None)
        try:
            self._configure()
            self._check()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _path(self, *names):
        return os.path.join(self.dir, *names)

    def _configure(self):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY:
            hard = 1048576
        for d in ("tmp", "networks", "graph", "run"):
            os.mkdir(self._path(d), 0o700)
        with open(self._path("containers.conf"), "w") as f:
            f.write('[containers]\n'
                    'default_ulimits = ["nofile=%d:%d", '
                    '"nproc=32768:32768"]\n'
                    '[engine]\n'
                    'runtime = "runc"\n'
                    'cgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n'
                    'tmp_dir = "%s"\n'
                    '[network]\n'
                    'network_config_dir = "%s"\n' %
                    (hard, hard, self._path("tmp"), self._path("networks")))
        with open(self._path("storage.conf"), "w") as f:
            f.write('[storage]\n'
                    'driver = "overlay"\n'
                    'graphroot = "%s"\n'
                    'runroot = "%s"\n' %
                    (self._path("graph"), self._path("run")))
        self.env = dict(os.environ,
                        CONTAINERS_CONF=self._path("containers.conf"),
                        CONTAINERS_STORAGE_CONF=self._path("storage.conf"))
        # Not the caller's API socket, whatever it has set.
        self.env.pop("CONTAINER_HOST", None)
        self.env.pop("DOCKER_HOST", None)

    def _check(self):
        """Whether podman runs at all here, or AssertionError why."""
        r = self.podman("info", "--format",
                        "{{.Host.OCIRuntime.Name}} {{.Store.GraphRoot}}",
                        check=False)
        if r.returncode != 0:
            raise AssertionError("podman cannot run (podman info exited "
                                 "%d): %s\n(%s)" % (r.returncode,
                                                    r.stderr.strip(),
                                                    INSTALL))
        runtime, graph = (r.stdout.split() + ["", ""])[:2]
        if graph != self._path("graph"):
            raise AssertionError("podman ignores CONTAINERS_STORAGE_CONF: "
                                 "graph root %r" % graph)
        if runtime != "runc":
            raise AssertionError("podman's runtime is %r, not runc: "
                                 "%s" % (runtime, INSTALL))

    def close(self):
        """Remove every pod and container of the lab's store, stop the API
        service, unmount what is left and remove the directory. Safe to
        call twice; errors are ignored so that the rest still happens."""
        if self.dir is None:
            return
        if self.env is not None:
            for args in (("pod", "rm", "-f", "-a"),
                         ("rm", "-f", "-a", "-t", "0")):
                try:
                    self.podman(*args, check=False, timeout=60)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        self.stop_service()
        self._unmount_all()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def _unmount_all(self):
        """Unmount whatever is still mounted under the lab's directory
        (overlay's private bind of its home, a container's rootfs, shm),
        deepest first."""
        prefix = os.path.realpath(self.dir) + "/"
        for _ in range(3):
            mounts = []
            try:
                with open("/proc/self/mountinfo") as f:
                    for line in f:
                        point = line.split()[4].replace("\\040", " ")
                        if (point + "/").startswith(prefix):
                            mounts.append(point)
            except OSError:
                return
            if not mounts:
                return
            for point in sorted(set(mounts), key=len, reverse=True):
                subprocess.run(["umount", point], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        for point in sorted(set(mounts), key=len, reverse=True):
            subprocess.run(["umount", "-l", point],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    # --- running podman --------------------------------------------------

    def podman(self, *args, check=True, timeout=60, input=None):
        """Run `podman ARGS` in the lab; returns the CompletedProcess (text
        stdout and stderr). With check, a non-zero exit raises
        AssertionError with podman's stderr."""
        r = subprocess.run(["podman"] + [str(a) for a in args],
                           env=self.env, input=input, capture_output=True,
                           text=True, timeout=timeout * SLOW,
                           stdin=None if input is not None
                           else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError("podman %s exited %d: %s" %
                                 (" ".join(map(str, args)), r.returncode,
                                  (r.stderr.strip() or r.stdout.strip())
                                  [-2000:]))
        return r

    def inspect(self, name, fmt):
        """`podman inspect --format FMT NAME`'s output, stripped."""
        return self.podman("inspect", "--format", fmt, name).stdout.strip()

    def run(self, *argv, check=True, timeout=120, env=None):
        """Any other command, e.g. build.sh, with the lab's environment
        plus env."""
        r = subprocess.run([str(a) for a in argv],
                           env=dict(self.env, **(env or {})),
                           capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout * SLOW)
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d: %s" %
                                 (" ".join(map(str, argv)), r.returncode,
                                  (r.stderr + r.stdout)[-3000:]))
        return r

    # --- images ----------------------------------------------------------

    def build_image(self, build_dir=None):
        """Build tardy's image with contrib/image/build.sh into the lab's
        store; returns its name, localhost/tardy:VERSION. build_dir is the
        staging directory (default $IMAGE_BUILD_DIR, else build/image under
        the current directory, which make check runs in), shared between
        builds so that objects are compiled once."""
        build_dir = build_dir or os.environ.get("IMAGE_BUILD_DIR") or \
            os.path.join(os.getcwd(), "build", "image")
        r = self.run("sh", os.path.join(TOP_SRCDIR, "contrib", "image",
                                        "build.sh"), timeout=300,
                     env=dict(IMAGE_BUILD_DIR=build_dir, IMAGE_NAME="tardy",
                              CONTAINER_ENGINE="podman"))
        last = r.stdout.strip().splitlines()[-1]     # NAME:VERSION ID SIZE
        self.build_output = r.stdout
        return "localhost/" + last.split()[0]

    def busybox_image(self, name="localhost/tardy-busybox:latest"):
        """An image FROM scratch holding Debian's static busybox with every
        applet linked in /bin (made here: no RUN, no registry); returns
        its name."""
        if not os.path.exists(BUSYBOX):
            raise AssertionError("%s missing: apt-get install "
                                 "busybox-static" % BUSYBOX)
        ctx = self._path("busybox-context")
        os.makedirs(os.path.join(ctx, "rootfs", "bin"))
        os.makedirs(os.path.join(ctx, "rootfs", "tmp"))
        os.chmod(os.path.join(ctx, "rootfs", "tmp"), 0o1777)
        shutil.copy(BUSYBOX, os.path.join(ctx, "rootfs", "bin", "busybox"))
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True,
                                 text=True, check=True).stdout.split()
        for a in applets:
            if a != "busybox" and "/" not in a:
                os.symlink("busybox", os.path.join(ctx, "rootfs", "bin", a))
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM scratch\nCOPY rootfs/ /\n"
                    'ENV PATH=/bin\nCMD ["/bin/sh"]\n')
        self.podman("build", "--quiet", "-t", name, ctx, timeout=120)
        shutil.rmtree(ctx, ignore_errors=True)
        return name

    # --- the Docker-compatible API ---------------------------------------

    def service(self, timeout=10):
        """Start `podman system service --time=0` on DIR/api.sock and wait
        until it answers /_ping; returns the socket's path (docker_host is
        its unix:// URL, for DOCKER_HOST). Its log is DIR/service.log."""
        if self.service_proc is not None:
            return self._path("api.sock")
        sock = self._path("api.sock")
        self.service_log = open(self._path("service.log"), "wb")
        self.service_proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", "unix://" + sock],
            env=self.env, stdin=subprocess.DEVNULL, stdout=self.service_log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.service_proc.poll() is not None:
                raise AssertionError("podman system service exited %d: %s" %
                                     (self.service_proc.returncode,
                                      self.service_text()))
            if _ping(sock):
                self.docker_host = "unix://" + sock
                return sock
            time.sleep(0.02)
        raise AssertionError("podman system service not answering after "
                             "%d s: %s" % (timeout, self.service_text()))

    def service_text(self):
        try:
            with open(self._path("service.log"), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop_service(self):
        """Stop the API service, by its PID: SIGTERM, then SIGKILL."""
        p, self.service_proc = self.service_proc, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.service_log.close()
        self.docker_host = None


def _ping(sock):
    """Whether a Docker-compatible API answers GET /_ping on sock."""

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(2)
            self.sock.connect(sock)

    c = Conn("localhost", timeout=2)
    try:
        c.request("GET", "/_ping")
        return c.getresponse().status == 200
    except OSError:
        return False
    finally:
        c.close()


def free_port():
    """A loopback TCP port free now, for a container port to publish at
    127.0.0.1 (podman binds it itself, so it cannot be port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()
