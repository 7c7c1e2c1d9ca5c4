module mesh.local/pulumi-resource-random

go 1.25

replace (
	github.com/terraform-providers/terraform-provider-random/shim => ./shim
	mesh.local/bridged => ../bridged
)

// toolchain/pulumi.sh adds the requirements at the versions of toolchain/versions.env: the
// shim, mesh.local/bridged, the Terraform bridge, and the replace of terraform-plugin-sdk/v2
// by the Pulumi fork that bridge release pins.
