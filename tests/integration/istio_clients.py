"""Clients of a real istiod's secure gRPC port (15012), speaking as a workload's sidecar does:

- `request_certificate`: Istio's CA service (`istio.v1.auth.IstioCertificateService`, the call
  pilot-agent makes for every workload), with the workload's service-account token;
- `sidecar_endpoints`: an ADS stream asking for one cluster's endpoints (EDS), with the node
  identity and metadata pilot-agent sends for a pod.

Both verify istiod's serving certificate against the cluster's `istio-ca-root-cert`, with the
name a sidecar uses (`istiod.istio-system.svc`), and authenticate with a service-account token of
audience `istio-ca`, as pilot-agent does. Envoy's API comes from `xds-protos`; the CA service's two
small messages are declared here from istio.io/api `security/v1alpha1/ca.proto`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

ISTIOD_NAME = "istiod.istio-system.svc"
EDS_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def _ca_messages():
    """IstioCertificateRequest/Response of istio.io/api security/v1alpha1/ca.proto."""
    f = descriptor_pb2.FileDescriptorProto(name="istio_ca_for_tests.proto", package="istio.v1.auth", syntax="proto3")
    f.dependency.append("google/protobuf/struct.proto")
    req = f.message_type.add(name="IstioCertificateRequest")
    req.field.add(
        name="csr",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    req.field.add(
        name="validity_duration",
        number=3,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    req.field.add(
        name="metadata",
        number=4,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".google.protobuf.Struct",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    resp = f.message_type.add(name="IstioCertificateResponse")
    resp.field.add(
        name="cert_chain",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(f.name)
    except KeyError:
        struct_pb2.Struct  # noqa: B018 - loads struct.proto into the default pool
        pool.Add(f)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("istio.v1.auth.IstioCertificateRequest")),
        get(pool.FindMessageTypeByName("istio.v1.auth.IstioCertificateResponse")),
    )


CertificateRequest, CertificateResponse = _ca_messages()


def channel(address: str, root_cert_pem: str) -> grpc.Channel:
    """A TLS channel to istiod at `address` (host:port), checked against `root_cert_pem`."""
    credentials = grpc.ssl_channel_credentials(root_certificates=root_cert_pem.encode())
    return grpc.secure_channel(
        address,
        credentials,
        options=[("grpc.ssl_target_name_override", ISTIOD_NAME), ("grpc.default_authority", ISTIOD_NAME)],
    )


def _auth(token: str, cluster_id: Optional[str]) -> list[tuple[str, str]]:
    metadata = [("authorization", f"Bearer {token}")]
    if cluster_id:
        # pilot-agent sends the cluster its pod runs in, so istiod validates the token there.
        metadata.append(("clusterid", cluster_id))
    return metadata


def request_certificate(
    ch: grpc.Channel, token: str, csr_pem: str, cluster_id: Optional[str] = None, seconds: int = 3600
) -> list[str]:
    """The certificate chain istiod's CA issues for `csr_pem` (leaf first, root last)."""
    call = ch.unary_unary(
        "/istio.v1.auth.IstioCertificateService/CreateCertificate",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=CertificateResponse.FromString,
    )
    answer = call(
        CertificateRequest(csr=csr_pem, validity_duration=seconds), metadata=_auth(token, cluster_id), timeout=20
    )
    return list(answer.cert_chain)


@dataclass
class SidecarNode:
    """What pilot-agent tells istiod about the pod it runs in."""

    pod: str
    namespace: str
    ip: str
    service_account: str
    cluster_id: str
    network: str
    mesh_id: str
    labels: dict = field(default_factory=dict)

    def proto(self) -> base_pb2.Node:
        metadata = struct_pb2.Struct()
        metadata.update(
            {
                "CLUSTER_ID": self.cluster_id,
                "NETWORK": self.network,
                "MESH_ID": self.mesh_id,
                "NAMESPACE": self.namespace,
                "SERVICE_ACCOUNT": self.service_account,
                "NAME": self.pod,
                "LABELS": dict(self.labels),
                "INTERCEPTION_MODE": "REDIRECT",
                "ISTIO_VERSION": "1.31.0",
                "INSTANCE_IPS": self.ip,
            }
        )
        return base_pb2.Node(
            id=f"sidecar~{self.ip}~{self.pod}.{self.namespace}~{self.namespace}.svc.cluster.local",
            cluster=f"{self.labels.get('app', self.pod)}.{self.namespace}",
            metadata=metadata,
        )


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    tls_mode: Optional[str]
    network: Optional[str]


def sidecar_endpoints(
    ch: grpc.Channel, token: str, node: SidecarNode, cluster: str, timeout: float = 20
) -> list[Endpoint]:
    """The endpoints istiod sends `node` for Envoy cluster `cluster`
    (e.g. `outbound|5000||helloworld.sample.svc.cluster.local`)."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)
    request = discovery_pb2.DiscoveryRequest(node=node.proto(), type_url=EDS_TYPE, resource_names=[cluster])
    responses = stub.StreamAggregatedResources(iter([request]), metadata=_auth(token, node.cluster_id), timeout=timeout)
    try:
        for response in responses:
            if response.type_url != EDS_TYPE:
                continue
            found = []
            for resource in response.resources:
                assignment = endpoint_pb2.ClusterLoadAssignment()
                resource.Unpack(assignment)
                if assignment.cluster_name != cluster:
                    continue
                for locality in assignment.endpoints:
                    for lb in locality.lb_endpoints:
                        socket = lb.endpoint.address.socket_address
                        fields = lb.metadata.filter_metadata
                        tls = (
                            fields["envoy.transport_socket_match"].fields.get("tlsMode")
                            if "envoy.transport_socket_match" in fields
                            else None
                        )
                        istio = fields["istio"].fields if "istio" in fields else {}
                        network = istio["network"].string_value if "network" in istio else None
                        found.append(
                            Endpoint(socket.address, socket.port_value, tls.string_value if tls else None, network)
                        )
            return found
    finally:
        responses.cancel()
    return []
