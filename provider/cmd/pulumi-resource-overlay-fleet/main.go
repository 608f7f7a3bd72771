// Command pulumi-resource-overlay-fleet is the overlay-fleet resource plugin the Pulumi
// engine starts, one process per explicit provider (one per box).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"overlay-fleet/provider/pkg/provider"
)

// version is set at build time: -ldflags "-X main.version=v0.2.0".
var version = "0.1.0"

func main() {
	if err := provider.New().Run(context.Background(), provider.Name, strings.TrimPrefix(version, "v")); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
