"""A real Kubernetes API server for the tests: etcd and kube-apiserver on 127.0.0.1.

``start_cluster(workdir)`` makes the certificates (a CA, the server's, an admin
client in ``system:masters``) and the service-account key with openssl, starts
etcd and kube-apiserver (built by scripts/go-tool at the versions of
tools/versions.env) on free loopback ports, writes a kubeconfig for the
provider, installs the CRDs the stacks need (prometheus-operator's and the
Gateway API's, at the versions the project pins, from their Go modules), and
the Gateway the services' routes attach to. ``Cluster.stop()`` stops both
processes.

There is no controller manager, scheduler or kubelet: the API server admits,
defaults and validates (CEL rules included) and stores what the provider
sends, which is what these tests check; workloads never run, so the stacks
deploy with ``kubernetes.skipAwait``.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import figures
from servers import free_port

ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE_S = 120.0


def pins() -> dict[str, str]:
    values = {}
    for line in (ROOT / "tools" / "versions.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


class ClusterUnavailable(RuntimeError):
    """A tool the cluster needs is missing or failed to start (the test fails with this)."""


def tool(name: str) -> str:
    done = subprocess.run([str(ROOT / "scripts" / "go-tool"), "--path", name], capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterUnavailable(f"{name} is not built: run scripts/install-tools (scripts/go-tool {name})")
    return done.stdout.strip()


def module_dir(module: str, version: str) -> Path:
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        cwd="/",
        env=dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local"),
    )
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or not info.get("Dir"):
        raise ClusterUnavailable(f"cannot download {module}@{version}: {info.get('Error') or done.stderr.strip()}")
    return Path(info["Dir"])


def crd_files() -> list[Path]:
    p = pins()
    operator = module_dir("github.com/prometheus-operator/prometheus-operator", f"v{p['PROMETHEUS_OPERATOR_VERSION']}")
    gateway = module_dir("sigs.k8s.io/gateway-api", f"v{p['GATEWAY_API_VERSION']}")
    files = sorted((operator / "example" / "prometheus-operator-crd").glob("monitoring.coreos.com_*.yaml"))
    standard = gateway / "config" / "crd" / "standard"
    files += [standard / f"gateway.networking.k8s.io_{kind}.yaml" for kind in
              ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants")]
    return files


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=rollout-test-ca", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=kube-apiserver"), ("admin", "/O=system:masters/CN=rollout-test-admin")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=folder)
        ext = "server.ext" if name == "server" else "client.ext"
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "1", "-extfile", ext, cwd=folder)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)


@dataclass
class Cluster:
    workdir: Path
    server: str = ""
    kubeconfig: Path = Path()
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def api(self):
        from kubernetes import config as kube_config

        return kube_config.new_client_from_config(config_file=str(self.kubeconfig))

    def custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api())

    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api())

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.processes.clear()


def _start(cluster: Cluster, name: str, argv: list[str]) -> subprocess.Popen:
    log = cluster.workdir / f"{name}.log"
    cluster.logs.append(log)
    handle = open(log, "wb")
    proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=cluster.workdir,
                            start_new_session=True)
    handle.close()
    cluster.processes.append(proc)
    return proc


def _wait(cluster: Cluster, what: str, probe, deadline_s: float = START_DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        for proc in cluster.processes:
            if proc.poll() is not None:
                raise ClusterUnavailable(f"{proc.args[0]} exited ({proc.returncode}) before {what}:\n{cluster.log_tail()}")
        try:
            if probe():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.3)
    raise ClusterUnavailable(f"timed out waiting for {what} ({last}):\n{cluster.log_tail()}")


def _kubeconfig(cluster: Cluster, pki: Path) -> None:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": cluster.server,
                                                   "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate": str(pki / "admin.crt"),
                                              "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }
    cluster.kubeconfig = cluster.workdir / "kubeconfig"
    cluster.kubeconfig.write_text(yaml.safe_dump(document))


class _CrdLoader(yaml.SafeLoader):
    """PyYAML reads a bare ``=`` as YAML 1.1's "value" type, which it cannot
    construct; in the CRDs (enums of operators) it is the string "="."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _install_crds(cluster: Cluster) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(cluster.api())
    names = []
    for path in crd_files():
        for document in yaml.load_all(path.read_text(), Loader=_CrdLoader):
            if document and document.get("kind") == "CustomResourceDefinition":
                ext.create_custom_resource_definition(document)
                names.append(document["metadata"]["name"])

    def established() -> bool:
        for name in names:
            crd = ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") != "True":
                return False
        return True

    _wait(cluster, "the CRDs to be established", established)
    figures.count("test cluster", "CRDs installed", len(names))


def install_gateway(cluster: Cluster, name: str = "public", namespace: str = "gateway-system",
                    section: str = "https") -> None:
    from kubernetes import client

    cluster.core().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    custom = cluster.custom()
    group, version = "gateway.networking.k8s.io", "v1"
    custom.create_cluster_custom_object(group, version, "gatewayclasses", {
        "apiVersion": f"{group}/{version}", "kind": "GatewayClass",
        "metadata": {"name": "test"}, "spec": {"controllerName": "example.com/rollout-test"},
    })
    custom.create_namespaced_custom_object(group, version, namespace, "gateways", {
        "apiVersion": f"{group}/{version}", "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": "test", "listeners": [
            {"name": section, "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}},
        ]},
    })


def start_cluster(workdir: Path) -> Cluster:
    """Start etcd and kube-apiserver, install CRDs and a Gateway; the caller stops it."""
    etcd, apiserver = tool("etcd"), tool("kube-apiserver")
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir=workdir)
    started = time.monotonic()
    try:
        pki = workdir / "pki"
        make_pki(pki)
        client_port, peer_port, api_port = free_port(), free_port(), free_port()
        _start(cluster, "etcd", [
            etcd, "--name", "test", "--data-dir", str(workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        cluster.server = f"https://127.0.0.1:{api_port}"
        _start(cluster, "kube-apiserver", [
            apiserver,
            f"--etcd-servers=http://127.0.0.1:{client_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--cert-dir={workdir / 'certs'}",
            f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={cluster.server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            # No controller manager makes the default ServiceAccount's token.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--allow-privileged=true",
            # The endpoints of the "kubernetes" Service may not be loopback addresses.
            "--endpoint-reconciler-type=none",
        ])
        _kubeconfig(cluster, pki)

        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

        def ready() -> bool:
            with urllib.request.urlopen(f"{cluster.server}/readyz", context=context, timeout=5) as answer:
                return answer.status == 200 and answer.read() == b"ok"

        _wait(cluster, "kube-apiserver /readyz", ready)
        cluster.timings["api server ready"] = time.monotonic() - started
        _install_crds(cluster)
        install_gateway(cluster)
        cluster.timings["ready with CRDs and Gateway"] = time.monotonic() - started
    except BaseException:
        cluster.stop()
        raise
    return cluster
