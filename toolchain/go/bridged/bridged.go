// Package bridged is what the Terraform-bridged provider plugins that toolchain/pulumi.sh
// builds (pulumi-resource-tls, pulumi-resource-random) share: their ProviderInfo, and their two
// entry points: tfgen, which writes the Pulumi schema, and the plugin itself.
package bridged

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
)

// Info maps the upstream Terraform provider p to the Pulumi package name at version (stamped
// at build time; empty means the build forgot to stamp it). metadata is the bridge metadata
// tfgen wrote.
func Info(name, version string, p provider.Provider, metadata []byte) tfbridge.ProviderInfo {
	if version == "" {
		panic("provider version not stamped")
	}
	return tfbridge.ProviderInfo{
		P:            pf.ShimProvider(p),
		Name:         name,
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		GitHubOrg:    "hashicorp",
		License:      "Apache-2.0",
		Python:       &tfbridge.PythonInfo{RespectSchemaVersion: true},
	}
}

// Tfgen is the main of pulumi-tfgen-<name>: it writes the Pulumi schema and bridge metadata.
func Tfgen(name string, info tfbridge.ProviderInfo) { tfgen.Main(name, info) }

// Serve is the main of pulumi-resource-<name>, with the schema tfgen wrote.
func Serve(name string, info tfbridge.ProviderInfo, schema []byte) {
	pf.Main(context.Background(), name, info, pf.ProviderMetadata{PackageSchema: schema})
}
