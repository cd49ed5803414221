// Package buildinfo reads the version that the go command recorded in a
// binary, for the module's commands' version subcommands.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info is a binary's version; its JSON is registryctl's version -json.
type Info struct {
	Version  string `json:"version"` // the module's version, "(devel)" outside a tagged module
	Module   string `json:"module"`
	Revision string `json:"revision"` // "" when the build recorded none
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

// Read returns the running binary's version.
func Read() Info {
	v := Info{Version: "(devel)", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module = info.Main.Path
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// Line is the version as a command prints it: "TOOL VERSION [REVISION
// [(modified)]] GOVERSION".
func (v Info) Line(tool string) string {
	line := tool + " " + v.Version
	if v.Revision != "" {
		line += " " + v.Revision
		if v.Modified {
			line += " (modified)"
		}
	}
	return line + " " + v.Go
}
