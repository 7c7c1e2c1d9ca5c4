module github.com/terraform-providers/terraform-provider-random/shim

go 1.24

// toolchain/pulumi.sh adds: require github.com/terraform-providers/terraform-provider-random at the version of toolchain/versions.env.
