// build-dist builds the box agent for every architecture of dist.Arches, static and as boxes
// get it, gzipped into dist/bin/ (run from the agent module: `go run ./dist/cmd/build-dist`).
// The gzip stream carries no name and no time, so the same sources give the same bytes.
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"overlay-fleet/host/agent/dist"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "build-dist:", err)
		os.Exit(1)
	}
}

func run() error {
	out := filepath.Join("dist", "bin")
	tmp, err := os.MkdirTemp(out, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, a := range dist.Arches {
		exe := filepath.Join(tmp, a.GOARCH)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", exe, "./cmd/overlay-fleet-host")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.GOARCH, "GOARM=6", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build of the agent for linux/%s: %w", a.GOARCH, err)
		}
		raw, err := os.ReadFile(exe)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if _, err := w.Write(raw); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		dst := filepath.Join(out, dist.FileName(a.GOARCH))
		if err := os.WriteFile(dst+".tmp", gz.Bytes(), 0o644); err != nil {
			return err
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			return err
		}
	}
	return nil
}
