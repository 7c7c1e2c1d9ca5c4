"""`python -m bench`: every figure of the mesh program beside its floor, in one run.

    .venv/bin/python -m bench                 # lab sizes 2 4 8, graph 2..32, OpenShift CRDs at 2,
                                              # a preview of 100 unreachable clusters, the data
                                              # plane at 2 and 3 clusters
    .venv/bin/python -m bench --smoke         # the smallest of each (CI runs this; no timing assert)
    .venv/bin/python -m bench --markdown      # also print the table as Markdown (docs/benchmark.md's)
    .venv/bin/python -m bench --sizes= --graph-sizes= --openshift-size 0 --scale-size 0 \
        --data-plane-sizes=                   # rotations, restarts, failover under traffic alone

Needs the toolchain (`bash setup.sh`): the lab's API servers and istiod, the Pulumi CLI and
plugins, kubectl, istioctl, openssl, and OpenShift's CRDs (`.venv/openshift-crds`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile

from lab.clusters.crds import default_dir as istio_crds
from lab.clusters.crds import load as load_crds
from lab.stack import VENV

from . import data_plane, graph, scale, up, without_downtime
from .report import markdown, render


# The CRD by which the Sail operator takes a cluster for OpenShift (its pkg/config/platform.go:
# operator.openshift.io/v1 OpenShiftAPIServer). Left out: with it, the real operator runs its
# OpenShift profile, which needs what an OpenShift cluster has and these API servers do not
# (the cluster's APIServer config object, Multus's NetworkAttachmentDefinition, a node that calls
# the istio-cni plugin for CNI-mode injection). The labs here measure API servers of OpenShift's
# size, not OpenShift.
OPENSHIFT_PLATFORM_CRD = "openshiftapiservers.operator.openshift.io"


def openshift_crds(workdir: pathlib.Path) -> pathlib.Path:
    """The lab's CRDs (Sail, Istio, Gateway API) and OpenShift's default feature set but the one
    that makes the operator take the cluster for OpenShift, in one folder, one definition per CRD
    name (openshift/api carries a few in two versions' folders)."""
    folder = workdir / "openshift-crds"
    folder.mkdir()
    seen: set[str] = {OPENSHIFT_PLATFORM_CRD}
    for source in (istio_crds(), (VENV / "openshift-crds").resolve()):
        for crd in load_crds(source):
            if crd["metadata"]["name"] not in seen:
                seen.add(crd["metadata"]["name"])
                (folder / f"{crd['metadata']['name']}.yaml").write_text(json.dumps(crd), encoding="utf-8")
    return folder


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the smallest size of each part, one run each")
    parser.add_argument("--sizes", default="2,4,8", help="lab cluster counts for `up` (default 2,4,8)")
    parser.add_argument("--graph-sizes", default="2,4,8,16,32", help="cluster counts for the graph build")
    parser.add_argument("--openshift-size", type=int, default=2, help="clusters for the OpenShift-CRD lab (0: none)")
    parser.add_argument("--scale-size", type=int, default=100, help="clusters of the large preview (0: none)")
    parser.add_argument("--data-plane-sizes", default="2,3", help="cluster counts for the data plane (default 2,3)")
    parser.add_argument("--data-plane-requests", type=int, default=2000, help="requests per requests/s figure")
    parser.add_argument(
        "--without-downtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rotations, restarts and failover under steady traffic, requests counted (default: on; off with --smoke, "
        "whose lab tests count the same)",
    )
    parser.add_argument("--runs", type=int, default=3, help="no-op previews/ups per figure (the median is shown)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    sizes = [2] if args.smoke else [int(s) for s in args.sizes.split(",") if s]
    graph_sizes = [2, 4] if args.smoke else [int(s) for s in args.graph_sizes.split(",") if s]
    runs = 1 if args.smoke else args.runs
    scale_size = 3 if args.smoke else args.scale_size
    data_plane_sizes = [2] if args.smoke else [int(s) for s in args.data_plane_sizes.split(",") if s]
    data_plane_requests = 300 if args.smoke else args.data_plane_requests

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mesh-bench-"))
    # An empty list of sizes leaves that part out (`--sizes= --graph-sizes= --openshift-size 0
    # --scale-size 0`: the data plane alone).
    parts = [(f"graph build, {graph_sizes}", lambda: graph.measure(graph_sizes))] if graph_sizes else []
    parts += [(f"`up`, {n} clusters", lambda n=n: up.measure(n, workdir, runs)) for n in sizes]
    if args.openshift_size:
        n = args.openshift_size
        parts.append(
            (f"`up`, {n} clusters, OpenShift CRDs",
             lambda: up.measure(n, workdir, runs, openshift_crds(workdir), label=", OpenShift CRDs"))
        )  # fmt: skip
    if scale_size:
        parts.append((f"large preview, {scale_size} clusters", lambda: scale.measure(scale_size, workdir / "scale")))
    parts += [
        (f"data plane, {n} clusters", lambda n=n: data_plane.measure(n, workdir, data_plane_requests))
        for n in data_plane_sizes
    ]
    if args.without_downtime if args.without_downtime is not None else not args.smoke:
        parts.append(("without downtime, 2 clusters", lambda: without_downtime.measure(workdir)))
    rows, failed = [], []
    try:
        for name, part in parts:
            try:
                done = part()
            except Exception as error:  # noqa: BLE001 - one part failing leaves the others' figures
                failed.append(f"{name}: {type(error).__name__}: {str(error)[-2000:]}")
                continue
            rows += done
            print(render(done, name), flush=True)  # as each part ends: a long run keeps what it has
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(render(rows, "mesh benchmark"))
    if args.markdown:
        print()
        print(markdown(rows))
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
