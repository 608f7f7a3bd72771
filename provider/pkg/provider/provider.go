// Package provider is the overlay-fleet Pulumi resource provider: its configuration (one box
// reached over SSH) and its resources, each realised by the box agent.
package provider

import (
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/middleware/schema"
)

// Name is the provider's package name: resource tokens are `overlay-fleet:index:<Type>`.
const Name = "overlay-fleet"

// New returns the provider.
func New() p.Provider {
	return infer.Provider(infer.Options{
		Metadata: schema.Metadata{
			DisplayName: "overlay-fleet",
			Description: "Overlay cache instances on small Linux boxes, realised over one SSH " +
				"connection per box by the overlay-fleet box agent.",
			Keywords: []string{"overlayfs", "fstab", "ssh", "kind/native"},
			LanguageMap: map[string]any{
				"nodejs": map[string]any{
					"packageName":          "@overlay-fleet/sdk",
					"respectSchemaVersion": true,
				},
			},
		},
		Config: infer.Config(&Config{}),
		Resources: []infer.InferredResource{
			infer.Resource(&FstabEntry{}),
			infer.Resource(&Network{}),
			infer.Resource(&Container{}),
			infer.Resource(&OverlayMount{}),
		},
	})
}
