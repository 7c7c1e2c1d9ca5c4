module mesh.local/cert-manager-controller

go 1.26.0

// toolchain/cert-manager.sh adds: require github.com/cert-manager/cert-manager v$CERT_MANAGER_VERSION
// (toolchain/versions.env); `go mod tidy` there fills in the rest from that module's go.mod.
