// Command pulumi-tfgen-tls writes the Pulumi schema of the tls provider.
package main

import (
	"mesh.local/bridged"
	provider "mesh.local/pulumi-resource-tls"
)

func main() { bridged.Tfgen("tls", provider.Provider()) }
