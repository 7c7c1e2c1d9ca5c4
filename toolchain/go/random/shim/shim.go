// Package shim exposes the upstream provider's constructor. It lives under the upstream
// module's path so that it may import that module's internal/provider.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider is the upstream Terraform provider.
func NewProvider() provider.Provider { return upstream.New() }
