// Command pulumi-resource-command is overlay-fleet's own build of the Pulumi `command`
// resource provider: it implements command:remote:Command with the schema and semantics of
// pulumi-command 1.2.1, so the unchanged @pulumi/command npm SDK drives it. It exists because
// the Go module proxy here refuses github.com/pulumi/pulumi-command/provider (see README.md).
package main

import (
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Version is the plugin version reported to the engine; the build sets it to the version of
// @pulumi/command with -ldflags "-X main.Version=...".
var Version = "1.2.1"

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-version" {
		fmt.Println(Version)
		return
	}
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return newProvider(host), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}
