"""A real Keycloak for the single sign-on tests: the distribution from Maven Central
(org.keycloak:keycloak-quarkus-dist), run in dev mode on 127.0.0.1 with the test realm
(tests/keycloak/realm-hotline.json), stopped by its own PID.

Keycloak's first start is slow: it "builds" (Quarkus augmentation, minutes on a busy machine)
and creates its database schema. Both are cached in the checkout's var/keycloak (ignored by
git, like all of var/; $HOTLINE_KEYCLOAK_CACHE names another place), keyed by the Keycloak
version and the realm file's hash, so a clean clone fetches and builds once:

    keycloak-quarkus-dist-<v>.zip   the artifact, copied by `mvn dependency:copy`
    <v>/dist/keycloak-<v>/          the unpacked distribution, built once (lib/quarkus)
    <v>/seed-<realm hash>/h2/       an H2 database with the schema and the realm imported

Each run gets a home of its own in a temp dir: lib, themes and providers link to the cached
distribution, bin and conf are copied, and data/h2 is a copy of the seed database, so a run
starts on a database no other run touches. Preparing the cache takes a file lock, so parallel
runs wait for one another instead of building twice.

    python -m tests.kcserver    # prepare the cache, start once, print the times, stop
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tests.ports import free_port

VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
REALM_FILE = Path(__file__).resolve().parent / "keycloak" / "realm-hotline.json"
REALM = "hotline"
CLIENT_ID = "hotline"
CLIENT_SECRET = "hotline-test-client-secret"  # the test realm's, in the file above
PASSWORD = "Sso-test-password-1"  # every user of the test realm
MIN_JAVA = 21
# generous bounds for a loaded 2-core CI machine: never asserted as speeds
DOWNLOAD_TIMEOUT_S = 1800
START_TIMEOUT_S = 1500  # the cold start includes the build (about 2–5 minutes seen here)
STOP_TIMEOUT_S = 120


def cache_dir() -> Path:
    default = Path(__file__).resolve().parent.parent / "var" / "keycloak"
    return Path(os.environ.get("HOTLINE_KEYCLOAK_CACHE", default))


class KeycloakError(RuntimeError):
    pass


# -- Java ---------------------------------------------------------------------------------------
def _java_major(home: Path) -> int:
    release = home / "release"
    if not (home / "bin" / "java").exists() or not release.exists():
        return 0
    m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
    return int(m.group(1)) if m else 0


def find_java_home() -> Path:
    """A JDK of at least Java 21 (Keycloak 26 needs it): $HOTLINE_KEYCLOAK_JAVA_HOME, else the
    newest under /usr/lib/jvm (the machine's Temurin, or what install-test-deps.sh added)."""
    wanted = os.environ.get("HOTLINE_KEYCLOAK_JAVA_HOME")
    if wanted:
        if _java_major(Path(wanted)) < MIN_JAVA:
            raise KeycloakError(f"HOTLINE_KEYCLOAK_JAVA_HOME={wanted} is not a Java {MIN_JAVA}+")
        return Path(wanted)
    found = [(_java_major(p), p) for p in Path("/usr/lib/jvm").glob("*") if p.is_dir()]
    found += [(_java_major(p), p) for p in (cache_dir() / "jdk").glob("*") if p.is_dir()]
    usable = sorted(((v, p) for v, p in found if v >= MIN_JAVA), reverse=True)
    if not usable:
        raise KeycloakError(
            f"no Java {MIN_JAVA}+ for Keycloak under /usr/lib/jvm; run "
            "scripts/install-test-deps.sh (it installs one) or set HOTLINE_KEYCLOAK_JAVA_HOME"
        )
    return usable[0][1]


# -- the cache ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _realm_hash() -> str:
    return hashlib.sha256(REALM_FILE.read_bytes()).hexdigest()[:12]


def _download(cache: Path) -> Path:
    """The distribution's zip, copied by Maven from Maven Central (or ~/.m2)."""
    zip_path = cache / f"keycloak-quarkus-dist-{VERSION}.zip"
    if zip_path.exists():
        return zip_path
    cmd = [
        "mvn",
        "-B",
        "-q",
        f"{DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={ARTIFACT}",
        f"-DoutputDirectory={cache}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
    if out.returncode != 0 or not zip_path.exists():
        raise KeycloakError(f"mvn could not fetch {ARTIFACT}:\n{out.stdout}\n{out.stderr}")
    return zip_path


def _unpack(cache: Path) -> Path:
    dist = cache / VERSION / "dist" / f"keycloak-{VERSION}"
    if (dist / "bin" / "kc.sh").exists():
        return dist
    zip_path = _download(cache)
    tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=cache))
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(tmp)
        for script in (tmp / f"keycloak-{VERSION}" / "bin").glob("*.sh"):
            script.chmod(0o755)
        dist.parent.mkdir(parents=True, exist_ok=True)
        (tmp / f"keycloak-{VERSION}").rename(dist)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dist


def _make_home(dist: Path, home: Path, seed: Path | None) -> None:
    """A Keycloak home of this run's own that shares the cached, built distribution."""
    home.mkdir(parents=True)
    for name in ("lib", "themes", "providers"):
        (home / name).symlink_to(dist / name, target_is_directory=True)
    shutil.copytree(dist / "bin", home / "bin")
    shutil.copytree(dist / "conf", home / "conf")
    (home / "data").mkdir()
    if seed is not None:
        shutil.copytree(seed, home / "data" / "h2")


class KeycloakServer:
    """Keycloak in dev mode on free ports of 127.0.0.1, with the test realm."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir
        self.port = 0
        self.management_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.home: Path | None = None
        self._tmp: Path | None = None
        self.prepare_s = 0.0  # download, unpack, build and seed (0 when all were cached)
        self.start_s = 0.0  # this run's start, until the realm's discovery answers

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base}/realms/{REALM}"

    @property
    def log_path(self) -> Path:
        assert self.home is not None
        return self.home / "keycloak.log"

    def output(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-20_000:]
        except (OSError, AssertionError):
            return ""

    # -- start and stop -------------------------------------------------------------------------
    def start(self) -> KeycloakServer:
        cache = cache_dir()
        t0 = time.monotonic()
        with _locked(cache / ".lock"):
            dist = _unpack(cache)
            seed = cache / VERSION / f"seed-{_realm_hash()}" / "h2"
            if not seed.exists():
                self._seed(dist, seed)
        self.prepare_s = time.monotonic() - t0
        self._tmp = Path(tempfile.mkdtemp(prefix="keycloak-", dir=self.base_dir))
        self.home = self._tmp / "home"
        _make_home(dist, self.home, seed)
        t1 = time.monotonic()
        self._launch(import_realm=False)
        self._warm_up()
        self.start_s = time.monotonic() - t1
        return self

    def _warm_up(self) -> None:
        """Render the login page once: the first one compiles Keycloak's templates, which on a
        busy machine takes longer than a browser test waits for a page."""
        query = (
            f"client_id={CLIENT_ID}&response_type=code&scope=openid&state=warm-up"
            "&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fstaff%2Fsso%2Fcallback"
            "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        )
        url = f"{self.issuer}/protocol/openid-connect/auth?{query}"
        with urllib.request.urlopen(url, timeout=START_TIMEOUT_S) as resp:
            if resp.status != 200 or b"kc-form-login" not in resp.read():
                raise KeycloakError(f"Keycloak's login page did not render:\n{self.output()}")

    def _seed(self, dist: Path, seed: Path) -> None:
        """First start on this machine (or a changed realm file): build, create the schema,
        import the realm; stop cleanly and keep the database as the seed of later runs."""
        seed.parent.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="tmp-seed-", dir=seed.parent.parent))
        self.home = tmp / "home"
        try:
            _make_home(dist, self.home, None)
            (self.home / "data" / "import").mkdir()
            shutil.copy(REALM_FILE, self.home / "data" / "import" / "realm-hotline.json")
            self._launch(import_realm=True)
            self.stop(clean=False)
            seed.parent.mkdir(parents=True, exist_ok=True)
            (self.home / "data" / "h2").rename(seed)
            for old in seed.parent.parent.glob("seed-*"):  # seeds of earlier realm files
                if old != seed.parent:
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            self.kill()
            shutil.rmtree(tmp, ignore_errors=True)
            self.home = None

    def _launch(self, *, import_realm: bool) -> None:
        assert self.home is not None
        self.port = free_port(udp=False)
        self.management_port = free_port(udp=False)
        java_home = find_java_home()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
        env.update(
            JAVA_HOME=str(java_home),
            JAVA=str(java_home / "bin" / "java"),
            # C1 only: far less compiling for a short-lived test server on two busy cores
            JAVA_OPTS_APPEND="-XX:TieredStopAtLevel=1",
        )
        args = [
            str(self.home / "bin" / "kc.sh"),
            "start-dev",
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            f"--http-management-port={self.management_port}",
        ]
        if import_realm:
            args.append("--import-realm")
        atexit.register(self.kill)  # a crashed test run leaves no Keycloak behind
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=self.home,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: nothing of it outlives us
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        url = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise KeycloakError(
                    f"Keycloak exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    if resp.status == 200 and json.loads(resp.read()).get("issuer"):
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.5)
        raise KeycloakError(f"Keycloak not ready after {START_TIMEOUT_S} s:\n{self.output()}")

    def stop(self, *, clean: bool = True) -> None:
        """SIGTERM (kc.sh passes it on; Keycloak closes its database), then the files."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc = proc
                self.kill()
        if clean and self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def kill(self) -> None:
        """The process group this object started (kc.sh and its java), by that group's id."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    kc = KeycloakServer()
    try:
        kc.start()
        print(
            json.dumps(
                {
                    "issuer": kc.issuer,
                    "prepare_s": round(kc.prepare_s, 1),
                    "start_s": round(kc.start_s, 1),
                    "java": str(find_java_home()),
                }
            )
        )
    finally:
        kc.stop()
