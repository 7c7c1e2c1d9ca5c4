// Package provider maps the upstream Terraform TLS provider to the Pulumi package tls.
package provider

import (
	_ "embed"

	"github.com/hashicorp/terraform-provider-tls/shim"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"

	"mesh.local/bridged"
)

// Version is stamped at build time (-X mesh.local/pulumi-resource-tls.Version=X.Y.Z).
var Version string

// The bridge metadata pulumi-tfgen-tls wrote (toolchain/pulumi.sh puts it here; "{}" until then).
//
//go:embed bridge-metadata.json
var metadata []byte

// Provider is the package tls: every resource in module index, as pulumi-tls names them.
func Provider() tfbridge.ProviderInfo {
	info := bridged.Info("tls", Version, shim.NewProvider(), metadata)
	info.EnableZeroDefaultSchemaVersion = true
	info.MustComputeTokens(tokens.SingleModule("tls_", "index", tokens.MakeStandard("tls")))
	return info
}
