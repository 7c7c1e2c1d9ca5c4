module mesh.local/bridged

go 1.25

// Its requirements come from the provider module that uses it (toolchain/go/tls, .../random),
// to which toolchain/pulumi.sh adds the versions of toolchain/versions.env.
