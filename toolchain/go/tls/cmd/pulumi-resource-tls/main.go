// Command pulumi-resource-tls is the Pulumi provider plugin tls.
package main

import (
	_ "embed"

	"mesh.local/bridged"
	provider "mesh.local/pulumi-resource-tls"
)

// The Pulumi schema pulumi-tfgen-tls wrote (toolchain/pulumi.sh puts it here; "{}" until then).
//
//go:embed schema-embed.json
var schema []byte

func main() { bridged.Serve("tls", provider.Provider(), schema) }
