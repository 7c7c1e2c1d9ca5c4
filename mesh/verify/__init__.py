"""`mesh verify`: show that a deployed mesh works, cluster by cluster and pair by pair.

The checks follow Sail's own multicluster end-to-end test, in its order: `Istio` and `IstioCNI`
Ready, istiod available, east-west gateways available with an address, `cacerts` chaining to the
mesh's one root, remote secrets that open the right cluster, sample pods Ready, and finally
helloworld answering every source cluster from every cluster of the mesh (each answer mapped to
the cluster of the pod that gave it), with the latency of each pair and every failed request counted.

Each check is a plain function over Kubernetes API clients that returns `Result` records, so a
failure is data (with what to look at), never an exception. Names come from the modules that
create the objects, so the checks look exactly where `pulumi up` put things.
"""

from .clients import check_api_server, client_from_kubeconfig, connect
from .control_plane import check_control_plane, check_gateway, check_istiod, istiod_deployment_name
from .istiod import check_istiod_peers, check_remote_endpoints, nodeless_clusters
from .remote_secrets import (
    annotation_note,
    check_remote_secret,
    missing_reader_rights,
    remote_access_problems,
    remote_secret_problems,
)
from .results import *  # noqa: F403 - the check names and Result are the package's vocabulary
from .run import Report, Settings, verify
from .trust import Trust, check_cacerts, fingerprint, read_cacerts
from .traffic import (
    SOURCE_ITEM,
    UNKNOWN,
    Exec,
    ExecError,
    PodExec,
    Reply,
    TrafficRow,
    curl_command,
    expected_versions,
    helloworld_pods,
    measure_traffic,
    pair_item,
    parse_response,
    percentile,
    traffic_results,
)
from .workloads import check_sample_pods, sample_deployments
