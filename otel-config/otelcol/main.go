// Program otelcol-vipguard is the OpenTelemetry Collector that runs beside vipguard: exactly the components the
// configurations in otel-config/ use, nothing else. It has the shape go.opentelemetry.io/collector/cmd/builder
// v0.165.0 generates (main.go + components.go + go.mod), written out and committed with its go.sum, so that a
// build needs only `go build` and resolves the same module versions everywhere. scripts/collector.sh builds it.
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-vipguard",
			Description: "OpenTelemetry Collector sidecar for vipguard",
			Version:     "0.165.0",
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// file: for --config; env: for the ${env:…} endpoints in collector.yaml.
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		// cobra has already printed the error.
		os.Exit(1)
	}
}
