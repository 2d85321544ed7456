"""A real Elasticsearch 8.19 node for tests and benchmarks, built from Maven Central.

The server jar and its netty4 HTTP module are resolved by Maven from tests/es/pom.xml into
var/es/lib (cached; the first resolve downloads ~60 MB into ~/.m2), the small launcher in
tests/es/src is compiled with javac into var/es/classes, and `java hotline.esnode.Launcher`
runs one single-node cluster on 127.0.0.1 on a port of its own. Stopped by its own PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / "tests" / "es"
CACHE = Path(os.environ.get("HOTLINE_ES_CACHE", REPO / "var" / "es"))
START_TIMEOUT_S = 180  # a cold JVM on a busy 2-core CI machine; never asserted as a speed


class EsNodeError(RuntimeError):
    pass


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise EsNodeError(f"{cmd[0]} not found: Java 17 and Maven are needed ({what})") from None
    if done.returncode != 0:
        raise EsNodeError(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")


def build() -> str:
    """The classpath of the node: resolve the jars once, compile the launcher when changed."""
    lib = CACHE / "lib"
    stamp = lib / ".resolved"
    pom = SOURCES / "pom.xml"
    if not stamp.exists() or stamp.stat().st_mtime < pom.stat().st_mtime:
        shutil.rmtree(lib, ignore_errors=True)
        lib.mkdir(parents=True)
        _run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={lib}",
            ],
            "resolving the Elasticsearch jars with Maven",
        )
        stamp.touch()
    jars = sorted(str(p) for p in lib.glob("*.jar"))
    classes = CACHE / "classes"
    sources = sorted((SOURCES / "src").rglob("*.java"))
    newest = max(p.stat().st_mtime for p in [*sources, stamp])
    marker = classes / ".built"
    if not marker.exists() or marker.stat().st_mtime < newest:
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        _run(
            ["javac", "-nowarn", "-d", str(classes), "-cp", ":".join(jars), *map(str, sources)],
            "compiling the Elasticsearch launcher",
        )
        marker.touch()
    return ":".join([str(classes), *jars])


class EsNode:
    """One node: start(), url, stop() (SIGTERM), kill() (SIGKILL); restart keeps its data."""

    def __init__(
        self, port: int, home: Path | None = None, heap_mb: int = 384, fast_start: bool = True
    ) -> None:
        self.port = port
        self.home = home or Path(tempfile.mkdtemp(prefix="hotline-es-"))
        self.heap_mb = heap_mb
        # tests: a quick start beats peak speed (C1 only, serial GC); benchmarks: the defaults
        self.jvm_flags = (
            ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"] if fast_start else ["-XX:+UseG1GC"]
        )
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._owns_home = home is None

    def start(self) -> EsNode:
        classpath = build()
        log = (self.home / "node.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "java",
                f"-Xms{self.heap_mb}m",
                f"-Xmx{self.heap_mb}m",
                *self.jvm_flags,
                "-Dlog4j2.disable.jmx=true",
                "-Djava.awt.headless=true",
                "-cp",
                classpath,
                "hotline.esnode.Launcher",
                str(self.home),
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise EsNodeError(f"Elasticsearch exited ({self.proc.returncode}):\n{self.log()}")
            if (self.home / "ready").exists() and self._yellow():
                return
            time.sleep(0.2)
        raise EsNodeError(f"Elasticsearch not ready in {START_TIMEOUT_S} s:\n{self.log()}")

    def _yellow(self) -> bool:
        url = self.url + "/_cluster/health?wait_for_status=yellow&timeout=1s"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log(self) -> str:
        path = self.home / "node.log"
        return path.read_text("utf-8", "replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._owns_home:
            shutil.rmtree(self.home, ignore_errors=True)


if __name__ == "__main__":  # `python -m tests.esnode PORT`: a node for manual runs and bench
    # blocked, so SIGTERM waits for sigwait (unblocked, it would end this process at once and
    # leave the Java node running)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    node = EsNode(int(sys.argv[1]) if len(sys.argv) > 1 else 9200).start()
    print(f"Elasticsearch on {node.url} (pid {node.proc.pid if node.proc else '?'})", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        node.close()
