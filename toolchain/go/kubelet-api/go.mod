module mesh.local/kubelet-api

go 1.26.0

// toolchain/kubelet-api.sh adds: require github.com/virtual-kubelet/virtual-kubelet v$VIRTUAL_KUBELET_VERSION
// (toolchain/versions.env); `go mod tidy` there fills in the rest from that module's go.mod.
