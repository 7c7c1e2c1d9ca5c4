// Package provider maps the upstream Terraform random provider to the Pulumi package random.
package provider

import (
	"context"
	_ "embed"
	"errors"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/terraform-providers/terraform-provider-random/shim"

	"mesh.local/bridged"
)

// Version is stamped at build time (-X mesh.local/pulumi-resource-random.Version=X.Y.Z).
var Version string

// The bridge metadata pulumi-tfgen-random wrote (toolchain/pulumi.sh puts it here; "{}" until then).
//
//go:embed bridge-metadata.json
var metadata []byte

// Provider is the package random: every resource in module index named Random<Name>, as
// pulumi-random names them.
func Provider() tfbridge.ProviderInfo {
	info := bridged.Info("random", Version, shim.NewProvider(), metadata)
	info.EnableAccurateBridgePreview = true
	info.EnableRawStateDelta = true
	info.Resources = map[string]*tfbridge.ResourceInfo{
		// random_bytes has no id attribute: use its base64 value, as pulumi-random does.
		"random_bytes": {ComputeID: bytesID},
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index",
		func(module, name string) (string, error) { return tokens.MakeStandard("random")(module, "Random"+name) }))
	return info
}

func bytesID(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
	b, ok := state["base64"]
	if !ok {
		return "", errors.New("no base64 property in state")
	}
	if b.IsSecret() {
		b = b.SecretValue().Element
	}
	if !b.IsString() {
		return "", errors.New("base64 property is not a string")
	}
	return resource.ID(b.StringValue()), nil
}
