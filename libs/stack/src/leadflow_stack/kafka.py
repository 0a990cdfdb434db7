"""A single-node Apache Kafka broker (KRaft, combined broker+controller) run from Maven jars.

The jars are resolved by ``deploy/kafka/pom.xml`` into the local Maven repository; only the
computed classpath is cached (``deploy/kafka/libs/classpath.txt``, gitignored).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from leadflow_stack import procs
from leadflow_stack.errors import StackError
from leadflow_stack.paths import kafka_deploy_dir
from leadflow_stack.tls import ServerTls, loopback_server_tls

log = logging.getLogger(__name__)

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

# The one user of the optional SASL listener (test stacks only; see KafkaBroker), known to SCRAM-SHA-256,
# SCRAM-SHA-512 and PLAIN alike.
SASL_USERNAME = "leadflow"
SASL_PASSWORD = "leadflow-sasl-secret"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_MECHANISMS = (*SCRAM_MECHANISMS, "PLAIN")
# Written beside the data dir once the SCRAM credentials are in the metadata log (they can only be
# added at format time here), so a data dir formatted without them is not mistaken for one that has them.
SCRAM_MARKER = "scram-credentials"

JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise StackError("java not found: install a Java 17+ runtime (e.g. apt-get install default-jre-headless)")
    return found


def resolve_classpath(deploy_dir: Path | None = None) -> str:
    """The broker's runtime classpath, resolving it with Maven when the cache is stale.

    ``LEADFLOW_KAFKA_CLASSPATH`` overrides everything (for machines with a Kafka install).
    The cache is rebuilt when the pom is newer than it or a listed jar has disappeared.
    """
    override = os.environ.get("LEADFLOW_KAFKA_CLASSPATH")
    if override:
        return override
    deploy_dir = deploy_dir or kafka_deploy_dir()
    pom = deploy_dir / "pom.xml"
    cache = deploy_dir / "libs" / "classpath.txt"
    if cache.exists() and cache.stat().st_mtime >= pom.stat().st_mtime:
        classpath = cache.read_text().strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn not found: install Maven (apt-get install maven) to resolve Kafka")
    cache.parent.mkdir(parents=True, exist_ok=True)
    # A unique temp name and an atomic rename: concurrent test sessions may resolve at once.
    tmp = cache.with_name(f"classpath.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    log.info("resolving Kafka jars with Maven (%s)", pom)
    started = time.monotonic()
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            f"{MAVEN_DEPENDENCY_PLUGIN}:build-classpath",
            f"-Dmdep.outputFile={tmp}",
            "-Dmdep.includeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise StackError(
            f"Maven could not resolve Kafka from {pom} (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    tmp.replace(cache)
    log.info("Kafka classpath resolved in %.1fs", time.monotonic() - started)
    return cache.read_text().strip()


def new_cluster_id() -> str:
    """A random KRaft cluster id, as ``kafka-storage random-uuid`` makes them: never starting with '-',
    which the storage tool would read as an option (one id in 64 did)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker:
    """One broker process, its config and data under ``base_dir``.

    ``base_dir`` holds ``server.properties``, ``cluster.id``, ``kafka.pid`` and ``data/``.
    Ports and the data directory survive ``stop()``/``start()``, so a restarted broker keeps
    its topics and committed offsets.

    With ``sasl_port`` the broker also listens there as SASL_PLAINTEXT (SCRAM-SHA-256, SCRAM-SHA-512
    and PLAIN, one user: ``SASL_USERNAME``), and with ``sasl_ssl_port`` as SASL_SSL (the same, over
    TLS with a certificate of a CA made for it: ``tls.ca_file``), for tests of the services' security
    settings; the PLAINTEXT listener stays for everything else. KRaft takes SCRAM credentials at
    storage format time, so the SASL listeners need a data dir formatted with them.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int,
        controller_port: int,
        log_path: Path,
        marker_root: Path,
        die_with_parent: bool = False,
        extra_config: Mapping[str, str] | None = None,
        sasl_port: int | None = None,
        sasl_ssl_port: int | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self.controller_port = controller_port
        self.log_path = log_path
        self.marker_root = marker_root
        self.die_with_parent = die_with_parent
        self.extra_config = dict(extra_config or {})
        self.sasl_port = sasl_port
        self.sasl_ssl_port = sasl_ssl_port
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.sasl_port is None:
            raise StackError("this broker has no SASL listener")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        if self.sasl_ssl_port is None:
            raise StackError("this broker has no SASL_SSL listener")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def uses_sasl(self) -> bool:
        return self.sasl_port is not None or self.sasl_ssl_port is not None

    @property
    def tls(self) -> ServerTls:
        """The SASL_SSL listener's CA and keystore (made on first use, kept with the broker's files)."""
        return loopback_server_tls(self.base_dir / "tls")

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "server.properties"

    @property
    def pidfile(self) -> Path:
        return self.base_dir / "kafka.pid"

    def config(self) -> dict[str, str]:
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            # Topics are created explicitly; a typo in a topic name must fail, not invent a topic.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            # The 3 s default delays every first consumer-group join, in tests and in make demo.
            "group.initial.rebalance.delay.ms": "0",
            # Lets tests use short consumer session timeouts, so a killed consumer is noticed fast.
            "group.min.session.timeout.ms": "1000",
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.uses_sasl:
            config.update(self._sasl_config())
        config.update(self.extra_config)
        return config

    def _sasl_config(self) -> dict[str, str]:
        listeners = {"SASL_PLAINTEXT": self.sasl_port, "SASL_SSL": self.sasl_ssl_port}
        sasl = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items() if port is not None)
        config = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},{sasl},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},{sasl}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
                                              "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        }
        for name, port in listeners.items():
            if port is None:
                continue
            prefix = f"listener.name.{name.lower()}"
            # SCRAM verifies against the credentials in the metadata log; PLAIN against its JAAS user list.
            config[f"{prefix}.plain.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{SASL_USERNAME}="{SASL_PASSWORD}";'
            )
            for mechanism in SCRAM_MECHANISMS:
                config[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        if self.sasl_ssl_port is not None:
            tls = self.tls
            config.update({
                "listener.name.sasl_ssl.ssl.keystore.type": "PKCS12",
                "listener.name.sasl_ssl.ssl.keystore.location": str(tls.keystore),
                "listener.name.sasl_ssl.ssl.keystore.password": tls.password,
                "listener.name.sasl_ssl.ssl.key.password": tls.password,
            })
        return config

    def _write_config(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{key}={value}\n" for key, value in self.config().items())
        self.config_path.write_text("# written by leadflow_stack; edits are overwritten on start\n" + body)

    def _java_cmd(self, classpath: str, main: str, *args: str) -> list[str]:
        log4j = kafka_deploy_dir() / "log4j.properties"
        return [_java(), *JVM_OPTS, f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath, main, *args]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[procs.MARKER_ENV] = str(self.marker_root.resolve())
        # The launcher scripts honour these; make sure none leak in from the user's shell.
        for key in ("KAFKA_OPTS", "KAFKA_HEAP_OPTS", "JAVA_TOOL_OPTIONS"):
            env.pop(key, None)
        return env

    def format(self, classpath: str) -> None:
        """Write the broker's config, and format the KRaft metadata log once (a formatted data dir is
        left as it is)."""
        self._write_config()
        marker = self.base_dir / SCRAM_MARKER
        if (self.data_dir / "meta.properties").exists():
            if self.uses_sasl and not marker.exists():
                raise StackError(
                    f"{self.data_dir} was formatted without SCRAM credentials, which the SASL listener needs: "
                    "start this broker without its SASL listeners, or remove its data dir"
                )
            return
        id_file = self.base_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        cmd = self._java_cmd(
            classpath,
            STORAGE_TOOL,
            "format",
            # One argument, so an id starting with '-' (written by an older stack) is not an option.
            f"--cluster-id={id_file.read_text().strip()}",
            "-c",
            str(self.config_path),
            "--ignore-formatted",
        )
        if self.uses_sasl:
            for mechanism in SCRAM_MECHANISMS:
                cmd.append(f"--add-scram={mechanism}=[name={SASL_USERNAME},password={SASL_PASSWORD}]")
        result = subprocess.run(cmd, capture_output=True, text=True, env=self._env(), check=False)
        if result.returncode != 0:
            raise StackError(f"kafka storage format failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
        if self.uses_sasl:
            marker.write_text(",".join(SCRAM_MECHANISMS))

    def running(self) -> procs.PidRecord | None:
        record = procs.read_pidfile(self.pidfile)
        if record is None:
            return None
        proc = record.process()
        if proc is None:
            return None
        try:
            if KAFKA_MAIN not in proc.cmdline():
                return None
        except psutil.Error:
            return None
        return record

    async def start(self, *, timeout: float = 90.0) -> bool:
        """Start the broker unless it already runs; wait until it serves metadata.

        Returns True when a new process was started, False when a running one was kept.
        """
        if self.running() is not None:
            log.info("Kafka already running on %s", self.bootstrap_servers)
            await self.wait_ready(timeout=timeout)
            return False
        classpath = await asyncio.to_thread(resolve_classpath)
        await asyncio.to_thread(self.format, classpath)
        self._spawn(classpath)
        try:
            await self.wait_ready(timeout=timeout)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return True

    def _spawn(self, classpath: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n===== starting Kafka on {self.bootstrap_servers} at {time.ctime()} =====\n".encode())
            log_file.flush()
            self._popen = subprocess.Popen(
                self._java_cmd(classpath, KAFKA_MAIN, str(self.config_path)),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.base_dir,
                start_new_session=True,
                preexec_fn=procs.die_with_parent if self.die_with_parent else None,
            )
        procs.write_pidfile(self.pidfile, procs.PidRecord.of(self._popen.pid))

    async def wait_ready(self, *, timeout: float = 90.0) -> None:
        """Poll the broker with an admin client until it answers a metadata request."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            # Our own child is asked directly: the pid file's check once reported a broker that was
            # still starting as gone, and the clean-up then killed it.
            own_child_running = self._popen is not None and self._popen.poll() is None
            if not own_child_running and self.running() is None:
                raise StackError(
                    f"Kafka process exited during startup; last log lines ({self.log_path}):\n"
                    f"{procs.tail(self.log_path)}"
                )
            if procs.port_is_open(self.port):
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000)
                try:
                    await admin.start()
                    cluster = await admin.describe_cluster()
                    if cluster.get("brokers"):
                        return
                except (TimeoutError, KafkaError, OSError) as exc:
                    last_error = exc
                finally:
                    await admin.close()
            await asyncio.sleep(0.2)
        raise StackError(
            f"Kafka on {self.bootstrap_servers} not ready after {timeout:.0f}s (last error: {last_error!r}); "
            f"last log lines ({self.log_path}):\n{procs.tail(self.log_path)}"
        )

    def stop(self, *, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL after ``timeout`` seconds."""
        record = self.running()
        if record is not None:
            proc = record.process()
            if proc is not None:
                log.info("stopping Kafka (pid %s)", proc.pid)
                procs.terminate([proc], timeout=timeout)
        if self._popen is not None:
            # Reap our own child so it does not linger as a zombie.
            self._popen.poll()
            self._popen = None
        self.pidfile.unlink(missing_ok=True)

    async def create_topics(
        self, names: Iterable[str], *, partitions: int = 3, timeout: float = 30.0,
        configs: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Create topics (idempotent: existing ones are left alone) and wait for their leaders; ``configs``:
        a topic's settings beyond the broker's defaults (a compacted one's ``cleanup.policy``)."""
        wanted = sorted(set(names))
        if not wanted:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=10000)
        try:
            await admin.start()
            response = await admin.create_topics(
                [NewTopic(name=name, num_partitions=partitions, replication_factor=1,
                          topic_configs=dict((configs or {}).get(name, {})))
                 for name in wanted],
                timeout_ms=int(timeout * 1000),
            )
            for entry in response.topic_errors:
                topic, code = entry[0], entry[1]
                if code == 0:
                    continue
                error = for_code(code)
                if error is TopicAlreadyExistsError:
                    continue
                raise StackError(f"creating topic {topic!r} failed: {error.__name__} ({entry})")
            await self._wait_for_leaders(admin, wanted, timeout)
        finally:
            await admin.close()
        log.info("topics ready: %s", ", ".join(wanted))

    @staticmethod
    async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout: float) -> None:
        # CreateTopics returns before every partition has a leader; producing then would fail.
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(topics)
            pending = [
                t["topic"]
                for t in described
                if t["error_code"] != 0 or not t["partitions"] or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise StackError(f"topics without a leader after {timeout:.0f}s: {pending}")
            await asyncio.sleep(0.1)

    async def list_topics(self) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
            return sorted(await admin.list_topics())
        finally:
            await admin.close()
