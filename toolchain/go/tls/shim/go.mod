module github.com/hashicorp/terraform-provider-tls/shim

go 1.24

// toolchain/pulumi.sh adds: require github.com/hashicorp/terraform-provider-tls at the version of toolchain/versions.env.
