// Command pulumi-tfgen-random writes the Pulumi schema of the random provider.
package main

import (
	"mesh.local/bridged"
	provider "mesh.local/pulumi-resource-random"
)

func main() { bridged.Tfgen("random", provider.Provider()) }
