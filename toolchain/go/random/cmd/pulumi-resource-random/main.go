// Command pulumi-resource-random is the Pulumi provider plugin random.
package main

import (
	_ "embed"

	"mesh.local/bridged"
	provider "mesh.local/pulumi-resource-random"
)

// The Pulumi schema pulumi-tfgen-random wrote (toolchain/pulumi.sh puts it here; "{}" until then).
//
//go:embed schema-embed.json
var schema []byte

func main() { bridged.Serve("random", provider.Provider(), schema) }
