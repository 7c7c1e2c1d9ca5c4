"""The floor of `up`: the same objects made on fresh lab clusters without us, the way the
walk-through does it by hand and a competent script would, clusters in parallel:

- openssl: the root key and certificate, then per cluster an intermediate key, request and
  certificate (the same profiles and key size as ours);
- kubectl apply --server-side of the stack's own objects per cluster (the `cacerts` data from
  openssl), its Deployments (gateway, samples) once Istio/IstioCNI are Ready, then kubectl wait
  for the rest of what `up` waits for: the reader token filled, the east-west gateway's address;
- istioctl create-remote-secret (the walk-through's command) from each cluster's reader token,
  applied on every other cluster.
"""

from __future__ import annotations

import pathlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import yaml

from lab.stack import VENV
from mesh.plan.pki import cacerts_data
from mesh.plan.reader import READER
from mesh.plan.remote_secrets import MULTICLUSTER_LABEL

KUBECTL, ISTIOCTL = str(VENV / "bin" / "kubectl"), str(VENV / "bin" / "istioctl")
# The intermediate's extensions, as ours carry them.
EXTENSIONS = (
    "basicConstraints=critical,CA:true\n"
    "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign\n"
    "subjectKeyIdentifier=hash\n"
    "subjectAltName=DNS:istiod.istio-system.svc\n"
)


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed: {done.stderr[-2000:]}")
    return done.stdout


def _key(path: pathlib.Path, bits: int) -> None:
    _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", str(path)])


def root_ca(dir: pathlib.Path, bits: int) -> tuple[pathlib.Path, pathlib.Path]:
    key, cert = dir / "root-key.pem", dir / "root-cert.pem"
    _key(key, bits)
    _run(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", "/O=Istio/CN=Root CA", "-days", "3650",
          "-addext", "basicConstraints=critical,CA:true,pathlen:1",
          "-addext", "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign",
          "-out", str(cert)])  # fmt: skip
    return key, cert


def intermediate_ca(
    dir: pathlib.Path, cluster: str, locality: str, root: tuple[pathlib.Path, pathlib.Path], bits: int
) -> dict[str, str]:
    """One cluster's `cacerts` data, made with openssl as Istio's tools/certs Makefile does."""
    key, csr, cert, ext = (dir / f"{cluster}.{s}" for s in ("key.pem", "csr", "cert.pem", "ext"))
    _key(key, bits)
    _run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/O=Istio/CN=Intermediate CA/L={locality}",
          "-out", str(csr)])  # fmt: skip
    ext.write_text(EXTENSIONS)
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(root[1]), "-CAkey", str(root[0]), "-CAcreateserial",
          "-days", "3650", "-extfile", str(ext), "-out", str(cert)])  # fmt: skip
    root_pem = root[1].read_text()
    return cacerts_data(cert.read_text(), key.read_text(), root_pem, root_pem)


def apply(kubeconfig: pathlib.Path, context: str, documents: Sequence[Mapping[str, Any]]) -> None:
    """`kubectl apply --server-side` of `documents` on one cluster (nothing when there are none)."""
    if documents:
        _run([KUBECTL, f"--kubeconfig={kubeconfig}", f"--context={context}", "apply", "--server-side",
              "--force-conflicts", "--field-manager=floor", "-f", "-"], yaml.safe_dump_all(list(documents)))  # fmt: skip


class Cluster:
    def __init__(self, kubeconfig: pathlib.Path, name: str, objects: Sequence[Mapping[str, Any]]):
        self.name, self.base = name, [f"--kubeconfig={kubeconfig}", f"--context={name}"]
        self.kubeconfig = kubeconfig
        self.remote = [o for o in objects if (o["metadata"].get("labels") or {}).get(MULTICLUSTER_LABEL) == "true"]
        self.objects = [o for o in objects if o not in self.remote]
        self.token_secret = next(
            o["metadata"]["name"]
            for o in self.objects
            if o["kind"] == "Secret" and o.get("type") == "kubernetes.io/service-account-token"
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return _run([KUBECTL, *self.base, *args], stdin)

    def apply(self, documents: Sequence[Mapping[str, Any]]) -> None:
        apply(self.kubeconfig, self.name, documents)

    def make(self, cacerts: Mapping[str, str], timeout: str) -> None:
        documents = [
            dict(o, stringData=dict(cacerts)) if o["kind"] == "Secret" and o["metadata"]["name"] == "cacerts" else o
            for o in self.objects
        ]
        # Pods come after istiod is Ready, as the walk-through's Steps 4 and 5 come after its Step 3:
        # a gateway pod made before istiod's injection webhook answers keeps the image "auto".
        workloads = [d for d in documents if d["kind"] == "Deployment"]
        self.apply([d for d in documents if d not in workloads])
        ready = [
            f"{o['kind'].lower()}/{o['metadata']['name']}" for o in self.objects if o["kind"] in ("Istio", "IstioCNI")
        ]
        self.kubectl("wait", "--for=condition=Ready", *ready, f"--timeout={timeout}")
        self.apply(workloads)
        self.kubectl("wait", "-n", "istio-system", "--for=jsonpath={.data.token}", f"secret/{self.token_secret}",
                     f"--timeout={timeout}")  # fmt: skip
        self.kubectl("wait", "-n", "istio-system", "--for=jsonpath={.status.loadBalancer.ingress}",
                     "service/istio-eastwestgateway", f"--timeout={timeout}")  # fmt: skip

    def remote_secret(self, cluster_name: str, server: str) -> str:
        """`istioctl create-remote-secret` for this cluster, with our reader and its token."""
        return _run([ISTIOCTL, "create-remote-secret", f"--kubeconfig={self.kubeconfig}", f"--context={self.name}",
                     f"--name={cluster_name}", f"--server={server}", f"--service-account={READER}",
                     "--create-service-account=false", f"--secret-name={self.token_secret}"])  # fmt: skip


def make_everything(
    workdir: pathlib.Path,
    kubeconfig: pathlib.Path,
    objects: Mapping[str, Sequence[Mapping[str, Any]]],
    names: Mapping[str, tuple[str, str]],
    bits: int = 4096,
    timeout: str = "120s",
) -> None:
    """`objects`: cluster -> the stack's objects; `names`: cluster -> (Istio clusterName, apiServerUrl)."""
    clusters = {name: Cluster(kubeconfig, name, items) for name, items in objects.items()}
    with ThreadPoolExecutor(max(2, len(clusters))) as pool:
        root = root_ca(workdir, bits)

        def one(name: str) -> None:
            clusters[name].make(intermediate_ca(workdir, name, names[name][0], root, bits), timeout)

        list(pool.map(one, clusters))
        secrets = {name: c.remote_secret(*names[name]) for name, c in clusters.items()}

        def holds(holder: str) -> None:
            docs = [d for source, text in secrets.items() if source != holder for d in yaml.safe_load_all(text) if d]
            clusters[holder].apply(docs)

        list(pool.map(holds, clusters))
